//! An enclave session: the enclave's ephemeral key, and the box the SMS seals secrets into for it
//! (secp256k1 ECDH with a fresh sender key, SHA-256 key derivation, ChaCha20-Poly1305 bound to the
//! task id).

use crate::evidence::Evidence;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use secp256k1::{PublicKey, Secp256k1, SecretKey, ecdh::SharedSecret};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use veil_core::{Address, B256, Bytes};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SessionError {
    #[error("the recipient key is not a secp256k1 public key")]
    BadKey,
    #[error("the sealed box does not open with this session key (wrong key, wrong task or altered)")]
    Open,
    #[error("the session's secrets are malformed: {0}")]
    Malformed(String),
}

/// The enclave's ephemeral key pair; lives only in the enclave's memory.
pub struct SessionKey(SecretKey);

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey(…)")
    }
}

impl SessionKey {
    pub fn generate() -> SessionKey {
        loop {
            let mut b = [0u8; 32];
            rand::thread_rng().fill_bytes(&mut b);
            if let Ok(k) = SecretKey::from_slice(&b) {
                return SessionKey(k);
            }
        }
    }

    /// The compressed public key (33 bytes) that goes into the evidence.
    pub fn public(&self) -> Vec<u8> {
        PublicKey::from_secret_key(&Secp256k1::new(), &self.0).serialize().to_vec()
    }

    pub fn open(&self, b: &SealedBox, context: &B256) -> Result<Vec<u8>, SessionError> {
        let sender = PublicKey::from_slice(&b.ephemeral).map_err(|_| SessionError::Open)?;
        let cipher = cipher(&sender, &self.0);
        let nonce: [u8; 12] = b.nonce.as_ref().try_into().map_err(|_| SessionError::Open)?;
        cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: &b.ciphertext, aad: &context.0 })
            .map_err(|_| SessionError::Open)
    }
}

fn cipher(public: &PublicKey, secret: &SecretKey) -> ChaCha20Poly1305 {
    let shared = SharedSecret::new(public, secret);
    let key: [u8; 32] =
        Sha256::new().chain_update(b"veil-session-v1").chain_update(shared.secret_bytes()).finalize().into();
    ChaCha20Poly1305::new(&Key::from(key))
}

/// Secrets sealed for one session key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedBox {
    /// The sender's one-time public key (compressed).
    pub ephemeral: Bytes,
    pub nonce: Bytes,
    pub ciphertext: Bytes,
}

impl SealedBox {
    /// Seals `plaintext` for the holder of `recipient` (compressed or uncompressed public key),
    /// bound to `context` (the task id).
    pub fn seal(recipient: &[u8], plaintext: &[u8], context: &B256) -> Result<SealedBox, SessionError> {
        let recipient = PublicKey::from_slice(recipient).map_err(|_| SessionError::BadKey)?;
        let eph = SessionKey::generate();
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ciphertext = cipher(&recipient, &eph.0)
            .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad: &context.0 })
            .map_err(|_| SessionError::BadKey)?;
        Ok(SealedBox { ephemeral: eph.public().into(), nonce: nonce.to_vec().into(), ciphertext: ciphertext.into() })
    }
}

/// `POST /sms/sessions`: an enclave asks for its task's secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRequest {
    pub evidence: Evidence,
}

/// The protected dataset as the enclave gets it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatasetSecret {
    pub address: Address,
    pub url: String,
    pub checksum: B256,
    /// base64, 32 bytes.
    pub key: String,
    /// `IEXEC_DATASET_FILENAME`.
    pub filename: String,
}

/// Everything a task's enclave receives, sealed to its session key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionSecrets {
    pub taskid: B256,
    /// The deal's `params` as the ledger has them (args, input files, secrets asked, encryption).
    pub params: String,
    pub dataset: Option<DatasetSecret>,
    /// `IEXEC_REQUESTER_SECRET_<n>`.
    pub requester_secrets: BTreeMap<u32, String>,
    /// `IEXEC_APP_DEVELOPER_SECRET`.
    pub app_secret: Option<String>,
    /// The beneficiary's RSA public key (SPKI PEM) when the requester asked for an encrypted result.
    pub result_key: Option<String>,
    /// The task's enclave challenge private key (hex): signs the result.
    pub challenge_key: String,
}

impl fmt::Debug for SessionSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionSecrets")
            .field("taskid", &self.taskid)
            .field("dataset", &self.dataset.as_ref().map(|d| d.address))
            .field("requester_secrets", &self.requester_secrets.keys().collect::<Vec<_>>())
            .field("app_secret", &self.app_secret.is_some())
            .field("result_key", &self.result_key.is_some())
            .finish_non_exhaustive()
    }
}

impl SessionSecrets {
    pub fn seal(&self, session_key: &[u8]) -> Result<SealedBox, SessionError> {
        let bytes = serde_json::to_vec(self).map_err(|e| SessionError::Malformed(e.to_string()))?;
        SealedBox::seal(session_key, &bytes, &self.taskid)
    }

    pub fn open(b: &SealedBox, key: &SessionKey, taskid: &B256) -> Result<SessionSecrets, SessionError> {
        let bytes = key.open(b, taskid)?;
        let s: SessionSecrets = serde_json::from_slice(&bytes).map_err(|e| SessionError::Malformed(e.to_string()))?;
        if s.taskid != *taskid {
            return Err(SessionError::Malformed(format!("secrets for task {}, not {taskid}", s.taskid)));
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> SessionSecrets {
        SessionSecrets {
            taskid: B256::from([7; 32]),
            params: "{}".into(),
            dataset: None,
            requester_secrets: BTreeMap::from([(1, "s3cret-value".to_string())]),
            app_secret: Some("dev-secret".into()),
            result_key: None,
            challenge_key: "00".repeat(32),
        }
    }

    #[test]
    fn only_the_session_key_opens_and_only_for_its_task() {
        let k = SessionKey::generate();
        let s = secrets();
        let b = s.seal(&k.public()).unwrap();
        assert_eq!(SessionSecrets::open(&b, &k, &s.taskid).unwrap(), s);
        assert_eq!(SessionSecrets::open(&b, &SessionKey::generate(), &s.taskid).unwrap_err(), SessionError::Open);
        assert_eq!(SessionSecrets::open(&b, &k, &B256::ZERO).unwrap_err(), SessionError::Open);
        let mut altered = b.clone();
        let mut c = altered.ciphertext.to_vec();
        c[0] ^= 1;
        altered.ciphertext = c.into();
        assert_eq!(SessionSecrets::open(&altered, &k, &s.taskid).unwrap_err(), SessionError::Open);
        assert_eq!(SealedBox::seal(&[1, 2, 3], b"x", &s.taskid).unwrap_err(), SessionError::BadKey);
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let d = format!("{:?} {:?}", secrets(), SessionKey::generate());
        assert!(!d.contains("s3cret-value") && !d.contains("dev-secret"), "{d}");
    }
}

/// Sealing as SGX does it with MRENCLAVE policy: data only an enclave with the same measurement on
/// the same platform opens. On `sim` the platform secret is public, so this is integrity against
/// accidents and other apps, not against the host.
pub mod sealing {
    use super::*;

    fn cipher(measurement: &B256) -> ChaCha20Poly1305 {
        let secret = crate::evidence::sim_platform_key().secret_bytes();
        let key: [u8; 32] = Sha256::new()
            .chain_update(b"veil-sim-sealing-v1")
            .chain_update(secret)
            .chain_update(measurement.0)
            .finalize()
            .into();
        ChaCha20Poly1305::new(&Key::from(key))
    }

    pub fn seal(measurement: &B256, data: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ct = cipher(measurement)
            .encrypt(&Nonce::from(nonce), Payload { msg: data, aad: &measurement.0 })
            .unwrap_or_default();
        [nonce.as_slice(), &ct].concat()
    }

    /// `None` when the data was sealed for another measurement or altered.
    pub fn unseal(measurement: &B256, sealed: &[u8]) -> Option<Vec<u8>> {
        let (nonce, ct) = sealed.split_at_checked(12)?;
        let nonce: [u8; 12] = nonce.try_into().ok()?;
        cipher(measurement).decrypt(&Nonce::from(nonce), Payload { msg: ct, aad: &measurement.0 }).ok()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn only_the_same_measurement_unseals_untouched_data() {
            let (m, other) = (B256::from([1; 32]), B256::from([2; 32]));
            let s = seal(&m, b"native code");
            assert_eq!(unseal(&m, &s).as_deref(), Some(&b"native code"[..]));
            assert_eq!(unseal(&other, &s), None);
            let mut t = s.clone();
            t[20] ^= 1;
            assert_eq!(unseal(&m, &t), None);
            assert_eq!(unseal(&m, b"short"), None);
        }
    }
}
