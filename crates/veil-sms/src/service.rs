//! The SMS's rules: who may write which secret, challenges, size limits, sealed storage.

use crate::ledger::LedgerLookup;
use crate::seal::{SealError, Sealer};
use base64::Engine;
use rand::RngCore;
use redb::{Database, ReadableDatabase, TableDefinition};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use veil_core::{Address, B256, crypto};
use veil_sdk::{SecretKind, SmsChallenge, SmsWrite, sms_message};

const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");

/// Largest secret accepted, in bytes.
pub const MAX_SECRET: usize = 16 * 1024;
/// Longest secret name.
pub const MAX_NAME: usize = 64;
pub const CHALLENGE_TTL: Duration = Duration::from_secs(300);
/// Challenges outstanding at most (older ones are dropped first).
pub const MAX_CHALLENGES: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    #[error("unknown or expired challenge: ask for a fresh one (each is valid once, for {}s)", CHALLENGE_TTL.as_secs())]
    Challenge,
    #[error("bad signature: {0}")]
    Signature(String),
    #[error("refused: {0}")]
    Forbidden(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("secret is {0} bytes, more than the {MAX_SECRET} accepted")]
    TooLarge(usize),
    #[error("ledger unavailable: {0}")]
    Ledger(String),
    #[error("storage error: {0}")]
    Storage(String),
    /// An enclave session refused: which rule failed, and how.
    #[error("session refused by rule `{rule}`: {detail}")]
    Session { rule: &'static str, detail: String },
    #[error(transparent)]
    Seal(#[from] SealError),
    /// iExec's SMS never overwrites these (dataset keys, app and requester secrets, a POSTed web2 secret).
    #[error("this secret already exists and cannot be replaced")]
    Exists,
    #[error("no such secret to update")]
    Missing,
}

pub(crate) fn storage<E: std::fmt::Display>(e: E) -> SmsError {
    SmsError::Storage(e.to_string())
}

pub struct Sms {
    pub(crate) db: Database,
    pub(crate) sealer: Sealer,
    pub(crate) ledger: Arc<dyn LedgerLookup>,
    challenges: Mutex<HashMap<B256, Instant>>,
    pub dev: bool,
    /// What evidence must meet: `sim` only in dev mode; SGX and TDX quotes by the TCB policy (strict
    /// unless the operator says) and, for TDX, the operator's allowed TD images.
    pub tee: veil_tee::appraise::Appraiser,
    /// Intel's collateral from the SMS's cache and PCCS; `None`: the collateral the enclave carried
    /// (Intel-signed, judged at the SMS's clock, but possibly older than the PCCS's latest).
    pub collateral: Option<crate::collateral::CollateralStore>,
}

/// The slot a secret lives in, also its sealing context.
pub fn slot(kind: SecretKind, target: &Address, name: &str) -> String {
    format!("{}/{target:?}/{name}", kind.as_str())
}

impl Sms {
    /// Opens the SMS database in `data_dir` (`sms.redb`) with the master key at `master_key`.
    pub fn open(data_dir: &Path, master_key: &Path, ledger: Arc<dyn LedgerLookup>, dev: bool) -> Result<Sms, SmsError> {
        std::fs::create_dir_all(data_dir).map_err(storage)?;
        let db = Database::builder().set_cache_size(4 << 20).create(data_dir.join("sms.redb")).map_err(storage)?;
        let w = db.begin_write().map_err(storage)?;
        w.open_table(SECRETS).map_err(storage)?;
        w.open_table(crate::session::ENCLAVE_KEYS).map_err(storage)?;
        w.commit().map_err(storage)?;
        let sealer = Sealer::load_or_create(master_key)?;
        let tee = veil_tee::appraise::Appraiser { allow_sim: dev, ..Default::default() };
        Ok(Sms { db, sealer, ledger, challenges: Mutex::new(HashMap::new()), dev, tee, collateral: None })
    }

    pub fn challenge(&self) -> SmsChallenge {
        let mut b = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut b);
        let c = B256::from(b);
        let mut m = self.challenges.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        m.retain(|_, t| now.duration_since(*t) < CHALLENGE_TTL);
        if m.len() >= MAX_CHALLENGES
            && let Some(oldest) = m.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k)
        {
            m.remove(&oldest);
        }
        m.insert(c, now);
        SmsChallenge { challenge: c, expires_in_secs: CHALLENGE_TTL.as_secs() }
    }

    /// Takes a challenge out: it is valid once.
    pub(crate) fn consume(&self, c: &B256) -> Result<(), SmsError> {
        let mut m = self.challenges.lock().unwrap_or_else(|p| p.into_inner());
        match m.remove(c) {
            Some(t) if t.elapsed() < CHALLENGE_TTL => Ok(()),
            _ => Err(SmsError::Challenge),
        }
    }

    fn check_value(kind: SecretKind, name: &str, value: &str) -> Result<(), SmsError> {
        if value.len() > MAX_SECRET {
            return Err(SmsError::TooLarge(value.len()));
        }
        if value.is_empty() {
            return Err(SmsError::Invalid("the secret is empty".into()));
        }
        match kind {
            SecretKind::RequesterSecret => {
                let ok = !name.is_empty()
                    && name.len() <= MAX_NAME
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
                if !ok {
                    return Err(SmsError::Invalid(format!(
                        "secret names are 1 to {MAX_NAME} characters of A-Z a-z 0-9 - _ ."
                    )));
                }
            }
            _ if !name.is_empty() => return Err(SmsError::Invalid("this secret has no name".into())),
            _ => {}
        }
        if kind == SecretKind::DatasetKey {
            let k = base64::engine::general_purpose::STANDARD
                .decode(value.trim())
                .map_err(|_| SmsError::Invalid("a dataset key is 32 bytes in base64".into()))?;
            if k.len() != 32 {
                return Err(SmsError::Invalid("a dataset key is 32 bytes in base64".into()));
            }
        }
        if kind == SecretKind::ResultKey && !value.contains("-----BEGIN PUBLIC KEY-----") {
            return Err(SmsError::Invalid(
                "a result key is an RSA public key in SPKI PEM (-----BEGIN PUBLIC KEY-----)".into(),
            ));
        }
        Ok(())
    }

    /// Who may write this slot.
    async fn allowed_writer(&self, kind: SecretKind, target: &Address) -> Result<Address, SmsError> {
        let missing = |what: &str| SmsError::Forbidden(format!("{what} {target} is not registered on the ledger"));
        match kind {
            SecretKind::DatasetKey => self
                .ledger
                .dataset(*target)
                .await
                .map_err(SmsError::Ledger)?
                .map(|d| d.owner)
                .ok_or_else(|| missing("dataset")),
            SecretKind::AppSecret => {
                self.ledger.app(*target).await.map_err(SmsError::Ledger)?.map(|a| a.owner).ok_or_else(|| missing("app"))
            }
            SecretKind::RequesterSecret | SecretKind::ResultKey => Ok(*target),
        }
    }

    /// Stores a secret after checking size, challenge, signature and ownership, in that order.
    pub async fn write(&self, kind: SecretKind, target: &Address, name: &str, w: &SmsWrite) -> Result<(), SmsError> {
        Self::check_value(kind, name, &w.value)?;
        let msg = sms_message(kind, target, name, &w.value, &w.challenge);
        let signer =
            crypto::recover_message_hash(&msg, &w.signature).map_err(|e| SmsError::Signature(e.to_string()))?;
        self.consume(&w.challenge)?;
        let writer = self.allowed_writer(kind, target).await?;
        if signer != writer {
            let who = match kind {
                SecretKind::DatasetKey => "the dataset's owner",
                SecretKind::AppSecret => "the app's owner",
                SecretKind::RequesterSecret => "the requester",
                SecretKind::ResultKey => "the beneficiary",
            };
            return Err(SmsError::Forbidden(format!(
                "only {who} {writer} may write this secret; the request is signed by {signer}"
            )));
        }
        let slot = slot(kind, target, name);
        let sealed = self.sealer.seal(&slot, w.value.trim().as_bytes());
        let tx = self.db.begin_write().map_err(storage)?;
        tx.open_table(SECRETS).map_err(storage)?.insert(slot.as_str(), sealed.as_slice()).map_err(storage)?;
        tx.commit().map_err(storage)?;
        tracing::info!(kind = kind.as_str(), %target, name, "secret stored");
        Ok(())
    }

    /// Stores a secret written through iExec's SMS API: `signer` (recovered by the caller from iExec's
    /// challenge) must be the slot's writer; `update` replaces an existing secret (web2 `PUT`), else
    /// an existing one is refused (`Exists`), as iExec's SMS does.
    pub async fn write_iexec(
        &self,
        kind: SecretKind,
        target: &Address,
        name: &str,
        value: &str,
        signer: Address,
        update: bool,
    ) -> Result<(), SmsError> {
        Self::check_value(kind, name, value)?;
        let writer = self.allowed_writer(kind, target).await?;
        if signer != writer {
            return Err(SmsError::Forbidden(format!("{signer} may not set this secret of {target}")));
        }
        match (self.exists(kind, target, name)?, update) {
            (true, false) => return Err(SmsError::Exists),
            (false, true) => return Err(SmsError::Missing),
            _ => {}
        }
        let slot = slot(kind, target, name);
        let sealed = self.sealer.seal(&slot, value.trim().as_bytes());
        let tx = self.db.begin_write().map_err(storage)?;
        tx.open_table(SECRETS).map_err(storage)?.insert(slot.as_str(), sealed.as_slice()).map_err(storage)?;
        tx.commit().map_err(storage)?;
        tracing::info!(kind = kind.as_str(), %target, name, "secret stored (iExec API)");
        Ok(())
    }

    pub fn exists(&self, kind: SecretKind, target: &Address, name: &str) -> Result<bool, SmsError> {
        let r = self.db.begin_read().map_err(storage)?;
        let t = r.open_table(SECRETS).map_err(storage)?;
        Ok(t.get(slot(kind, target, name).as_str()).map_err(storage)?.is_some())
    }

    /// The secret's value, for release to an attested enclave session only (never to the API).
    pub fn reveal(&self, kind: SecretKind, target: &Address, name: &str) -> Result<Option<Vec<u8>>, SmsError> {
        let slot = slot(kind, target, name);
        let r = self.db.begin_read().map_err(storage)?;
        let t = r.open_table(SECRETS).map_err(storage)?;
        let Some(v) = t.get(slot.as_str()).map_err(storage)? else { return Ok(None) };
        Ok(Some(self.sealer.open(&slot, v.value())?))
    }
}
