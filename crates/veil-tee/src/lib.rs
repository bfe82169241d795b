//! # veil-tee — enclave platforms, evidence and enclave sessions
//!
//! Owns what an enclave shows and what it is sent: [`Evidence`] (a `sim` platform today, room for
//! SGX and TDX quotes), its verification into [`Claims`], the session key an enclave generates and
//! the sealed box the SMS encrypts its secrets into ([`session`]), and the secrets' shape
//! ([`SessionSecrets`]).
//!
//! The `sim` platform gives **no hardware protection**: its platform key is public (derived from a
//! fixed string), so anyone can produce `sim` evidence. It exists so the whole confidential protocol
//! runs on machines without SGX/TDX; an SMS accepts it only in dev mode. This crate must never
//! accept a `sim` claim without the caller saying it is in dev mode, and never log a secret.

pub mod appraise;
pub mod dcap;
pub mod evidence;
pub mod session;
pub mod tdx;

pub use evidence::{Claims, EnclavePlatform, Evidence, EvidenceError, Platform, SimEvidence, SimPlatform};
pub use session::{SealedBox, SessionError, SessionKey, SessionRequest, SessionSecrets};

/// What every place that reports a `sim` TEE run says.
pub const SIM_NOTICE: &str = "simulated enclave: no hardware protection";
