//! # veil-exec — running iApps as iExec runs them
//!
//! Owns the iApp bundle (`iapp.toml` + files, packed canonically so the same folder always gives
//! the same bytes and measurement), the iExec runtime contract (deal `params`, the `IEXEC_*`
//! environment, `computed.json`, the result digest), and the runtimes behind one trait: `process`
//! here (clean environment, time and memory limits, no network where the kernel allows it), and
//! `container` (OCI images run by runc, each task on its own writable layer).
//!
//! It must never run an app with the worker's own environment, let an archive write outside its
//! destination, or report a success without a valid `computed.json`.

pub mod bundle;
pub mod container;
pub mod contract;
pub mod process;
pub mod result;
pub mod runtime;

pub use bundle::{Bundle, Manifest, RuntimeKind};
pub use runtime::{ExecError, Job, Outcome, Runtime, TaskDirs};
