//! # veil-oci — OCI images as iApps
//!
//! Owns what a worker needs to know about an image before running it: parsing image references
//! (registry references and skopeo's local transports), reading an OCI image layout (index, manifest,
//! config) with every blob checked against its digest, Docker archives turned into OCI layouts,
//! deterministic OCI archives, pulling from and pushing to registries, unpacking layers safely
//! (whiteouts, no path escapes, no device nodes), and the worker's image cache (unpacked once per
//! manifest digest, with a size limit).
//!
//! It must never run anything, never trust a blob before its digest is checked, and never write
//! outside the folder it unpacks into.

pub mod layout;
pub mod reference;
pub mod registry;
pub mod store;
pub mod unpack;
pub mod write;

pub use layout::{Image, ImageConfig, open_local, read_layout};
pub use reference::ImageRef;
pub use registry::{Credentials, Registry};
pub use store::{ImageStore, RootfsLease};
pub use unpack::unpack_layer;

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("`{0}` is not an image reference: {1}")]
    BadReference(String, String),
    #[error("{path}: {detail}")]
    Io { path: String, detail: String },
    #[error("the image is malformed: {0}")]
    Malformed(String),
    #[error("blob {expected} does not match its digest (its bytes hash to {actual}): refusing a tampered image")]
    Digest { expected: String, actual: String },
    #[error(
        "the image's manifest digest is {actual}, but the app's on-chain checksum is {expected}: refusing an image that is not the registered one"
    )]
    ChecksumMismatch { expected: String, actual: String },
    #[error("registry: {0}")]
    Registry(String),
    #[error("unsafe layer entry `{entry}`: {why}")]
    Unsafe { entry: String, why: String },
}

pub(crate) fn io(path: &std::path::Path, e: impl std::fmt::Display) -> OciError {
    OciError::Io { path: path.display().to_string(), detail: e.to_string() }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}
