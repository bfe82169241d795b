//! The enclave side of a TEE task, run as its own child process of the worker host (`veil enclave`):
//! measure the app, present evidence with a fresh session key and nonce, receive the task's secrets
//! from the SMS, then pre-compute (download, check, decrypt the dataset into its own folder),
//! compute (the app with the TEE environment), post-compute (digest, zip, encrypt for the
//! beneficiary, upload, sign with the task's enclave challenge key).
//!
//! On the `sim` platform this is an ordinary process: **no hardware protection**. What it keeps is
//! the protocol: the host sees only the request it sent and the outcome below — plus the app's own
//! stdout and stderr, which it hands to the deal's requester (`veil task debug`), so an app must not
//! print its secrets; dataset, secrets and result live only in the enclave's working folder, which
//! is removed before it answers.

use crate::api::AppLogs;
use crate::enclave_http::EnclaveHttp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;
use veil_core::tx::{enclave_message, result_hash, result_seal};
use veil_core::{Address, B256, PrivateKey, Signature};
use veil_exec::Runtime;
use veil_exec::bundle::{Bundle, RuntimeKind};
use veil_exec::contract::{Params, TaskInfo};
use veil_tee::{SealedBox, SessionKey, SessionRequest, SessionSecrets};

/// What the host asks of the enclave (nothing secret).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnclaveRequest {
    pub taskid: B256,
    pub dealid: B256,
    pub idx: u64,
    pub bot_first: u64,
    pub bot_size: u64,
    /// The worker whose result seal this is.
    pub worker: Address,
    /// The app bundle (checked against its on-chain checksum by the host); empty for an image app.
    #[serde(default)]
    pub bundle: PathBuf,
    /// An image app: its unpacked image (checked by the host) and how to run it.
    #[serde(default)]
    pub image: Option<crate::image::ImageTask>,
    /// The enclave's own working folder (created and removed by the enclave).
    pub dir: PathBuf,
    pub sms: String,
    pub storage: String,
    /// The enclave platform (the worker checked it is there).
    #[serde(default)]
    pub tee: crate::tee::TeeChoice,
    pub time_limit_secs: u64,
    pub memory_limit: u64,
    /// Largest app output the enclave seals and uploads, in bytes.
    #[serde(default = "default_max_output")]
    pub max_output: u64,
    /// Interpreters the host already resolved (name → real binary).
    #[serde(default)]
    pub interpreters: std::collections::BTreeMap<String, PathBuf>,
    /// Whether the host found that apps can get a network namespace of their own.
    #[serde(default)]
    pub isolates_network: bool,
    /// Where the enclave keeps sealed compiled modules between tasks.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
}

fn default_max_output() -> u64 {
    veil_exec::result::DEFAULT_MAX_OUTPUT
}

/// What the host gets back: where the (encrypted) result is, its digest and the enclave's signature.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnclaveOutcome {
    pub platform: veil_tee::Platform,
    pub digest: B256,
    pub results: String,
    pub encrypted: bool,
    pub enclave_challenge: Address,
    pub enclave_sign: Signature,
}

/// Runs the whole enclave side; always removes its working folder. The app's output comes back
/// either way, for the requester (`veil task debug`).
pub async fn run(req: EnclaveRequest) -> (Result<EnclaveOutcome, String>, AppLogs) {
    let r = run_in(&req).await;
    let logs = AppLogs::read(&req.dir.join("stdout.log"), &req.dir.join("stderr.log"));
    let _ = std::fs::remove_dir_all(&req.dir);
    (r, logs)
}

async fn session(http: &EnclaveHttp, req: &EnclaveRequest, measurement: B256) -> Result<SessionSecrets, String> {
    let key = SessionKey::generate();
    let nonce: veil_sdk::SmsChallenge =
        http.post_json("SMS", &format!("{}/sms/challenge", req.sms), &serde_json::json!({})).await?;
    let platform = req.tee.platform()?;
    let evidence = platform.evidence(measurement, &key.public(), req.taskid, nonce.challenge)?;
    let sealed: SealedBox =
        http.post_json("SMS", &format!("{}/sms/sessions", req.sms), &SessionRequest { evidence }).await?;
    SessionSecrets::open(&sealed, &key, &req.taskid).map_err(|e| e.to_string())
}

/// Downloads the dataset, checks its checksum, decrypts it into `iexec_in`; its (address, file name).
async fn pre_compute(
    http: &EnclaveHttp,
    s: &SessionSecrets,
    iexec_in: &Path,
    storage: &str,
) -> Result<Option<(String, String)>, String> {
    let Some(d) = &s.dataset else { return Ok(None) };
    // iExec's datasets live at `/ipfs/<cid>`: fetched through the storage's IPFS gateway path.
    let url = match d.url.starts_with("/ipfs/") {
        true => format!("{}{}", storage.trim_end_matches('/'), d.url),
        false => d.url.clone(),
    };
    let encrypted = http.get(&url, crate::worker::MAX_FILE).await?;
    if Sha256::digest(&encrypted).as_slice() != d.checksum.as_slice() {
        return Err(format!("dataset {} at {} does not match its checksum {}", d.address, d.url, d.checksum));
    }
    let key = veil_protect::DatasetKey::parse(&d.key).map_err(|e| e.to_string())?;
    let out = std::fs::File::create(iexec_in.join(&d.filename)).map_err(|e| e.to_string())?;
    veil_protect::dataset::decrypt(&key, encrypted.as_slice(), std::io::BufWriter::new(out))
        .map_err(|e| format!("dataset {}: {e}", d.address))?;
    Ok(Some((d.address.to_string(), d.filename.clone())))
}

async fn run_in(req: &EnclaveRequest) -> Result<EnclaveOutcome, String> {
    let http = EnclaveHttp::default();
    let bundle = match &req.image {
        Some(_) => None,
        None => Some(
            Bundle::from_bytes(std::fs::read(&req.bundle).map_err(|e| format!("app bundle: {e}"))?)
                .map_err(|e| e.to_string())?,
        ),
    };
    // An image's measurement is its manifest digest (the app's checksum).
    let measurement = match (&bundle, &req.image) {
        (Some(b), _) => B256::from(b.measurement()),
        (None, Some(i)) => i.measurement,
        (None, None) => return Err("the request names neither a bundle nor an image".into()),
    };
    let s = session(&http, req, measurement).await?;
    let params = Params::parse(&s.params)?;
    let dirs = veil_exec::TaskDirs::create(&req.dir).map_err(|e| e.to_string())?;
    if let Some(b) = &bundle {
        b.unpack(&dirs.app).map_err(|e| e.to_string())?;
    }
    let dataset = pre_compute(&http, &s, &dirs.iexec_in, &req.storage).await?;
    let mut names = vec![];
    for (i, url) in params.input_files.iter().enumerate() {
        let name = crate::worker::input_name(url, i);
        let bytes = http.get(url, crate::worker::MAX_FILE).await?;
        std::fs::write(dirs.iexec_in.join(&name), bytes).map_err(|e| e.to_string())?;
        names.push(name);
    }
    let info = TaskInfo {
        deal_id: format!("{:?}", req.dealid),
        task_id: format!("{:?}", req.taskid),
        task_index: req.idx,
        bot_first: req.bot_first,
        bot_size: req.bot_size,
        dataset,
        input_files: names,
        app_secret: s.app_secret.clone(),
        requester_secrets: s.requester_secrets.clone(),
    };
    let time_limit = Duration::from_secs(req.time_limit_secs.max(1));
    let out = dirs.iexec_out.clone();
    let Some(bundle) = bundle else {
        let image = req.image.clone().ok_or("no image")?;
        let job = image.job(&dirs, &params.argv()?, &info, time_limit, req.memory_limit).map_err(|e| e.to_string())?;
        let outcome = tokio::task::spawn_blocking(move || image.runtime.run(&job).map_err(|e| e.to_string()))
            .await
            .map_err(|e| e.to_string())??;
        for m in &outcome.missing_limits {
            tracing::warn!(task = %req.taskid, "limit not applied: {m}");
        }
        return post_compute(&http, req, &s, &out).await;
    };
    let job = dirs.job(bundle.manifest.clone(), params.argv()?, &info, time_limit, req.memory_limit);
    let (interpreters, netns) = (req.interpreters.clone(), req.isolates_network);
    let cache = req.cache_dir.clone().map(|d| d.join(format!("{measurement}.wasm.sealed")));
    let outcome = tokio::task::spawn_blocking(move || -> Result<_, String> {
        match job.manifest.runtime {
            RuntimeKind::Process => veil_exec::process::ProcessRuntime::prepared(netns, interpreters).run(&job),
            RuntimeKind::Wasm => {
                let rt = veil_wasm::WasmRuntime::new().map_err(|e| e.to_string())?;
                let wasm = std::fs::read(job.app_dir.join(&job.manifest.entrypoint)).map_err(|e| e.to_string())?;
                if let Some(path) = &cache {
                    load_or_fill_cache(&rt, &wasm, &measurement, path);
                }
                rt.run(&job)
            }
        }
        .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())??;
    for m in &outcome.missing_limits {
        tracing::warn!(task = %req.taskid, "limit not applied: {m}");
    }
    post_compute(&http, req, &s, &out).await
}

/// Compiled modules are kept sealed to the app's measurement, so a later enclave of the same app
/// skips compilation and no other app's enclave (nor a changed file) can feed it code.
fn load_or_fill_cache(rt: &veil_wasm::WasmRuntime, wasm: &[u8], measurement: &B256, path: &Path) {
    if let Some(native) = std::fs::read(path).ok().and_then(|s| veil_tee::session::sealing::unseal(measurement, &s)) {
        // SAFETY: these bytes were sealed (authenticated) by an enclave of this very measurement from
        // `compile_to_bytes` of this same program.
        if unsafe { rt.preload(wasm, &native) }.is_ok() {
            return;
        }
    }
    if let Ok(native) = rt.compile_to_bytes(wasm) {
        let sealed = veil_tee::session::sealing::seal(measurement, &native);
        let tmp = path.with_extension(format!("{:016x}.part", rand::random::<u64>()));
        if std::fs::create_dir_all(path.parent().unwrap_or(Path::new("."))).is_ok()
            && std::fs::write(&tmp, sealed).is_ok()
        {
            let _ = std::fs::rename(&tmp, path);
        }
    }
}

async fn post_compute(
    http: &EnclaveHttp,
    req: &EnclaveRequest,
    s: &SessionSecrets,
    out: &Path,
) -> Result<EnclaveOutcome, String> {
    veil_exec::result::check_output(out, req.max_output).map_err(|e| e.to_string())?;
    let computed = veil_exec::result::read_computed(out).map_err(|e| e.to_string())?;
    let digest = veil_exec::result::digest(out, &computed).map_err(|e| e.to_string())?;
    let zip = crate::worker::zip_dir(out).map_err(|e| format!("cannot pack the result: {e}"))?;
    let (bytes, encrypted) = match &s.result_key {
        Some(pem) => (veil_protect::result::encrypt_result(&zip, pem).map_err(|e| e.to_string())?, true),
        None => (zip, false),
    };
    let storage = req.storage.trim_end_matches('/');
    let blob: veil_sdk::BlobRef = http
        .post_bytes("storage", &format!("{storage}/blobs"), bytes)
        .await
        .map_err(|e| format!("cannot store the result: {e}"))?;
    if blob.id.len() != 64 || !blob.id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("the storage at {storage} answered a blob id that is not a sha256: `{}`", blob.id));
    }
    let results = veil_storage::cid::results_record(&format!("{storage}/blobs/{}", blob.id), &blob.id);
    let challenge = PrivateKey::from_hex(&s.challenge_key).map_err(|e| e.to_string())?;
    let rh = result_hash(&req.taskid, &digest);
    let rs = result_seal(&req.worker, &req.taskid, &digest);
    Ok(EnclaveOutcome {
        platform: req.tee.kind(),
        digest,
        results,
        encrypted,
        enclave_challenge: challenge.address(),
        enclave_sign: challenge.sign_message_hash(&enclave_message(&rh, &rs)),
    })
}
