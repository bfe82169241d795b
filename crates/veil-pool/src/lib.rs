//! # veil-pool — a workerpool: scheduler and workers
//!
//! Owns turning deals into work, on either ledger (Veil's node or PoCo on an EVM chain: both only
//! through `veil_sdk::Ledger`): the scheduler follows the ledger for its pool's deals (resuming
//! after its last processed block when the ledger comes back), initializes their tasks, hands them to registered workers (long poll, never a fixed
//! sleep), signs worker authorizations, adds replicas until consensus, and finalizes (or reopens);
//! the worker downloads and checks the app (a bundle, or an image whose manifest digest must be the
//! app's checksum), runs it with a `veil-exec` runtime (runc for images), stores the result,
//! contributes and reveals with its own key.
//!
//! Protocol rules stay in `veil-core`: this crate only sends signed transactions and reads state.
//! It must never contribute a result it did not compute, nor sign for a worker that did not ask.

pub mod api;
pub mod enclave;
pub mod enclave_http;
pub mod http;
pub mod image;
pub mod retry;
pub mod scheduler;
pub mod store;
pub mod tee;
pub mod worker;

pub use scheduler::{Scheduler, SchedulerConfig};
pub use worker::{Worker, WorkerConfig};
