//! # veil-protect — iExec's protected-data formats
//!
//! Owns the byte formats of protected data, checked against the iexec SDK 9.0.1 and `openssl enc`:
//! a dataset file is a 16-byte random IV followed by AES-256-CBC ciphertext (PKCS#7), under a
//! 32-byte key shown as base64; its on-chain checksum is the sha256 of the whole file. Also the
//! DataProtector payload (a zip of Borsh-encoded values, one entry per key).
//!
//! It streams: memory stays constant whatever the file size. It must never log or put a key in an
//! error message, and never write plaintext anywhere but the writer it is given.

pub mod borsh;
pub mod dataset;
pub mod payload;
pub mod result;

pub use dataset::{DatasetKey, EncryptSummary, ProtectError};
