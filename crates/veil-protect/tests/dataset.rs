//! The dataset format against itself, against `openssl enc -aes-256-cbc`, and against tampering.

use proptest::prelude::*;
use std::io::Cursor;
use std::process::Command;
use veil_protect::dataset::{self, DatasetKey, ProtectError};

fn key() -> DatasetKey {
    DatasetKey::parse("0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f").unwrap()
}

fn roundtrip(plain: &[u8]) {
    let mut enc = vec![];
    let s = dataset::encrypt(&key(), Cursor::new(plain), &mut enc).unwrap();
    assert_eq!(s.plain_bytes, plain.len() as u64);
    assert_eq!(s.encrypted_bytes, enc.len() as u64);
    assert_eq!(enc.len(), 16 + (plain.len() / 16 + 1) * 16, "IV + padded ciphertext");
    assert_eq!(s.checksum, dataset::sha256_of(Cursor::new(&enc)).unwrap());
    let mut dec = vec![];
    assert_eq!(dataset::decrypt(&key(), Cursor::new(&enc), &mut dec).unwrap(), plain.len() as u64);
    assert_eq!(dec, plain);
}

#[test]
fn sizes_around_blocks_and_chunks() {
    const C: usize = 1 << 20;
    for n in [0, 1, 15, 16, 17, 4095, C - 1, C, C + 1, C + 16, 3 * C + 5] {
        let plain: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
        roundtrip(&plain);
    }
}

proptest! {
    #[test]
    fn any_bytes_roundtrip(plain in prop::collection::vec(any::<u8>(), 0..3000)) {
        roundtrip(&plain);
    }

    #[test]
    fn decrypt_never_panics(junk in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = dataset::decrypt(&key(), Cursor::new(&junk), std::io::sink());
    }
}

fn openssl(args: &[&str], input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl must be installed (.ci/run installs it)");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl {args:?} failed");
    out.stdout
}

#[test]
fn openssl_decrypts_ours_and_we_decrypt_openssls() {
    let plain: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let hex_key = key().to_hex();
    // Ours → openssl.
    let iv = [7u8; 16];
    let mut ours = vec![];
    dataset::encrypt_with_iv(&key(), &iv, &mut Cursor::new(&plain), &mut ours).unwrap();
    let iv_hex = dataset::hex(&ours[..16]);
    let back = openssl(&["enc", "-d", "-aes-256-cbc", "-K", &hex_key, "-iv", &iv_hex], &ours[16..]);
    assert_eq!(back, plain);
    // openssl (IV written first) → ours, byte-identical to our own encryption with that IV.
    let theirs = openssl(&["enc", "-aes-256-cbc", "-K", &hex_key, "-iv", &iv_hex], &plain);
    let file = [iv.to_vec(), theirs].concat();
    assert_eq!(file, ours, "same key and IV give the same bytes");
    let mut dec = vec![];
    dataset::decrypt(&key(), Cursor::new(&file), &mut dec).unwrap();
    assert_eq!(dec, plain);
}

#[test]
fn a_changed_byte_is_caught_by_the_checksum_before_decryption() {
    let mut enc = vec![];
    let s = dataset::encrypt(&key(), Cursor::new(b"secret data".to_vec()), &mut enc).unwrap();
    dataset::verify_checksum(Cursor::new(&enc), &s.checksum_hex()).unwrap();
    enc[20] ^= 1;
    let e = dataset::verify_checksum(Cursor::new(&enc), &s.checksum_hex()).unwrap_err();
    assert!(matches!(e, ProtectError::Checksum { .. }), "{e}");
}

#[test]
fn wrong_key_and_bad_files_are_errors() {
    let mut enc = vec![];
    dataset::encrypt_with_iv(&key(), &[1u8; 16], &mut Cursor::new(b"hello".to_vec()), &mut enc).unwrap();
    let wrong = DatasetKey([9u8; 32]);
    assert!(matches!(dataset::decrypt(&wrong, Cursor::new(&enc), std::io::sink()), Err(ProtectError::Padding)));
    assert!(matches!(dataset::decrypt(&key(), Cursor::new(&enc[..10]), std::io::sink()), Err(ProtectError::Format(_))));
    assert!(matches!(dataset::decrypt(&key(), Cursor::new(&enc[..16]), std::io::sink()), Err(ProtectError::Format(_))));
    assert!(matches!(dataset::decrypt(&key(), Cursor::new(&enc[..20]), std::io::sink()), Err(ProtectError::Format(_))));
}

#[test]
fn keys_in_base64_and_hex() {
    let k = DatasetKey::random();
    let b64 = k.to_base64();
    assert_eq!(b64.len(), 44);
    assert_eq!(DatasetKey::parse(&b64).unwrap(), k);
    assert_eq!(DatasetKey::parse(&k.to_hex()).unwrap(), k);
    assert!(DatasetKey::parse("short").is_err());
    assert!(!format!("{k:?}").contains(&b64), "Debug must not show the key");
}

#[test]
fn dataprotector_payload_zip() {
    use std::io::Read;
    let data = serde_json::json!({"email": "a@b.c", "age": 42, "ok": true, "profile": {"name": "Ada", "big": 9007199254740993u64}});
    let bytes = veil_protect::payload::zip_json(&data).unwrap();
    let mut z = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    let mut read = |name: &str| {
        let mut v = vec![];
        z.by_name(name).unwrap().read_to_end(&mut v).unwrap();
        v
    };
    assert_eq!(read("email"), [vec![5, 0, 0, 0], b"a@b.c".to_vec()].concat());
    assert_eq!(read("age"), 42f64.to_le_bytes().to_vec());
    assert_eq!(read("ok"), vec![1]);
    assert_eq!(read("profile/name"), [vec![3, 0, 0, 0], b"Ada".to_vec()].concat());
    assert_eq!(read("profile/big"), 9007199254740993i128.to_le_bytes().to_vec());
    assert!(veil_protect::payload::zip_json(&serde_json::json!({"a": [1]})).is_err());
    assert!(veil_protect::payload::zip_json(&serde_json::json!([1])).is_err());
}
