//! `computed.json` and the result digest (DESIGN.md §4).

use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::{Component, Path};
use veil_core::{B256, keccak256};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResultError {
    #[error(
        "the app wrote no computed.json in IEXEC_OUT: it must say {{\"deterministic-output-path\": \"<path in IEXEC_OUT>\"}}"
    )]
    Missing,
    #[error("computed.json is invalid: {0}")]
    Invalid(String),
    #[error("computed.json points at `{0}`, which does not exist in IEXEC_OUT")]
    NoOutput(String),
    #[error("reading the result: {0}")]
    Io(String),
    #[error("the app's output is larger than this worker's limit of {limit} bytes ({found} bytes or more): refused")]
    TooLarge { limit: u64, found: u64 },
    #[error("the app's output holds a link (`{0}`): refused")]
    Link(String),
}

/// Default limit on an app's output (`IEXEC_OUT`), in bytes.
pub const DEFAULT_MAX_OUTPUT: u64 = 100 << 20;

/// The size of everything in `out`, refusing links and stopping as soon as it passes `max`.
pub fn check_output(out: &Path, max: u64) -> Result<u64, ResultError> {
    fn walk(dir: &Path, total: &mut u64, max: u64) -> Result<(), ResultError> {
        for e in std::fs::read_dir(dir).map_err(|e| ResultError::Io(e.to_string()))? {
            let e = e.map_err(|e| ResultError::Io(e.to_string()))?;
            let t = e.file_type().map_err(|e| ResultError::Io(e.to_string()))?;
            if t.is_symlink() {
                return Err(ResultError::Link(e.file_name().to_string_lossy().into_owned()));
            } else if t.is_dir() {
                walk(&e.path(), total, max)?;
            } else {
                *total += e.metadata().map_err(|e| ResultError::Io(e.to_string()))?.len();
            }
            if *total > max {
                return Err(ResultError::TooLarge { limit: max, found: *total });
            }
        }
        Ok(())
    }
    let mut total = 0;
    walk(out, &mut total, max)?;
    Ok(total)
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Computed {
    #[serde(rename = "deterministic-output-path")]
    pub deterministic_output_path: Option<String>,
    #[serde(rename = "callback-data")]
    pub callback_data: Option<String>,
}

/// Reads and checks `IEXEC_OUT/computed.json`.
pub fn read_computed(out: &Path) -> Result<Computed, ResultError> {
    let bytes = std::fs::read(out.join("computed.json")).map_err(|_| ResultError::Missing)?;
    if bytes.len() > 64 * 1024 {
        return Err(ResultError::Invalid("larger than 64 KiB".into()));
    }
    let c: Computed = serde_json::from_slice(&bytes).map_err(|e| ResultError::Invalid(e.to_string()))?;
    if c.deterministic_output_path.is_none() && c.callback_data.is_none() {
        return Err(ResultError::Invalid("needs `deterministic-output-path` (or `callback-data`)".into()));
    }
    Ok(c)
}

/// Where the deterministic output is, inside `out` (iExec writes absolute paths under /iexec_out).
fn resolve(out: &Path, p: &str) -> Result<std::path::PathBuf, ResultError> {
    let rel =
        p.trim_start_matches("/iexec_out").trim_start_matches(&*out.display().to_string()).trim_start_matches('/');
    let path = Path::new(rel);
    if path.components().any(|c| !matches!(c, Component::Normal(_))) && !rel.is_empty() {
        return Err(ResultError::Invalid(format!("deterministic-output-path `{p}` leaves IEXEC_OUT")));
    }
    let full = out.join(path);
    if !full.exists() {
        return Err(ResultError::NoOutput(p.to_string()));
    }
    Ok(full)
}

fn io(e: std::io::Error) -> ResultError {
    ResultError::Io(e.to_string())
}

fn file_sha256(p: &Path) -> Result<[u8; 32], ResultError> {
    use std::io::Read;
    let mut f = std::fs::File::open(p).map_err(io)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            return Ok(h.finalize().into());
        }
        h.update(&buf[..n]);
    }
}

/// A folder's digest: keccak256 of the concatenated sha256 of its entries sorted by name (a
/// sub-folder contributes its own folder digest).
fn folder_digest(p: &Path) -> Result<B256, ResultError> {
    let mut entries: Vec<_> = std::fs::read_dir(p).map_err(io)?.collect::<Result<_, _>>().map_err(io)?;
    entries.sort_by_key(|e| e.file_name());
    let mut cat = Vec::with_capacity(entries.len() * 32);
    for e in entries {
        let path = e.path();
        if e.file_type().map_err(io)?.is_dir() {
            cat.extend_from_slice(folder_digest(&path)?.as_slice());
        } else {
            cat.extend_from_slice(&file_sha256(&path)?);
        }
    }
    Ok(keccak256(&cat))
}

/// The task's result digest: keccak256 of the callback data when there is some, else sha256 of the
/// deterministic file, or the folder digest of the deterministic folder.
pub fn digest(out: &Path, c: &Computed) -> Result<B256, ResultError> {
    if let Some(cb) = &c.callback_data {
        let h = cb.trim().trim_start_matches("0x");
        let bytes = hex::decode(h).map_err(|_| ResultError::Invalid("callback-data is not 0x-hex".into()))?;
        return Ok(keccak256(bytes));
    }
    let p = resolve(out, c.deterministic_output_path.as_deref().unwrap_or_default())?;
    if p.is_dir() { folder_digest(&p) } else { Ok(B256::from(file_sha256(&p)?)) }
}
