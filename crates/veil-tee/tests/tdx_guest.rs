//! The configfs-tsm client and RTMR3 log against a **fake** folder: a test kernel that, like Linux,
//! fills `provider` and `generation` when an entry is made and answers a write to `inblob` with a
//! quote in `outblob`. This proves the client's file protocol only — not the kernel, and not a TD.

use sha2::{Digest, Sha384};
use std::path::Path;
use std::sync::Mutex;
use veil_core::B256;
use veil_tee::appraise::{QuoteEvidence, replay_rtmr, report_data};
use veil_tee::tdx::{ConfigfsTsm, Rtmr3, TdxError, TdxPlatform, TsmFiles};
use veil_tee::{EnclavePlatform, Evidence};

/// How the fake kernel misbehaves, if at all.
#[derive(Clone, Copy, PartialEq)]
enum Kernel {
    Tdx,
    Sev,
    /// Another writer's request lands between ours and our read.
    Racing,
    EmptyQuote,
}

struct Fake(Kernel, Mutex<u64>);

impl TsmFiles for Fake {
    fn create_dir(&self, path: &Path) -> std::io::Result<()> {
        std::fs::create_dir(path)?;
        let provider = if self.0 == Kernel::Sev { "sev_guest" } else { "tdx_guest" };
        std::fs::write(path.join("provider"), format!("{provider}\n"))?;
        std::fs::write(path.join("generation"), "0\n")?;
        std::fs::write(path.join("inblob"), b"")?;
        std::fs::write(path.join("outblob"), b"")
    }
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }
    fn write(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        std::fs::write(path, bytes)?;
        let dir = path.parent().unwrap();
        let bump = if self.0 == Kernel::Racing { 2 } else { 1 };
        let g: u64 = std::fs::read_to_string(dir.join("generation"))?.trim().parse().unwrap();
        std::fs::write(dir.join("generation"), format!("{}\n", g + bump))?;
        *self.1.lock().unwrap() += 1;
        let quote = if self.0 == Kernel::EmptyQuote { vec![] } else { [b"FAKE-QUOTE:".as_slice(), bytes].concat() };
        std::fs::write(dir.join("outblob"), quote)
    }
    fn remove_dir(&self, path: &Path) -> std::io::Result<()> {
        std::fs::remove_dir_all(path)
    }
}

fn tsm(root: &Path, kernel: Kernel) -> Result<ConfigfsTsm, TdxError> {
    ConfigfsTsm::detect(root, Box::new(Fake(kernel, Mutex::new(0))))
}

#[test]
fn the_file_protocol_gets_a_quote_for_the_report_data_and_cleans_up() {
    let root = tempfile::tempdir().unwrap();
    let t = tsm(root.path(), Kernel::Tdx).unwrap();
    let data = [7u8; 64];
    assert_eq!(t.quote(&data).unwrap(), [b"FAKE-QUOTE:".as_slice(), &data].concat());
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0, "entries are removed");
    assert!(matches!(tsm(&root.path().join("missing"), Kernel::Tdx), Err(TdxError::NoTsm(_))));
    let e = tsm(root.path(), Kernel::Sev).err().unwrap();
    assert_eq!(e, TdxError::NotTdx { path: root.path().display().to_string(), provider: "sev_guest".into() });
    let t = tsm(root.path(), Kernel::Racing).unwrap();
    assert_eq!(t.quote(&data), Err(TdxError::Raced { before: 0, after: 2 }));
    let t = tsm(root.path(), Kernel::EmptyQuote).unwrap();
    assert_eq!(t.quote(&data), Err(TdxError::BadQuote(0)));
}

#[test]
fn rtmr3_is_extended_with_each_app_once_and_its_log_replays() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, log) = (dir.path().join("rtmr3"), dir.path().join("rtmr3.log"));
    std::fs::write(&reg, b"").unwrap();
    let r = Rtmr3::new(&reg, &log);
    assert!(r.events().unwrap().is_empty());
    let (a, b) = (B256::repeat_byte(1), B256::repeat_byte(2));
    r.extend(a).unwrap();
    assert_eq!(std::fs::read(&reg).unwrap(), Sha384::digest(a.as_slice()).to_vec(), "the digest written");
    r.extend(b).unwrap();
    assert_eq!(r.events().unwrap(), vec![a, b]);
    assert_ne!(replay_rtmr(&[a, b]), replay_rtmr(&[b, a]), "order matters");

    // The platform: the app is extended once, the quote binds the session, the log travels along.
    let root = tempfile::tempdir().unwrap();
    let platform = TdxPlatform { tsm: tsm(root.path(), Kernel::Tdx).unwrap(), rtmr3: r, collateral: "{}".into() };
    let (key, task, nonce) = ([2u8; 33], B256::repeat_byte(5), B256::repeat_byte(6));
    for _ in 0..2 {
        let Evidence::Tdx(QuoteEvidence { quote, event_log, .. }) = platform.evidence(b, &key, task, nonce).unwrap()
        else {
            panic!("TDX evidence")
        };
        assert_eq!(event_log, vec![a, b], "b was extended already: not again");
        assert_eq!(&quote[11..], report_data(&key, &task, &nonce).as_slice());
    }
    let c = B256::repeat_byte(3);
    let Evidence::Tdx(e) = platform.evidence(c, &key, task, nonce).unwrap() else { panic!() };
    assert_eq!(e.event_log, vec![a, b, c]);
    std::fs::write(&log, "not a digest\n").unwrap();
    assert!(platform.evidence(c, &key, task, nonce).is_err(), "a corrupt log is an error, not a guess");
}
