//! # veil-sdk — the ledger node's HTTP API: its types, and a typed async client
//!
//! Owns the wire format of the node's JSON API (request and response bodies, the event stream) and,
//! with the default `client` feature, an async client over it used by the CLI and every service.
//! Without `client` it is types only (no HTTP client, no async runtime).
//!
//! It must never hold protocol rules (those are `veil-core`'s) nor keep keys beyond a call.

pub mod challenge;
#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "client")]
pub mod flows;
#[cfg(feature = "client")]
pub mod ledger;
pub mod types;

#[cfg(feature = "client")]
pub use client::{Client, NonceSender, SdkError, http};
#[cfg(feature = "client")]
pub use ledger::{Backoff, BlockEvents, Ledger};
pub use types::*;
