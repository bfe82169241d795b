//! # veil-sms — the secret management service
//!
//! Owns secrets: dataset keys (written only by the dataset's owner), requester secrets by name,
//! app developer secrets (only the app's owner), and beneficiaries' result-encryption public keys.
//! Every write is an EIP-191-signed request bound to a fresh single-use challenge and to the value.
//! Secrets are sealed at rest (ChaCha20-Poly1305, the slot name as associated data) under a master
//! key kept in its own file, outside the database.
//!
//! It must never return, log or put into an error message a secret's value: its API answers only
//! whether a secret exists, except to an enclave session: `session` releases a task's secrets, sealed
//! to the enclave's session key, only when its evidence and the task pass every rule of DESIGN §6
//! (a refusal names the rule), and keeps each task's enclave challenge key. SGX/TDX quotes are
//! verified with Intel's collateral from the SMS's own cache, refreshed from the operator's PCCS
//! (`collateral`), or else with the collateral the enclave carried.

pub mod collateral;
pub mod http;
pub mod iexec;
pub mod ledger;
pub mod seal;
pub mod service;
pub mod session;

pub use ledger::LedgerLookup;
pub use service::{Sms, SmsError};
