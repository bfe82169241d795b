//! The blob store: ids are content hashes, limits hold, corruption is never served.

use std::io::Cursor;
use veil_storage::{BlobStore, StorageError};

#[test]
fn put_get_verify_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let s = BlobStore::open(dir.path(), 1000).unwrap();
    let info = s.put(Cursor::new(b"hello".to_vec())).unwrap();
    assert_eq!(info.id, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
    assert_eq!(s.get(&info.id).unwrap(), b"hello");
    assert_eq!(s.put(Cursor::new(b"hello".to_vec())).unwrap(), info, "same bytes, same blob");
    let e = s.put(Cursor::new(vec![0u8; 1001])).unwrap_err();
    assert!(matches!(e, StorageError::TooLarge { limit: 1000 }), "{e}");
    assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0, "no partial upload left behind");
    for bad in ["", "abc", "../../etc/passwd", &"G".repeat(64), &"A".repeat(64)] {
        assert!(matches!(s.get(bad), Err(StorageError::BadId(_))), "{bad}");
    }
    assert!(matches!(s.get(&"0".repeat(64)), Err(StorageError::NotFound(_))));
    std::fs::write(s.path_of(&info.id).unwrap(), b"hellO").unwrap();
    assert!(matches!(s.get(&info.id), Err(StorageError::Corrupt { .. })));
    assert!(matches!(s.get(&info.id), Err(StorageError::NotFound(_))), "a corrupted blob is moved aside");
}
