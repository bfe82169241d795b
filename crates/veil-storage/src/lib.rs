//! # veil-storage — content-addressed blobs
//!
//! Owns storing and serving immutable blobs named by the sha256 of their bytes: streamed upload
//! with a size limit (hashed while written, renamed into place, fsynced), and download that checks
//! the bytes against their name before serving them. Used for encrypted datasets, app bundles and
//! results; embedded in the node for the local network, or run alone with `veil storage`.
//!
//! It must never serve bytes whose hash differs from their id, and never keep a partial upload
//! under a blob id.

pub mod cid;
pub mod http;
pub mod store;

pub use store::{BlobInfo, BlobStore, StorageError};
