//! Sealing secrets at rest: ChaCha20-Poly1305 under the master key, a random nonce per write, and
//! the slot name as associated data so a sealed value cannot be moved to another slot.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use std::io::Write;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("master key file {0}: {1}")]
    KeyFile(String, String),
    #[error("a sealed secret failed authentication (wrong master key or tampered database)")]
    Open,
}

pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl Sealer {
    /// Loads the 32-byte master key from `path`, creating it (mode 0600) when absent.
    pub fn load_or_create(path: &Path) -> Result<Sealer, SealError> {
        let err = |e: &dyn std::fmt::Display| SealError::KeyFile(path.display().to_string(), e.to_string());
        let key = match std::fs::read(path) {
            Ok(b) => <[u8; 32]>::try_from(b.as_slice()).map_err(|_| err(&"must hold exactly 32 bytes"))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut k = [0u8; 32];
                rand::thread_rng().fill_bytes(&mut k);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
                }
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                let mut f = opts.open(path).map_err(|e| err(&e))?;
                f.write_all(&k).and_then(|_| f.sync_all()).map_err(|e| err(&e))?;
                k
            }
            Err(e) => return Err(err(&e)),
        };
        Ok(Sealer { cipher: ChaCha20Poly1305::new(&Key::from(key)) })
    }

    /// `nonce ‖ ciphertext+tag`.
    pub fn seal(&self, slot: &str, value: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        // Encryption with a valid key and nonce cannot fail.
        let ct =
            self.cipher.encrypt(&Nonce::from(nonce), Payload { msg: value, aad: slot.as_bytes() }).unwrap_or_default();
        [nonce.to_vec(), ct].concat()
    }

    pub fn open(&self, slot: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < 12 {
            return Err(SealError::Open);
        }
        let (nonce, ct) = sealed.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| SealError::Open)?;
        self.cipher.decrypt(&Nonce::from(nonce), Payload { msg: ct, aad: slot.as_bytes() }).map_err(|_| SealError::Open)
    }
}
