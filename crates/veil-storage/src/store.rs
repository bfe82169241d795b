//! Blobs on disk: `root/<first two hex>/<sha256 hex>`.

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("`{0}` is not a blob id (64 lowercase hex characters: the sha256 of the bytes)")]
    BadId(String),
    #[error("{0}")]
    BadCid(#[from] crate::cid::CidError),
    #[error("no blob {0}")]
    NotFound(String),
    #[error("blob is larger than the {limit}-byte limit")]
    TooLarge { limit: u64 },
    #[error("blob {id} is corrupted on disk (its bytes hash to {actual}); it was moved aside")]
    Corrupt { id: String, actual: String },
    #[error("storage io error: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobInfo {
    /// sha256 of the bytes, hex.
    pub id: String,
    pub size: u64,
}

#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
    pub max_size: u64,
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn check_id(id: &str) -> Result<(), StorageError> {
    if id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(StorageError::BadId(id.chars().take(80).collect()))
    }
}

impl BlobStore {
    pub fn open(root: &Path, max_size: u64) -> Result<BlobStore, StorageError> {
        std::fs::create_dir_all(root.join("tmp"))?;
        Ok(BlobStore { root: root.to_path_buf(), max_size })
    }

    pub fn path_of(&self, id: &str) -> Result<PathBuf, StorageError> {
        check_id(id)?;
        Ok(self.root.join(&id[..2]).join(id))
    }

    /// A fresh temporary path for an upload in progress.
    pub fn temp_path(&self) -> PathBuf {
        let mut r = [0u8; 8];
        rand::thread_rng().fill_bytes(&mut r);
        self.root.join("tmp").join(hex(&r))
    }

    /// Moves a fully written, fsynced temporary file into place under its hash.
    pub fn commit(&self, tmp: &Path, digest: [u8; 32], size: u64) -> Result<BlobInfo, StorageError> {
        let id = hex(&digest);
        let dest = self.path_of(&id)?;
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if dest.exists() {
            std::fs::remove_file(tmp)?;
        } else {
            std::fs::rename(tmp, &dest)?;
            if let Some(dir) = dest.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
        }
        Ok(BlobInfo { id, size })
    }

    /// Stores what `r` yields (blocking).
    pub fn put(&self, mut r: impl Read) -> Result<BlobInfo, StorageError> {
        use std::io::Write;
        let tmp = self.temp_path();
        let result = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            let mut h = Sha256::new();
            let mut size = 0u64;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = r.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                size += n as u64;
                if size > self.max_size {
                    return Err(StorageError::TooLarge { limit: self.max_size });
                }
                h.update(&buf[..n]);
                f.write_all(&buf[..n])?;
            }
            f.sync_all()?;
            Ok((h.finalize().into(), size))
        })();
        match result {
            Ok((digest, size)) => self.commit(&tmp, digest, size),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// Checks that the blob's bytes still hash to its id; returns its size. A corrupted blob is
    /// moved aside so it is never served.
    pub fn verify(&self, id: &str) -> Result<u64, StorageError> {
        let path = self.path_of(id)?;
        let mut f = std::fs::File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StorageError::NotFound(id.to_string()),
            _ => StorageError::Io(e),
        })?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            h.update(&buf[..n]);
        }
        let actual = hex(&h.finalize());
        if actual != id {
            let _ = std::fs::rename(&path, self.root.join("tmp").join(format!("corrupt-{id}")));
            tracing::error!(blob = id, "corrupted blob moved aside");
            return Err(StorageError::Corrupt { id: id.to_string(), actual });
        }
        Ok(size)
    }

    /// Reads a whole blob after verifying it (small blobs only).
    pub fn get(&self, id: &str) -> Result<Vec<u8>, StorageError> {
        self.verify(id)?;
        Ok(std::fs::read(self.path_of(id)?)?)
    }
}
