//! Enclave sessions (DESIGN §6): per-task enclave challenge keys, and the release of a task's
//! secrets to an enclave whose evidence and task pass every rule, sealed to its session key.

use crate::service::{Sms, SmsError, storage};
use redb::{ReadableDatabase, TableDefinition};
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};
use veil_core::state::{Deal, TaskStatus};
use veil_core::{Address, B256, PrivateKey};
use veil_sdk::SecretKind;
use veil_tee::session::DatasetSecret;
use veil_tee::{Claims, Evidence, Platform, SealedBox, SessionRequest, SessionSecrets};

/// Task id → the task's enclave challenge key, sealed.
pub(crate) const ENCLAVE_KEYS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("enclave_keys");

fn refuse(rule: &'static str, detail: impl Into<String>) -> SmsError {
    SmsError::Session { rule, detail: detail.into() }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn random_key() -> PrivateKey {
    loop {
        let mut b = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut b);
        if let Ok(k) = PrivateKey::from_bytes(&b) {
            return k;
        }
    }
}

fn key_slot(taskid: &B256) -> String {
    format!("enclave-challenge/{taskid}")
}

/// What the deal's `params` ask of the session (a non-JSON params string asks nothing).
struct Asked {
    secrets: BTreeMap<u32, String>,
    encrypt_result: bool,
}

fn asked(params: &str) -> Result<Asked, SmsError> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(params) else {
        return Ok(Asked { secrets: BTreeMap::new(), encrypt_result: false });
    };
    let mut secrets = BTreeMap::new();
    if let Some(m) = v.get("iexec_secrets").and_then(|s| s.as_object()) {
        for (k, name) in m {
            let n: u32 = k.parse().map_err(|_| refuse("params", format!("secret index `{k}` is not a number")))?;
            let name = name.as_str().ok_or_else(|| refuse("params", format!("secret {n} is not a name")))?;
            secrets.insert(n, name.to_string());
        }
    }
    let encrypt_result = v.get("iexec_result_encryption").and_then(|b| b.as_bool()).unwrap_or(false);
    Ok(Asked { secrets, encrypt_result })
}

impl Sms {
    /// The task's enclave challenge address, created on the first ask. Only for existing, active,
    /// TEE-tagged tasks (so nobody fills the database with keys for nothing).
    pub async fn enclave_challenge(&self, taskid: &B256) -> Result<Address, SmsError> {
        let (task_status, deal) = self.task_and_deal(taskid).await?;
        if task_status != TaskStatus::Active {
            return Err(refuse("task", format!("task {taskid} is {task_status}, not ACTIVE")));
        }
        if !veil_core::tag::has_tee(&deal.tag) {
            return Err(refuse("tee", format!("the deal of task {taskid} is not TEE-tagged")));
        }
        if let Some(k) = self.challenge_key(taskid)? {
            return Ok(k.address());
        }
        let key = random_key();
        let sealed = self.sealer.seal(&key_slot(taskid), &key.secret_bytes());
        let w = self.db.begin_write().map_err(storage)?;
        w.open_table(ENCLAVE_KEYS).map_err(storage)?.insert(&taskid.0, sealed.as_slice()).map_err(storage)?;
        w.commit().map_err(storage)?;
        Ok(key.address())
    }

    fn challenge_key(&self, taskid: &B256) -> Result<Option<PrivateKey>, SmsError> {
        let r = self.db.begin_read().map_err(storage)?;
        let t = r.open_table(ENCLAVE_KEYS).map_err(storage)?;
        let Some(v) = t.get(&taskid.0).map_err(storage)? else { return Ok(None) };
        let bytes = self.sealer.open(&key_slot(taskid), v.value())?;
        let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| storage("challenge key of the wrong size"))?;
        PrivateKey::from_bytes(&arr).map(Some).map_err(storage)
    }

    async fn task_and_deal(&self, taskid: &B256) -> Result<(TaskStatus, Deal), SmsError> {
        let task = self
            .ledger
            .task(*taskid)
            .await
            .map_err(SmsError::Ledger)?
            .ok_or_else(|| refuse("task", format!("task {taskid} is unknown to the ledger (not initialized)")))?;
        if task.final_deadline <= unix_now() && task.status == TaskStatus::Active {
            return Err(refuse("task", format!("task {taskid} is past its final deadline")));
        }
        let deal = self
            .ledger
            .deal(task.dealid)
            .await
            .map_err(SmsError::Ledger)?
            .ok_or_else(|| refuse("task", format!("the deal {} of task {taskid} is unknown", task.dealid)))?;
        Ok((task.status, deal))
    }

    /// Releases a task's secrets to the enclave that presents `req`, sealed to its session key.
    /// Every rule is checked before anything is read; a refusal names the rule.
    pub async fn session(&self, req: &SessionRequest) -> Result<SealedBox, SmsError> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let evidence = self.with_collateral(&req.evidence, now).await?;
        let claims = evidence.verify(&self.tee, now).map_err(|e| match &e {
            veil_tee::EvidenceError::Appraisal(a) => refuse(a.rule(), e.to_string()),
            _ => refuse("evidence", e.to_string()),
        })?;
        self.consume(&claims.nonce)
            .map_err(|_| refuse("nonce", "unknown, expired or already used nonce (a replayed session request?)"))?;
        let secrets = self.secrets_for(&claims).await?;
        let sealed = secrets.seal(&claims.session_key).map_err(|e| refuse("evidence", e.to_string()))?;
        if claims.platform == Platform::Sim {
            tracing::warn!(task = %claims.taskid, "secrets released to a {}", veil_tee::SIM_NOTICE);
        } else {
            tracing::info!(task = %claims.taskid, "secrets released to an enclave session");
        }
        Ok(sealed)
    }

    /// `evidence` with the SMS's own collateral for its quote, when the SMS keeps a cache.
    async fn with_collateral(&self, evidence: &Evidence, now: u64) -> Result<Evidence, SmsError> {
        let (Some(store), Evidence::Sgx(q) | Evidence::Tdx(q)) = (&self.collateral, evidence) else {
            return Ok(evidence.clone());
        };
        let collateral = store.for_quote(&q.quote, now).await.map_err(|e| refuse("collateral", e.to_string()))?;
        let json = serde_json::to_string(&collateral).map_err(|e| refuse("collateral", e.to_string()))?;
        let mut out = evidence.clone();
        if let Evidence::Sgx(q) | Evidence::Tdx(q) = &mut out {
            q.collateral = json;
        }
        Ok(out)
    }

    async fn secrets_for(&self, c: &Claims) -> Result<SessionSecrets, SmsError> {
        let taskid = c.taskid;
        let (status, deal) = self.task_and_deal(&taskid).await?;
        if status != TaskStatus::Active {
            return Err(refuse("task", format!("task {taskid} is {status}, not ACTIVE")));
        }
        if !veil_core::tag::has_tee(&deal.tag) {
            return Err(refuse(
                "tee",
                format!("the deal of task {taskid} is not TEE-tagged: secrets go to TEE tasks only"),
            ));
        }
        let app = self
            .ledger
            .app(deal.app.pointer)
            .await
            .map_err(SmsError::Ledger)?
            .ok_or_else(|| refuse("measurement", format!("app {} is not registered", deal.app.pointer)))?;
        // A TDX app (what iExec's SDK deploys) registers no fingerprint: its image's manifest digest,
        // the app's checksum, is what the enclave measures.
        let tdx = veil_core::tag::has_tdx(&deal.tag);
        let registered: Option<B256> = match app.mrenclave.trim() {
            "" if tdx => Some(app.checksum),
            m => fingerprint(m),
        };
        if !registered.is_some_and(|r| c.measurements.contains(&r)) {
            let measured: Vec<String> = c.measurements.iter().map(|m| m.to_string()).collect();
            return Err(refuse(
                "measurement",
                format!(
                    "the enclave measured [{}] but app {} registered `{}`",
                    measured.join(", "),
                    deal.app.pointer,
                    app.mrenclave
                ),
            ));
        }
        let challenge_key = self.challenge_key(&taskid)?.ok_or_else(|| {
            refuse("challenge", format!("task {taskid} has no enclave challenge yet (the scheduler creates it)"))
        })?;
        let asked = asked(&deal.params)?;
        let dataset = self.dataset_secret(&deal).await?;
        let mut requester_secrets = BTreeMap::new();
        for (n, name) in &asked.secrets {
            let v = self.reveal(SecretKind::RequesterSecret, &deal.requester, name)?.ok_or_else(|| {
                refuse(
                    "requester-secret",
                    format!(
                        "the deal's requester {} has no secret named `{name}` (veil requester push-secret)",
                        deal.requester
                    ),
                )
            })?;
            requester_secrets.insert(*n, String::from_utf8_lossy(&v).into_owned());
        }
        let app_secret = self
            .reveal(SecretKind::AppSecret, &deal.app.pointer, "")?
            .map(|v| String::from_utf8_lossy(&v).into_owned());
        let result_key = if asked.encrypt_result {
            let v = self.reveal(SecretKind::ResultKey, &deal.beneficiary, "")?.ok_or_else(|| {
                refuse(
                    "result-key",
                    format!("the beneficiary {} has no result-encryption key (veil result push-key)", deal.beneficiary),
                )
            })?;
            Some(String::from_utf8_lossy(&v).into_owned())
        } else {
            None
        };
        Ok(SessionSecrets {
            taskid,
            params: deal.params.clone(),
            dataset,
            requester_secrets,
            app_secret,
            result_key,
            challenge_key: hex::encode(challenge_key.secret_bytes()),
        })
    }

    async fn dataset_secret(&self, deal: &Deal) -> Result<Option<DatasetSecret>, SmsError> {
        if !deal.has_dataset() {
            return Ok(None);
        }
        let address = deal.dataset.pointer;
        let ds = self
            .ledger
            .dataset(address)
            .await
            .map_err(SmsError::Ledger)?
            .ok_or_else(|| refuse("dataset", format!("dataset {address} is not registered")))?;
        let key = self.reveal(SecretKind::DatasetKey, &address, "")?.ok_or_else(|| {
            refuse("dataset", format!("the owner of dataset {address} has not pushed its key to this SMS"))
        })?;
        Ok(Some(DatasetSecret {
            address,
            url: ds.multiaddr,
            checksum: ds.checksum,
            key: String::from_utf8_lossy(&key).into_owned(),
            filename: address.to_string(),
        }))
    }
}

/// An app's registered fingerprint: a bare 32-byte hex value, or iExec's `mrenclave` JSON for SCONE
/// or Gramine (`{"framework", "version", "entrypoint", "heapSize", "fingerprint"}`).
fn fingerprint(mrenclave: &str) -> Option<B256> {
    if let Ok(b) = mrenclave.parse() {
        return Some(b);
    }
    let v: serde_json::Value = serde_json::from_str(mrenclave).ok()?;
    let framework = v["framework"].as_str()?.to_ascii_uppercase();
    if framework != "SCONE" && framework != "GRAMINE" {
        return None;
    }
    let f = v["fingerprint"].as_str()?;
    let f = if f.starts_with("0x") { f.to_string() } else { format!("0x{f}") };
    f.parse().ok()
}

#[cfg(test)]
mod fingerprint_tests {
    #[test]
    fn fingerprints_are_hex_or_iexecs_mrenclave_json() {
        let m = "ab".repeat(32);
        let want = Some(format!("0x{m}").parse().unwrap());
        assert_eq!(super::fingerprint(&format!("0x{m}")), want);
        let json = format!(
            r#"{{"framework":"SCONE","version":"v5","entrypoint":"python /app.py","heapSize":1073741824,"fingerprint":"{m}"}}"#
        );
        assert_eq!(super::fingerprint(&json), want);
        assert_eq!(super::fingerprint(&json.replace("SCONE", "GRAMINE")), want);
        assert_eq!(super::fingerprint(&json.replace("SCONE", "OTHER")), None);
        assert_eq!(super::fingerprint(r#"{"framework":"SCONE"}"#), None);
        assert_eq!(super::fingerprint("not a fingerprint"), None);
    }
}
