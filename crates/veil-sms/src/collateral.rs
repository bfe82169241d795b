//! Intel's collateral for verifying quotes, as the SMS holds it: a cache on disk (one file per TEE,
//! FMSPC and PCK CA), refreshed from the PCCS or Intel PCS the operator sets (its v4 API). Fails
//! closed: collateral past its first `nextUpdate` is never used, whether the PCCS answers or not, and
//! no network is needed while the cache is fresh. Fetched collateral is stored only once a quote has
//! verified with it (a PCCS serving altered collateral cannot poison the cache).

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;
use veil_tee::dcap::{self, CollateralKey, QuoteCollateralV3, QuoteError};

/// Refresh a fresh entry this often anyway (Intel reissues TCB info at TCB recoveries).
pub const REFRESH_AFTER: Duration = Duration::from_secs(24 * 3600);
/// After a failed fetch for a key, wait this long before asking the PCCS again.
pub const RETRY_AFTER: Duration = Duration::from_secs(60);
/// Largest PCCS answer read (TCB info for a FMSPC is about 10 KiB; CRLs a few KiB).
const MAX_ANSWER: usize = 1 << 20;
/// Intel's PCS; its root CA CRL is published beside the API, not under it.
const INTEL_PCS: &str = "https://api.trustedservices.intel.com";
const INTEL_ROOT_CRL: &str = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der";

#[derive(Debug, thiserror::Error)]
pub enum CollateralError {
    #[error("{0}")]
    Quote(#[from] QuoteError),
    #[error(
        "no collateral for {what}: the SMS has none cached and {why} (set --pccs-url, or put the collateral in {dir})"
    )]
    Missing { what: String, why: String, dir: String },
    #[error(
        "the collateral for {what} expired at {expired} (unix) and {why}: refused (stale collateral is never used)"
    )]
    Stale { what: String, expired: u64, why: String },
    #[error("the collateral cache {0}: {1}")]
    Io(String, String),
}

/// One cached collateral and what the SMS knows about it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Unix seconds when it was fetched (or put in the cache).
    pub fetched_at: u64,
    /// Unix seconds when its first piece expires.
    pub expires: u64,
    /// Where it came from (the PCCS's URL, or `file`).
    pub source: String,
    pub collateral: QuoteCollateralV3,
}

/// A PCCS or Intel's PCS (its v4 API).
pub struct Pccs {
    pub url: String,
    http: reqwest::Client,
}

pub struct CollateralStore {
    dir: PathBuf,
    pccs: Option<Pccs>,
    /// When each key was last fetched without success (unix seconds): not asked again before
    /// [`RETRY_AFTER`], so refused quotes cannot make the SMS hammer its PCCS.
    failed: Mutex<HashMap<CollateralKey, u64>>,
}

fn describe(k: &CollateralKey) -> String {
    format!("{} FMSPC {} ({} CA)", if k.tdx { "TDX" } else { "SGX" }, k.fmspc, k.ca)
}

impl CollateralStore {
    /// A store caching in `dir`, refreshing from `pccs` (a PCCS or Intel's PCS base URL) if given.
    pub fn open(dir: &Path, pccs: Option<String>) -> Result<CollateralStore, CollateralError> {
        std::fs::create_dir_all(dir).map_err(|e| CollateralError::Io(dir.display().to_string(), e.to_string()))?;
        let pccs =
            pccs.map(|u| Pccs::new(&u)).transpose().map_err(|e| CollateralError::Io(dir.display().to_string(), e))?;
        Ok(CollateralStore { dir: dir.to_path_buf(), pccs, failed: Mutex::new(HashMap::new()) })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn pccs(&self) -> Option<&str> {
        self.pccs.as_ref().map(|p| p.url.as_str())
    }

    /// Collateral to verify `quote` at `now`: the cached one while fresh (refreshed in passing once
    /// older than [`REFRESH_AFTER`], kept if the PCCS cannot answer), else fetched, checked and
    /// cached; an error when nothing fresh can be had.
    pub async fn for_quote(&self, quote: &[u8], now: u64) -> Result<QuoteCollateralV3, CollateralError> {
        let key = dcap::collateral_key(quote)?;
        let cached = self.read(&key)?;
        let fresh = cached.as_ref().filter(|e| e.expires > now);
        if let Some(e) = fresh
            && (self.pccs.is_none() || now.saturating_sub(e.fetched_at) < REFRESH_AFTER.as_secs())
        {
            return Ok(e.collateral.clone());
        }
        let fetched = self.refresh(&key, quote, now).await;
        match (fetched, fresh, cached.as_ref()) {
            (Ok(c), _, _) => Ok(c),
            (Err(why), Some(e), _) => {
                tracing::warn!(key = %describe(&key), "collateral not refreshed ({why}): the cached one is valid until {}", e.expires);
                Ok(e.collateral.clone())
            }
            (Err(why), None, Some(e)) => Err(CollateralError::Stale { what: describe(&key), expired: e.expires, why }),
            (Err(why), None, None) => {
                Err(CollateralError::Missing { what: describe(&key), why, dir: self.dir.display().to_string() })
            }
        }
    }

    /// Fetches the key's collateral, checks `quote` verifies with it at `now` and caches it.
    async fn refresh(&self, key: &CollateralKey, quote: &[u8], now: u64) -> Result<QuoteCollateralV3, String> {
        let Some(pccs) = &self.pccs else { return Err("no PCCS is set".into()) };
        let url = &pccs.url;
        let last = self.failed.lock().unwrap_or_else(|p| p.into_inner()).get(key).copied();
        if let Some(at) = last
            && now.saturating_sub(at) < RETRY_AFTER.as_secs()
        {
            return Err(format!("the PCCS at {url} failed less than {} s ago", RETRY_AFTER.as_secs()));
        }
        let outcome = async {
            let collateral = pccs.fetch(key).await?;
            let expires = dcap::collateral_expiry(&collateral).map_err(|e| format!("the PCCS at {url} sent {e}"))?;
            if expires <= now {
                return Err(format!("the PCCS at {url} has nothing fresher (its collateral expired at {expires})"));
            }
            // Signatures and chains only: a TCB policy refusal is the quote's business, not the collateral's.
            match dcap::inspect(quote, &collateral, now, &Default::default()) {
                Err(QuoteError::Invalid(e)) => {
                    return Err(format!("the quote does not verify with the collateral from {url}: {e}"));
                }
                Err(e) => return Err(e.to_string()),
                Ok(_) => {}
            }
            let entry = Entry { fetched_at: now, expires, source: url.clone(), collateral };
            self.write(key, &entry).map_err(|e| e.to_string())?;
            tracing::info!(key = %describe(key), expires, "collateral refreshed from {url}");
            Ok(entry.collateral)
        }
        .await;
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        match &outcome {
            Ok(_) => failed.remove(key),
            Err(_) => failed.insert(key.clone(), now),
        };
        outcome
    }

    fn path(&self, key: &CollateralKey) -> PathBuf {
        self.dir.join(key.file_name())
    }

    /// The cached entry for `key`, if any (an unreadable one is an error, not a miss: the operator
    /// should know).
    pub fn read(&self, key: &CollateralKey) -> Result<Option<Entry>, CollateralError> {
        let path = self.path(key);
        let io = |e: String| CollateralError::Io(path.display().to_string(), e);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| io(e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e.to_string())),
        }
    }

    /// Writes `entry` for `key` atomically (temporary file, sync, rename).
    pub fn write(&self, key: &CollateralKey, entry: &Entry) -> Result<(), CollateralError> {
        use std::io::Write;
        let path = self.path(key);
        let tmp = path.with_extension("json.tmp");
        let io = |e: std::io::Error| CollateralError::Io(path.display().to_string(), e.to_string());
        let bytes = serde_json::to_vec_pretty(entry)
            .map_err(|e| CollateralError::Io(path.display().to_string(), e.to_string()))?;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }
}

impl Pccs {
    pub fn new(url: &str) -> Result<Pccs, String> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().map_err(|e| e.to_string())?;
        Ok(Pccs { url: url.trim_end_matches('/').to_string(), http })
    }

    /// The PCCS v4 API: PCK CRL, TCB info and QE identity (with their issuer chains in headers),
    /// and the root CA CRL.
    pub async fn fetch(&self, key: &CollateralKey) -> Result<QuoteCollateralV3, String> {
        let url = &self.url;
        let tee = if key.tdx { "tdx" } else { "sgx" };
        let (pck_crl, pck_crl_issuer_chain) = self
            .get(&format!("{url}/sgx/certification/v4/pckcrl?ca={}&encoding=der", key.ca), "SGX-PCK-CRL-Issuer-Chain")
            .await?;
        let (tcb, tcb_info_issuer_chain) =
            self.get(&format!("{url}/{tee}/certification/v4/tcb?fmspc={}", key.fmspc), "TCB-Info-Issuer-Chain").await?;
        let (qe, qe_identity_issuer_chain) =
            self.get(&format!("{url}/{tee}/certification/v4/qe/identity"), "SGX-Enclave-Identity-Issuer-Chain").await?;
        let root_ca_crl = if url.starts_with(INTEL_PCS) {
            self.get(INTEL_ROOT_CRL, "").await?.0
        } else {
            // A PCCS answers the DER CRL as hex text.
            let (body, _) = self.get(&format!("{url}/sgx/certification/v4/rootcacrl"), "").await?;
            match std::str::from_utf8(&body).ok().and_then(|t| hex::decode(t.trim()).ok()) {
                Some(der) => der,
                None => body,
            }
        };
        let (tcb_info, tcb_info_signature) =
            signed_part(&tcb, "tcbInfo").map_err(|e| format!("{url}: TCB info {e}"))?;
        let (qe_identity, qe_identity_signature) =
            signed_part(&qe, "enclaveIdentity").map_err(|e| format!("{url}: QE identity {e}"))?;
        Ok(QuoteCollateralV3 {
            pck_crl_issuer_chain,
            root_ca_crl,
            pck_crl,
            tcb_info_issuer_chain,
            tcb_info,
            tcb_info_signature,
            qe_identity_issuer_chain,
            qe_identity,
            qe_identity_signature,
            pck_certificate_chain: None,
        })
    }

    /// GETs `url`: its body (bounded) and the URL-decoded header `chain` (unless empty).
    async fn get(&self, url: &str, chain: &str) -> Result<(Vec<u8>, String), String> {
        let r = self.http.get(url).send().await.map_err(|e| format!("cannot reach {url}: {e}"))?;
        if !r.status().is_success() {
            return Err(format!("{url} answered {}", r.status()));
        }
        let issuer_chain = match chain {
            "" => String::new(),
            name => {
                let raw = r
                    .headers()
                    .get(name)
                    .or_else(|| r.headers().get(format!("SGX-{name}")))
                    .ok_or_else(|| format!("{url} sent no {name} header"))?;
                percent_decode(raw.as_bytes())
                    .ok_or_else(|| format!("{url}: the {name} header is not URL-encoded PEM"))?
            }
        };
        if r.content_length().is_some_and(|n| n as usize > MAX_ANSWER) {
            return Err(format!("{url} answered more than {MAX_ANSWER} bytes"));
        }
        let body = r.bytes().await.map_err(|e| format!("{url}: {e}"))?;
        if body.len() > MAX_ANSWER {
            return Err(format!("{url} answered more than {MAX_ANSWER} bytes"));
        }
        Ok((body.to_vec(), issuer_chain))
    }
}

/// `{"<field>": {...}, "signature": "hex"}` → the exact bytes of the signed object (Intel signs them
/// as sent) and the signature.
fn signed_part(body: &[u8], field: &str) -> Result<(String, Vec<u8>), String> {
    #[derive(Deserialize)]
    struct Signed<'a> {
        #[serde(borrow)]
        signature: &'a str,
    }
    let text = std::str::from_utf8(body).map_err(|_| "is not UTF-8".to_string())?;
    let all: HashMap<String, &serde_json::value::RawValue> =
        serde_json::from_str(text).map_err(|e| format!("is not JSON: {e}"))?;
    let part = all.get(field).ok_or_else(|| format!("has no `{field}`"))?;
    let sig: Signed = serde_json::from_str(text).map_err(|e| format!("has no signature: {e}"))?;
    let signature = hex::decode(sig.signature).map_err(|_| "signature is not hex".to_string())?;
    Ok((part.get().to_string(), signature))
}

/// `%XX` decoding of a header value (Intel URL-encodes its PEM chains).
fn percent_decode(raw: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'%' => {
                let hex = raw.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}
