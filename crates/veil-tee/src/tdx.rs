//! The TDX platform inside a trust domain: quotes through Linux's configfs-tsm
//! (`/sys/kernel/config/tsm/report`), and RTMR3 extended with each app's measurement before it runs,
//! with the event log kept beside it so a verifier can replay RTMR3 ([`crate::appraise::replay_rtmr`]).
//!
//! The configfs-tsm protocol: make an entry folder; its `provider` names the TEE (`tdx_guest`);
//! read `generation`; write the 64-byte report data to `inblob`; read the quote from `outblob`; read
//! `generation` again — it must have moved by exactly one, or another writer raced us and the quote may
//! not carry our report data. Tests run this against a fake folder: they prove the file protocol,
//! not the kernel or a TD.

use crate::appraise::QuoteEvidence;
use crate::evidence::{EnclavePlatform, Evidence, Platform};
use sha2::{Digest, Sha384};
use std::io::Write;
use std::path::{Path, PathBuf};
use veil_core::B256;

/// Where Linux mounts configfs-tsm reports.
pub const DEFAULT_TSM: &str = "/sys/kernel/config/tsm/report";
/// Where Linux (6.16+) takes RTMR3 extensions: 48-byte SHA-384 digests.
pub const DEFAULT_RTMR3: &str = "/sys/class/misc/tdx_guest/measurements/rtmr3:sha384";
/// Largest quote read from `outblob`.
pub const MAX_OUTBLOB: u64 = 32 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TdxError {
    #[error("no configfs-tsm at {0} (not a TDX guest, or configfs not mounted)")]
    NoTsm(String),
    #[error("configfs-tsm at {path}: the provider is `{provider}`, not tdx_guest")]
    NotTdx { path: String, provider: String },
    #[error("configfs-tsm {0}: {1}")]
    Io(String, String),
    #[error("configfs-tsm: the report generation moved from {before} to {after}: another writer raced this quote")]
    Raced { before: u64, after: u64 },
    #[error("configfs-tsm: the quote is {0} bytes (empty, or over {MAX_OUTBLOB})")]
    BadQuote(u64),
    #[error("RTMR3 at {0}: {1}")]
    Rtmr(String, String),
}

fn io(path: &Path, e: impl std::fmt::Display) -> TdxError {
    TdxError::Io(path.display().to_string(), e.to_string())
}

/// The file operations the configfs-tsm protocol needs. In a TD they are plain file operations on
/// configfs, where the kernel answers (it fills `provider` and `generation` on `mkdir`, and makes the
/// quote when `inblob` is written); a test gives a fake that plays the kernel on an ordinary folder.
pub trait TsmFiles: Send + Sync {
    fn create_dir(&self, path: &Path) -> std::io::Result<()>;
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>>;
    fn write(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()>;
    fn remove_dir(&self, path: &Path) -> std::io::Result<()>;
}

/// The real thing: configfs through the file system.
pub struct Configfs;

impl TsmFiles for Configfs {
    fn create_dir(&self, path: &Path) -> std::io::Result<()> {
        std::fs::create_dir(path)
    }
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        let mut out = vec![];
        std::fs::File::open(path)?.take(MAX_OUTBLOB + 1).read_to_end(&mut out)?;
        Ok(out)
    }
    fn write(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        std::fs::OpenOptions::new().write(true).open(path)?.write_all(bytes)
    }
    fn remove_dir(&self, path: &Path) -> std::io::Result<()> {
        std::fs::remove_dir(path)
    }
}

/// A configfs-tsm report folder (`/sys/kernel/config/tsm/report`, or a test's fake one).
pub struct ConfigfsTsm {
    root: PathBuf,
    files: Box<dyn TsmFiles>,
}

impl ConfigfsTsm {
    /// The TSM at `root`, if it is there and its provider is TDX (checked on a scratch entry).
    pub fn detect(root: &Path, files: Box<dyn TsmFiles>) -> Result<ConfigfsTsm, TdxError> {
        if !root.is_dir() {
            return Err(TdxError::NoTsm(root.display().to_string()));
        }
        let tsm = ConfigfsTsm { root: root.to_path_buf(), files };
        let provider = {
            let entry = tsm.entry()?;
            tsm.read_text(&entry.path.join("provider"))?
        };
        match provider.as_str() {
            "tdx_guest" => Ok(tsm),
            other => Err(TdxError::NotTdx { path: root.display().to_string(), provider: other.to_string() }),
        }
    }

    /// An entry folder of our own, removed when dropped.
    fn entry(&self) -> Result<Entry<'_>, TdxError> {
        let path = self.root.join(format!("veil-{}-{}", std::process::id(), rand::random::<u32>()));
        self.files.create_dir(&path).map_err(|e| io(&path, e))?;
        Ok(Entry { path, files: self.files.as_ref() })
    }

    fn read_text(&self, path: &Path) -> Result<String, TdxError> {
        let bytes = self.files.read(path).map_err(|e| io(path, e))?;
        Ok(String::from_utf8_lossy(&bytes).trim().to_string())
    }

    fn generation(&self, entry: &Path) -> Result<u64, TdxError> {
        let p = entry.join("generation");
        let text = self.read_text(&p)?;
        text.parse().map_err(|_| io(&p, format!("`{text}` is not a number")))
    }

    /// A quote whose report data is `report_data`.
    pub fn quote(&self, report_data: &[u8; 64]) -> Result<Vec<u8>, TdxError> {
        let entry = self.entry()?;
        let before = self.generation(&entry.path)?;
        let inblob = entry.path.join("inblob");
        self.files.write(&inblob, report_data).map_err(|e| io(&inblob, e))?;
        let outblob = entry.path.join("outblob");
        let quote = self.files.read(&outblob).map_err(|e| io(&outblob, e))?;
        let after = self.generation(&entry.path)?;
        if after != before + 1 {
            return Err(TdxError::Raced { before, after });
        }
        if quote.is_empty() || quote.len() as u64 > MAX_OUTBLOB {
            return Err(TdxError::BadQuote(quote.len() as u64));
        }
        Ok(quote)
    }
}

struct Entry<'a> {
    path: PathBuf,
    files: &'a dyn TsmFiles,
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        let _ = self.files.remove_dir(&self.path);
    }
}

/// RTMR3 and its event log: each app measurement is extended (as SHA-384 of the 32-byte digest)
/// and appended to the log file, which lives as long as the TD's RTMR3 (the worker's folder).
#[derive(Debug, Clone)]
pub struct Rtmr3 {
    extend: PathBuf,
    log: PathBuf,
}

impl Rtmr3 {
    pub fn new(extend: &Path, log: &Path) -> Rtmr3 {
        Rtmr3 { extend: extend.to_path_buf(), log: log.to_path_buf() }
    }

    /// The events extended so far, in order.
    pub fn events(&self) -> Result<Vec<B256>, TdxError> {
        let text = match std::fs::read_to_string(&self.log) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(TdxError::Rtmr(self.log.display().to_string(), e.to_string())),
        };
        text.lines()
            .map(|l| l.parse().map_err(|_| TdxError::Rtmr(self.log.display().to_string(), format!("bad line `{l}`"))))
            .collect()
    }

    /// Extends RTMR3 with `event`. The log is written first: a crash between the two leaves an event
    /// the register lacks, which a verifier's replay refuses, never an extension the log does not explain.
    pub fn extend(&self, event: B256) -> Result<(), TdxError> {
        let rtmr = |e: std::io::Error| TdxError::Rtmr(self.extend.display().to_string(), e.to_string());
        let log_err = |e: std::io::Error| TdxError::Rtmr(self.log.display().to_string(), e.to_string());
        let mut log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).map_err(log_err)?;
        writeln!(log, "{event}").and_then(|_| log.sync_all()).map_err(log_err)?;
        let digest = Sha384::digest(event.as_slice());
        std::fs::OpenOptions::new().write(true).open(&self.extend).and_then(|mut f| f.write_all(&digest)).map_err(rtmr)
    }
}

/// The TDX platform: extends RTMR3 with the app's measurement, then quotes the session binding.
pub struct TdxPlatform {
    pub tsm: ConfigfsTsm,
    pub rtmr3: Rtmr3,
    /// Intel's collateral for this platform's quotes (dcap-qvl JSON), kept fresh by the operator.
    pub collateral: String,
}

impl EnclavePlatform for TdxPlatform {
    fn kind(&self) -> Platform {
        Platform::Tdx
    }

    fn evidence(&self, measurement: B256, session_key: &[u8], taskid: B256, nonce: B256) -> Result<Evidence, String> {
        let mut event_log = self.rtmr3.events().map_err(|e| e.to_string())?;
        if !event_log.contains(&measurement) {
            self.rtmr3.extend(measurement).map_err(|e| e.to_string())?;
            event_log.push(measurement);
        }
        let report_data = crate::appraise::report_data(session_key, &taskid, &nonce);
        let quote = self.tsm.quote(&report_data).map_err(|e| e.to_string())?;
        Ok(Evidence::Tdx(QuoteEvidence {
            quote: quote.into(),
            collateral: self.collateral.clone(),
            session_key: session_key.to_vec().into(),
            taskid,
            nonce,
            event_log,
        }))
    }
}
