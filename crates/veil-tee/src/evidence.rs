//! Evidence an enclave presents: who measured what, for which task, bound to a session key and a
//! fresh nonce.

use serde::{Deserialize, Serialize};
use veil_core::crypto::{self, keccak_packed};
use veil_core::{Address, B256, Bytes, PrivateKey, Signature};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Sim,
    Sgx,
    Tdx,
}

/// Evidence from one enclave platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "platform", rename_all = "lowercase")]
pub enum Evidence {
    Sim(SimEvidence),
    /// An SGX DCAP quote whose report data binds the session key, task and nonce.
    Sgx(crate::appraise::QuoteEvidence),
    /// A TDX quote, same binding, with the event log of its RTMR3.
    Tdx(crate::appraise::QuoteEvidence),
}

/// The `sim` platform's statement, signed by its (public) platform key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimEvidence {
    pub measurement: B256,
    /// The enclave's ephemeral secp256k1 public key, compressed (33 bytes).
    pub session_key: Bytes,
    pub taskid: B256,
    pub nonce: B256,
    pub signature: Signature,
}

/// What verified evidence proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub platform: Platform,
    /// The app measurements the enclave proves it runs (one for `sim` and SGX; RTMR3's events for TDX).
    pub measurements: Vec<B256>,
    pub session_key: Vec<u8>,
    pub taskid: B256,
    pub nonce: B256,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EvidenceError {
    #[error("`sim` evidence is accepted only by an SMS in dev mode (it gives no hardware protection)")]
    SimNotAllowed,
    #[error(transparent)]
    Appraisal(#[from] crate::appraise::AppraisalError),
    #[error("the evidence is not signed by the {0:?} platform key")]
    BadSignature(Platform),
    #[error("the session key is not a compressed secp256k1 public key")]
    BadSessionKey,
}

/// An enclave platform as an enclave sees it: it states, in evidence a verifier can check, that an
/// enclave with this measurement holds this session key for this task and nonce. A real SGX/TDX
/// platform implements it with a quote whose report data is the same statement.
pub trait EnclavePlatform: Send + Sync {
    fn kind(&self) -> Platform;
    fn evidence(&self, measurement: B256, session_key: &[u8], taskid: B256, nonce: B256) -> Result<Evidence, String>;
}

/// The simulated platform: **no hardware protection** (its key is public).
pub struct SimPlatform;

impl EnclavePlatform for SimPlatform {
    fn kind(&self) -> Platform {
        Platform::Sim
    }

    fn evidence(&self, measurement: B256, session_key: &[u8], taskid: B256, nonce: B256) -> Result<Evidence, String> {
        Ok(Evidence::Sim(SimEvidence::new(measurement, session_key.to_vec(), taskid, nonce)))
    }
}

/// The `sim` platform key: derived from a public string, so it proves nothing about hardware.
pub fn sim_platform_key() -> PrivateKey {
    PrivateKey::from_seed("veil sim enclave platform v1")
}

pub fn sim_platform_address() -> Address {
    sim_platform_key().address()
}

fn sim_statement(measurement: &B256, session_key: &[u8], taskid: &B256, nonce: &B256) -> B256 {
    keccak_packed(&[b"veil-sim-evidence-v1", &measurement.0, session_key, &taskid.0, &nonce.0])
}

impl SimEvidence {
    /// What the `sim` platform signs for an enclave that measured `measurement`.
    pub fn new(measurement: B256, session_key: Vec<u8>, taskid: B256, nonce: B256) -> SimEvidence {
        let statement = sim_statement(&measurement, &session_key, &taskid, &nonce);
        let signature = sim_platform_key().sign_message_hash(&statement);
        SimEvidence { measurement, session_key: session_key.into(), taskid, nonce, signature }
    }
}

impl Evidence {
    pub fn platform(&self) -> Platform {
        match self {
            Evidence::Sim(_) => Platform::Sim,
            Evidence::Sgx { .. } => Platform::Sgx,
            Evidence::Tdx { .. } => Platform::Tdx,
        }
    }

    /// Checks the evidence by the appraiser's rules at `now` (unix seconds, for the collateral).
    pub fn verify(&self, a: &crate::appraise::Appraiser, now: u64) -> Result<Claims, EvidenceError> {
        let quoted = |e: &crate::appraise::QuoteEvidence, platform: Platform| -> Result<Claims, EvidenceError> {
            let measurements = a.appraise(e, platform == Platform::Tdx, now)?;
            Ok(Claims { platform, measurements, session_key: e.session_key.to_vec(), taskid: e.taskid, nonce: e.nonce })
        };
        match self {
            Evidence::Sgx(e) => quoted(e, Platform::Sgx),
            Evidence::Tdx(e) => quoted(e, Platform::Tdx),
            Evidence::Sim(e) => {
                if !a.allow_sim {
                    return Err(EvidenceError::SimNotAllowed);
                }
                if e.session_key.len() != 33 || secp256k1::PublicKey::from_slice(&e.session_key).is_err() {
                    return Err(EvidenceError::BadSessionKey);
                }
                let statement = sim_statement(&e.measurement, &e.session_key, &e.taskid, &e.nonce);
                let signer = crypto::recover_message_hash(&statement, &e.signature)
                    .map_err(|_| EvidenceError::BadSignature(Platform::Sim))?;
                if signer != sim_platform_address() {
                    return Err(EvidenceError::BadSignature(Platform::Sim));
                }
                Ok(Claims {
                    platform: Platform::Sim,
                    measurements: vec![e.measurement],
                    session_key: e.session_key.to_vec(),
                    taskid: e.taskid,
                    nonce: e.nonce,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SessionKey;

    fn evidence() -> SimEvidence {
        let k = SessionKey::generate();
        SimEvidence::new(B256::from([1; 32]), k.public(), B256::from([2; 32]), B256::from([3; 32]))
    }

    fn check(e: Evidence, allow_sim: bool, want: Result<(), EvidenceError>) {
        let a = crate::appraise::Appraiser { allow_sim, ..Default::default() };
        assert_eq!(e.verify(&a, 0).map(|_| ()), want, "{e:?}");
    }

    #[test]
    fn sim_evidence_verifies_only_in_dev_mode_and_only_untouched() {
        check(Evidence::Sim(evidence()), true, Ok(()));
        check(Evidence::Sim(evidence()), false, Err(EvidenceError::SimNotAllowed));
        let mut e = evidence();
        e.measurement = B256::from([9; 32]);
        check(Evidence::Sim(e), true, Err(EvidenceError::BadSignature(Platform::Sim)));
        let mut e = evidence();
        e.nonce = B256::ZERO;
        check(Evidence::Sim(e), true, Err(EvidenceError::BadSignature(Platform::Sim)));
        let mut e = evidence();
        e.signature = PrivateKey::from_seed("not the platform").sign_message_hash(&B256::ZERO);
        check(Evidence::Sim(e), true, Err(EvidenceError::BadSignature(Platform::Sim)));
        let mut e = evidence();
        e.session_key = vec![2u8; 5].into();
        check(Evidence::Sim(e), true, Err(EvidenceError::BadSessionKey));
    }

    #[test]
    fn evidence_round_trips_through_json_with_its_platform_named() {
        let e = Evidence::Sim(evidence());
        let j = serde_json::to_value(&e).unwrap();
        assert_eq!(j["platform"], "sim");
        assert_eq!(serde_json::from_value::<Evidence>(j).unwrap(), e);
    }
}
