//! The worker: takes assignments, runs the app, stores the result, contributes and reveals.

use crate::api::{AppLogs, Assignment, LogsUpload, Register, Report, ReportOutcome, Session, register_message};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Semaphore, oneshot};
use veil_core::events::Event;
use veil_core::tx::{result_hash, result_seal};
use veil_core::{Address, B256, Call, PrivateKey};
use veil_exec::bundle::{Bundle, RuntimeKind};
use veil_exec::contract::{Params, TaskInfo};
use veil_exec::process::ProcessRuntime;
use veil_exec::{Runtime, TaskDirs};
use veil_sdk::{Backoff, Client, Ledger};

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub scheduler: String,
    /// Where results go (default: the node's embedded storage).
    pub storage: String,
    pub key: PrivateKey,
    pub slots: u32,
    pub work_dir: PathBuf,
    pub memory_limit: u64,
    /// Largest app output (`IEXEC_OUT`) this worker uploads, in bytes.
    pub max_output: u64,
    /// The SMS that releases TEE tasks' secrets to enclaves (default: the node's embedded one).
    pub sms: String,
    /// The program run as the enclave (`veil`, with the `enclave` subcommand).
    pub enclave_program: PathBuf,
    /// Whether image apps may reach the network (iExec's apps do: email, APIs).
    pub app_network: bool,
    /// Largest size of the image cache (unpacked images and their layers), in bytes.
    pub image_cache: u64,
    /// The enclave platform TEE tasks run on.
    pub tee: crate::tee::TeeChoice,
}

pub struct Worker {
    cfg: WorkerConfig,
    /// Veil's node or PoCo: the worker never knows which.
    ledger: Arc<dyn Ledger>,
    storage: Client,
    http: reqwest::Client,
    process: ProcessRuntime,
    /// Created on the first WebAssembly task.
    wasm: std::sync::OnceLock<Arc<veil_wasm::WasmRuntime>>,
    /// Image apps: the cache and the container runtime, or why there are none.
    images: Result<crate::image::Images, String>,
    /// The TEE platform checked at start, or why TEE tasks cannot run here.
    tee: Result<String, String>,
    /// Tasks waiting for their consensus, fed by the worker's one event stream.
    waiters: std::sync::Mutex<HashMap<B256, oneshot::Sender<Result<B256, String>>>>,
}

/// Why a task failed here, and whether another attempt could do better (a download or the node
/// failing) or not (the app itself failed, or the task cannot run here).
#[derive(Debug)]
struct Failure {
    cause: String,
    retry: bool,
}

impl From<String> for Failure {
    fn from(cause: String) -> Failure {
        Failure { cause, retry: true }
    }
}

fn fatal(cause: impl Into<String>) -> Failure {
    Failure { cause: cause.into(), retry: false }
}

/// Largest input file or result a worker accepts.
pub const MAX_FILE: u64 = 1 << 30;

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Worker {
    pub fn new(cfg: WorkerConfig, ledger: Arc<dyn Ledger>) -> Arc<Worker> {
        let process = ProcessRuntime::new();
        if !process.isolates_network() {
            tracing::warn!("this machine gives apps no network namespace: apps run WITH network access");
        }
        let http = veil_sdk::http();
        let images = crate::image::Images::open(&cfg.work_dir, cfg.image_cache, cfg.app_network, http.clone());
        match &images {
            Ok(i) => {
                i.clear_stale(&cfg.work_dir);
                tracing::info!("{}", i.describe());
            }
            Err(e) => tracing::warn!("no image cache: {e}"),
        }
        let tee = cfg.tee.check();
        match &tee {
            Ok(p) => tracing::info!("TEE tasks run on {p}"),
            Err(cause) => tracing::warn!("TEE tasks are refused here: {cause}"),
        }
        Arc::new(Worker {
            tee,
            ledger,
            storage: Client::new(&cfg.storage),
            http,
            process,
            images,
            wasm: std::sync::OnceLock::new(),
            waiters: Default::default(),
            cfg,
        })
    }

    /// Says it is alive every `every` while `token` is its session (the run loop replaces the
    /// token when it registers again).
    async fn heartbeat(self: Arc<Self>, token: Arc<std::sync::Mutex<Option<String>>>, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            let Some(t) = token.lock().unwrap_or_else(|p| p.into_inner()).clone() else { continue };
            let url = format!("{}/workers/heartbeat", self.cfg.scheduler);
            if let Err(e) = self.http.post(url).bearer_auth(&t).send().await {
                tracing::debug!("heartbeat: {e}");
            }
        }
    }

    async fn session(&self) -> Result<Session, String> {
        let ts = unix_now();
        let me = self.cfg.key.address();
        let signature = self.cfg.key.sign_message_hash(&register_message(&me, self.cfg.slots, ts));
        let body = Register { worker: me, slots: self.cfg.slots, timestamp: ts, signature };
        let r = self
            .http
            .post(format!("{}/workers/register", self.cfg.scheduler))
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(r.text().await.unwrap_or_default());
        }
        r.json::<Session>().await.map_err(|e| e.to_string())
    }

    /// Follows the ledger once for all tasks (from the head at start, resuming after the last block
    /// seen when the ledger goes away, with a growing pause) and hands consensus events to the
    /// tasks waiting for them.
    async fn follow(self: Arc<Self>) {
        let mut backoff = Backoff::new();
        let mut from = loop {
            match self.ledger.chain().await {
                Ok(c) => break c.head + 1,
                Err(e) => {
                    tracing::warn!("cannot reach {}: {e}", self.ledger.describe());
                    backoff.wait().await;
                }
            }
        };
        loop {
            match self.ledger.follow(from).await {
                Ok(mut stream) => {
                    while let Some(Ok(b)) = stream.next().await {
                        backoff.reset();
                        from = b.block + 1;
                        for e in &b.events {
                            let (task, answer) = match e {
                                Event::TaskConsensus { taskid, consensus } => (taskid, Ok(*consensus)),
                                Event::TaskClaimed { taskid } => (taskid, Err("the task was claimed".to_string())),
                                _ => continue,
                            };
                            let waiter = self.waiters.lock().unwrap_or_else(|p| p.into_inner()).remove(task);
                            if let Some(w) = waiter {
                                let _ = w.send(answer);
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!("cannot follow {}: {e}", self.ledger.describe()),
            }
            backoff.wait().await;
        }
    }

    /// Registers, then takes work up to its slot count, forever.
    pub async fn run(self: Arc<Self>) {
        tokio::spawn(self.clone().follow());
        let slots = Arc::new(Semaphore::new(self.cfg.slots as usize));
        let mut token: Option<String> = None;
        let shared_token = Arc::new(std::sync::Mutex::new(None));
        let mut heartbeat: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            let t = match &token {
                Some(t) => t.clone(),
                None => match self.session().await {
                    Ok(s) => {
                        tracing::info!(worker = %self.cfg.key.address(), scheduler = %self.cfg.scheduler, "registered");
                        token = Some(s.token.clone());
                        *shared_token.lock().unwrap_or_else(|p| p.into_inner()) = Some(s.token.clone());
                        if let Some(h) = heartbeat.take() {
                            h.abort();
                        }
                        let every = Duration::from_millis(s.heartbeat_ms.max(100));
                        heartbeat = Some(tokio::spawn(self.clone().heartbeat(shared_token.clone(), every)));
                        s.token
                    }
                    Err(e) => {
                        tracing::warn!("cannot register with the scheduler: {e}");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = slots.clone().acquire_owned().await else { return };
            let r = self.http.post(format!("{}/workers/poll", self.cfg.scheduler)).bearer_auth(&t).send().await;
            match r {
                Ok(r) if r.status().as_u16() == 200 => match r.json::<Assignment>().await {
                    Ok(a) => {
                        let me = self.clone();
                        let tok = t.clone();
                        tokio::spawn(async move {
                            me.handle(a, &tok).await;
                            drop(permit);
                        });
                    }
                    Err(e) => tracing::warn!("bad assignment: {e}"),
                },
                Ok(r) if r.status().as_u16() == 204 => {}
                Ok(r) => {
                    tracing::warn!("scheduler refused the poll ({}): registering again", r.status());
                    token = None;
                }
                Err(e) => {
                    tracing::warn!("scheduler unreachable: {e}");
                    token = None;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn report(&self, token: &str, a: &Assignment, outcome: ReportOutcome) {
        let body = Report { taskid: a.taskid, outcome };
        if let Err(e) =
            self.http.post(format!("{}/workers/report", self.cfg.scheduler)).bearer_auth(token).json(&body).send().await
        {
            tracing::warn!("cannot report to the scheduler: {e}");
        }
    }

    async fn handle(&self, a: Assignment, token: &str) {
        let dir = self.cfg.work_dir.join("tasks").join(format!("{}-{}", a.taskid, self.cfg.key.address()));
        let r = self.work(&a, &dir, token).await;
        let _ = tokio::fs::remove_dir_all(&dir).await;
        if let Err(Failure { cause, retry }) = r {
            tracing::warn!(task = %a.taskid, retry, "task failed: {cause}");
            self.report(token, &a, ReportOutcome::Failed { cause, retry }).await;
        }
    }

    async fn send(&self, call: Call) -> Result<veil_core::block::Receipt, String> {
        crate::retry::send_patiently(self.ledger.as_ref(), &self.cfg.key, call).await.map_err(|e| e.to_string())
    }

    /// The app's bundle file, downloaded once and checked against its on-chain checksum.
    async fn app(&self, a: &Assignment) -> Result<(PathBuf, Bundle), Failure> {
        let id: String = a.app_checksum.0.iter().map(|b| format!("{b:02x}")).collect();
        let cache = self.cfg.work_dir.join("apps").join(&id);
        let file = cache.with_extension("zip");
        if !file.exists() {
            if !a.app_multiaddr.starts_with("http://") && !a.app_multiaddr.starts_with("https://") {
                return Err(fatal(format!(
                    "app {} is at `{}`: a Veil bundle is fetched over HTTP (an image app has type DOCKER: `veil app deploy --image`)",
                    a.app, a.app_multiaddr
                )));
            }
            let bytes = download(&self.http, &a.app_multiaddr).await?;
            if Sha256::digest(&bytes).as_slice() != a.app_checksum.as_slice() {
                return Err(fatal(format!(
                    "app bundle from {} does not match the app's checksum {}",
                    a.app_multiaddr, a.app_checksum
                )));
            }
            // Tasks of the same app run side by side: only ever show them a complete file.
            tokio::fs::create_dir_all(cache.parent().unwrap_or(Path::new("."))).await.map_err(|e| e.to_string())?;
            let tmp = cache.with_extension(format!("{}.part", rand::random::<u64>()));
            tokio::fs::write(&tmp, &bytes).await.map_err(|e| e.to_string())?;
            tokio::fs::rename(&tmp, &file).await.map_err(|e| e.to_string())?;
        }
        let bytes = tokio::fs::read(&file).await.map_err(|e| e.to_string())?;
        let bundle = Bundle::from_bytes(bytes).map_err(|e| fatal(e.to_string()))?;
        Ok((file, bundle))
    }

    /// An image app's image (checked against the app's checksum) and its shared root filesystem.
    async fn image(&self, a: &Assignment) -> Result<(veil_oci::Image, veil_oci::RootfsLease), Failure> {
        let images = self.images.as_ref().map_err(|e| fatal(format!("this worker cannot run image apps: {e}")))?;
        images.runtime().map_err(fatal)?;
        let image = images.fetch(&a.app_multiaddr, &a.app_checksum).await.map_err(|e| Failure {
            cause: format!("app {} ({}): {}", a.app, a.app_multiaddr, e.cause),
            retry: e.retry,
        })?;
        let lease = tokio::task::block_in_place(|| images.rootfs(&image)).map_err(fatal)?;
        if lease.unpacked_now {
            tracing::info!(app = %a.app, image = %image.manifest_digest, "image unpacked into the cache");
        }
        Ok((image, lease))
    }

    async fn work(&self, a: &Assignment, dir: &Path, token: &str) -> Result<(), Failure> {
        if a.enclave_challenge != Address::ZERO {
            return self.work_in_enclave(a, token).await;
        }
        if a.dataset != Address::ZERO {
            return Err(fatal(
                "this task uses a dataset: protected data is only decrypted inside an enclave (TEE tasks), not on a standard worker",
            ));
        }
        if crate::image::is_image_app(&a.app_type) {
            return self.work_on_image(a, dir, token).await;
        }
        let (file, bundle) = self.app(a).await?;
        let params = Params::parse(&a.params).map_err(fatal)?;
        let mut dirs = TaskDirs::create(dir).map_err(|e| e.to_string())?;
        match bundle.manifest.runtime {
            // A wasm guest never sees its bundle's folder: every task of the app can share one copy.
            RuntimeKind::Wasm => dirs.app = shared_unpacked(&file, &bundle).map_err(|e| e.to_string())?,
            // A process may write into its folder: each task gets its own.
            RuntimeKind::Process => bundle.unpack(&dirs.app).map_err(|e| e.to_string())?,
        }
        let names = fetch_inputs(&self.http, &params.input_files, &dirs.iexec_in).await?;
        let info = self.task_info(a, names);
        let time_limit = Duration::from_secs(a.time_limit_secs.max(1));
        let args = params.argv().map_err(fatal)?;
        let job = dirs.job(bundle.manifest.clone(), args, &info, time_limit, self.cfg.memory_limit);
        let out = dirs.iexec_out.clone();
        let rt: &dyn Runtime = match bundle.manifest.runtime {
            RuntimeKind::Process => &self.process,
            RuntimeKind::Wasm => match self.wasm.get() {
                Some(w) => w.as_ref(),
                None => {
                    let w = veil_wasm::WasmRuntime::new().map_err(|e| e.to_string())?;
                    self.wasm.get_or_init(|| w).as_ref()
                }
            },
        };
        let ran = tokio::task::block_in_place(|| rt.run(&job));
        self.finish(a, token, ran, &out).await
    }

    /// A standard task of an image app: its container on the shared image, with its own layer.
    async fn work_on_image(&self, a: &Assignment, dir: &Path, token: &str) -> Result<(), Failure> {
        let (image, lease) = self.image(a).await?;
        let params = Params::parse(&a.params).map_err(fatal)?;
        let dirs = TaskDirs::create(dir).map_err(|e| e.to_string())?;
        let names = fetch_inputs(&self.http, &params.input_files, &dirs.iexec_in).await?;
        let info = self.task_info(a, names);
        let images = self.images.as_ref().map_err(|e| fatal(e.clone()))?;
        let rt = images.runtime().map_err(fatal)?;
        let task = crate::image::ImageTask::new(&image, &lease.path, rt);
        let time_limit = Duration::from_secs(a.time_limit_secs.max(1));
        let args = params.argv().map_err(fatal)?;
        let job = task.job(&dirs, &args, &info, time_limit, self.cfg.memory_limit).map_err(|e| fatal(e.to_string()))?;
        let ran = tokio::task::block_in_place(|| rt.run(&job));
        drop(lease);
        self.finish(a, token, ran, &dirs.iexec_out).await
    }

    fn task_info(&self, a: &Assignment, input_files: Vec<String>) -> TaskInfo {
        TaskInfo {
            deal_id: format!("{:?}", a.dealid),
            task_id: format!("{:?}", a.taskid),
            task_index: a.idx,
            bot_first: a.bot_first,
            bot_size: a.bot_size,
            dataset: None,
            input_files,
            ..Default::default()
        }
    }

    /// After a standard task's run: its logs to the requester, then the result stored, contributed
    /// and revealed.
    async fn finish(
        &self,
        a: &Assignment,
        token: &str,
        ran: Result<veil_exec::Outcome, veil_exec::ExecError>,
        out: &Path,
    ) -> Result<(), Failure> {
        let root = out.parent().unwrap_or(out);
        // The app's output goes to its requester (`veil task debug`), never into causes or logs here.
        self.send_logs(token, a, AppLogs::read(&root.join("stdout.log"), &root.join("stderr.log"))).await;
        let outcome =
            ran.map_err(|e| fatal(format!("{e} (the requester sees the app's output with veil task debug)")))?;
        for m in &outcome.missing_limits {
            tracing::warn!(task = %a.taskid, "limit not applied: {m}");
        }
        veil_exec::result::check_output(out, self.cfg.max_output).map_err(|e| fatal(e.to_string()))?;
        let computed = veil_exec::result::read_computed(out).map_err(|e| fatal(e.to_string()))?;
        let digest = veil_exec::result::digest(out, &computed).map_err(|e| fatal(e.to_string()))?;
        let zip = zip_dir(out).map_err(|e| fatal(format!("cannot pack the result: {e}")))?;
        let blob = self.storage.upload_bytes(zip).await.map_err(|e| format!("cannot store the result: {e}"))?;
        // iExec's record (its SDK fetches `/ipfs/<cid>` from its gateway) and where Veil's clients go.
        let results = veil_storage::cid::results_record(&blob.url, &blob.id);

        // Wait before contributing so the consensus event cannot be missed.
        let (tell, consensus_event) = oneshot::channel();
        self.waiters.lock().unwrap_or_else(|p| p.into_inner()).insert(a.taskid, tell);
        let r = self.contribute_and_reveal(a, token, &digest, &results, None, consensus_event).await;
        self.waiters.lock().unwrap_or_else(|p| p.into_inner()).remove(&a.taskid);
        // Once contributed, the task is not ours to run again.
        r.map_err(fatal)
    }

    /// A TEE task: the enclave (a child process) does everything that touches plaintext; this host
    /// only contributes what it returns.
    async fn work_in_enclave(&self, a: &Assignment, token: &str) -> Result<(), Failure> {
        if let Err(cause) = &self.tee {
            return Err(fatal(format!("this worker cannot run TEE tasks: {cause}")));
        }
        let mut interpreters = std::collections::BTreeMap::new();
        // An image app's enclave runs the image the host checked and unpacked (held while it runs).
        let (bundle, image, _lease) = if crate::image::is_image_app(&a.app_type) {
            let (image, lease) = self.image(a).await?;
            let rt = self.images.as_ref().map_err(|e| fatal(e.clone()))?.runtime().map_err(fatal)?;
            let task = crate::image::ImageTask::new(&image, &lease.path, rt);
            (PathBuf::new(), Some(task), Some(lease))
        } else {
            let (bundle, app) = self.app(a).await?;
            // Resolving an interpreter costs a start or two of it: the host does it once for all enclaves.
            if let Some(i) = &app.manifest.interpreter {
                interpreters.insert(i.clone(), self.process.interpreter(i).map_err(|e| fatal(e.to_string()))?);
            }
            (bundle, None, None)
        };
        let dir = self.cfg.work_dir.join("enclaves").join(format!("{}-{:016x}", a.taskid, rand::random::<u64>()));
        let req = crate::enclave::EnclaveRequest {
            taskid: a.taskid,
            dealid: a.dealid,
            idx: a.idx,
            bot_first: a.bot_first,
            bot_size: a.bot_size,
            worker: self.cfg.key.address(),
            bundle,
            image,
            dir: dir.clone(),
            sms: self.cfg.sms.clone(),
            storage: self.cfg.storage.clone(),
            time_limit_secs: a.time_limit_secs,
            memory_limit: self.cfg.memory_limit,
            max_output: self.cfg.max_output,
            interpreters,
            isolates_network: self.process.isolates_network(),
            cache_dir: Some(self.cfg.work_dir.join("enclave-cache")),
            tee: self.cfg.tee.clone(),
        };
        let r = self.spawn_enclave(&req).await;
        let _ = tokio::fs::remove_dir_all(&dir).await;
        let (out, logs) = r.map_err(fatal)?;
        self.send_logs(token, a, logs).await;
        let out = out.map_err(fatal)?;
        if out.platform == veil_tee::Platform::Sim {
            tracing::warn!(task = %a.taskid, "TEE task ran in a {}", veil_tee::SIM_NOTICE);
        }
        if let Some(platform) = platform_name(out.platform) {
            self.report(token, a, ReportOutcome::Enclave { platform }).await;
        }
        if a.trust <= 1 {
            let call = Call::ContributeAndFinalize {
                taskid: a.taskid,
                result_digest: out.digest,
                results: out.results.clone().into_bytes().into(),
                results_callback: Default::default(),
                enclave_challenge: out.enclave_challenge,
                enclave_sign: Some(out.enclave_sign),
                authorization_sign: a.authorization,
            };
            self.send(call).await.map_err(|e| fatal(format!("contributeAndFinalize: {e}")))?;
            let enclave = platform_name(out.platform);
            self.report(token, a, ReportOutcome::Contributed { results: out.results, enclave }).await;
            tracing::info!(task = %a.taskid, digest = %out.digest, "contributed and finalized (TEE)");
            return Ok(());
        }
        let (tell, consensus_event) = oneshot::channel();
        self.waiters.lock().unwrap_or_else(|p| p.into_inner()).insert(a.taskid, tell);
        let r = self
            .contribute_and_reveal(
                a,
                token,
                &out.digest,
                &out.results,
                Some((out.enclave_sign, platform_name(out.platform).unwrap_or_default())),
                consensus_event,
            )
            .await;
        self.waiters.lock().unwrap_or_else(|p| p.into_inner()).remove(&a.taskid);
        r.map_err(fatal)
    }

    /// Runs `veil enclave` with the request on its stdin; its stdout is the outcome (or an error).
    async fn spawn_enclave(
        &self,
        req: &crate::enclave::EnclaveRequest,
    ) -> Result<(Result<crate::enclave::EnclaveOutcome, String>, AppLogs), String> {
        use tokio::io::AsyncWriteExt;
        let mut child = tokio::process::Command::new(&self.cfg.enclave_program)
            .arg("enclave")
            .env_clear()
            .env("RUST_LOG", "warn")
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start the enclave {}: {e}", self.cfg.enclave_program.display()))?;
        let body = serde_json::to_vec(req).map_err(|e| e.to_string())?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(&body).await.map_err(|e| format!("enclave: {e}"))?;
        }
        let out = child.wait_with_output().await.map_err(|e| format!("enclave: {e}"))?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("the enclave answered no outcome ({e}; exit {})", out.status))?;
        let logs: AppLogs = serde_json::from_value(v["logs"].clone()).unwrap_or_default();
        let outcome = match v.get("error").and_then(|e| e.as_str()) {
            Some(e) => Err(format!("enclave: {e}")),
            None => serde_json::from_value(v["outcome"].clone())
                .map_err(|e| format!("the enclave's outcome is malformed: {e}")),
        };
        Ok((outcome, logs))
    }

    /// Hands the app's output to the scheduler, where only the requester can read it.
    async fn send_logs(&self, token: &str, a: &Assignment, logs: AppLogs) {
        if logs.stdout.is_empty() && logs.stderr.is_empty() {
            return; // nothing to show: spare the scheduler a write per task
        }
        let body = LogsUpload { taskid: a.taskid, logs };
        let url = format!("{}/workers/logs", self.cfg.scheduler);
        match self.http.post(url).bearer_auth(token).json(&body).send().await {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::warn!(task = %a.taskid, "the scheduler refused the app's logs ({})", r.status()),
            Err(e) => tracing::warn!(task = %a.taskid, "cannot send the app's logs: {e}"),
        }
    }

    async fn contribute_and_reveal(
        &self,
        a: &Assignment,
        token: &str,
        digest: &B256,
        results: &str,
        // A TEE run: the enclave's signature and the platform it ran on.
        enclave: Option<(veil_core::Signature, String)>,
        consensus_event: oneshot::Receiver<Result<B256, String>>,
    ) -> Result<(), String> {
        let digest = *digest;
        let me = self.cfg.key.address();
        let rh = result_hash(&a.taskid, &digest);
        let call = Call::Contribute {
            taskid: a.taskid,
            result_hash: rh,
            result_seal: result_seal(&me, &a.taskid, &digest),
            enclave_challenge: a.enclave_challenge,
            enclave_sign: enclave.as_ref().map(|(s, _)| *s),
            authorization_sign: a.authorization,
        };
        let receipt = self.send(call).await.map_err(|e| format!("contribute: {e}"))?;
        let platform = enclave.map(|(_, p)| p);
        self.report(token, a, ReportOutcome::Contributed { results: results.to_string(), enclave: platform }).await;
        let consensus_now = receipt.events.iter().find_map(|e| match e {
            Event::TaskConsensus { taskid, consensus } if *taskid == a.taskid => Some(*consensus),
            _ => None,
        });
        let consensus = match consensus_now {
            Some(c) => c,
            None => {
                let limit = Duration::from_secs(a.time_limit_secs.saturating_mul(7).max(5));
                tokio::time::timeout(limit, consensus_event)
                    .await
                    .map_err(|_| "no consensus before the contribution deadline".to_string())?
                    .map_err(|_| "the worker stopped".to_string())??
            }
        };
        if consensus != rh {
            return Err("the other workers agreed on another result".into());
        }
        self.send(Call::Reveal { taskid: a.taskid, result_digest: digest })
            .await
            .map_err(|e| format!("reveal: {e}"))?;
        self.report(token, a, ReportOutcome::Revealed).await;
        tracing::info!(task = %a.taskid, %digest, "contributed and revealed");
        Ok(())
    }
}

/// The bundle unpacked once beside its cached zip (atomically: concurrent tasks see all or nothing).
fn shared_unpacked(zip: &Path, bundle: &Bundle) -> Result<PathBuf, veil_exec::bundle::BundleError> {
    let dir = zip.with_extension("unpacked");
    if !dir.is_dir() {
        let tmp = zip.with_extension(format!("{:016x}.unpacking", rand::random::<u64>()));
        bundle.unpack(&tmp)?;
        if let Err(e) = std::fs::rename(&tmp, &dir) {
            let _ = std::fs::remove_dir_all(&tmp);
            // Another task got there first, or something is wrong with the folder.
            if !dir.is_dir() {
                return Err(e.into());
            }
        }
    }
    Ok(dir)
}

pub async fn download(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let r = http.get(url).send().await.map_err(|e| format!("download {url}: {e}"))?;
    if !r.status().is_success() {
        return Err(format!("download {url}: HTTP {}", r.status()));
    }
    if r.content_length().is_some_and(|n| n > MAX_FILE) {
        return Err(format!("{url} is larger than {MAX_FILE} bytes"));
    }
    Ok(r.bytes().await.map_err(|e| format!("download {url}: {e}"))?.to_vec())
}

/// Downloads the input files into `iexec_in`; their names there.
pub(crate) async fn fetch_inputs(
    http: &reqwest::Client,
    urls: &[String],
    iexec_in: &Path,
) -> Result<Vec<String>, String> {
    let mut names = vec![];
    for (i, url) in urls.iter().enumerate() {
        let name = input_name(url, i);
        tokio::fs::write(iexec_in.join(&name), download(http, url).await?).await.map_err(|e| e.to_string())?;
        names.push(name);
    }
    Ok(names)
}

/// The file name an input file gets in `IEXEC_IN`: the URL's last segment when it is a plain name.
pub fn input_name(url: &str, i: usize) -> String {
    url.rsplit('/')
        .next()
        .filter(|n| !n.is_empty() && *n != ".." && *n != "." && !n.contains('\\'))
        .map(str::to_string)
        .unwrap_or(format!("input-{}", i + 1))
}

/// Zips a result folder (stored, sorted), refusing links.
pub fn zip_dir(dir: &Path) -> std::io::Result<Vec<u8>> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for e in std::fs::read_dir(d)? {
            let e = e?;
            let t = e.file_type()?;
            if t.is_symlink() {
                return Err(std::io::Error::other(format!(
                    "the result holds a link: {}",
                    e.path().strip_prefix(root).unwrap_or(&e.path()).display()
                )));
            }
            if t.is_dir() { walk(root, &e.path(), out)? } else { out.push(e.path()) }
        }
        Ok(())
    }
    let mut files = vec![];
    walk(dir, dir, &mut files)?;
    files.sort();
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let mut total = 0u64;
    for f in files {
        let name = f.strip_prefix(dir).unwrap_or(&f).to_string_lossy().replace('\\', "/");
        let data = std::fs::read(&f)?;
        total += data.len() as u64;
        if total > MAX_FILE {
            return Err(std::io::Error::other(format!("the result is larger than {MAX_FILE} bytes")));
        }
        let o = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        z.start_file(name, o).map_err(std::io::Error::other)?;
        z.write_all(&data)?;
    }
    Ok(z.finish().map_err(std::io::Error::other)?.into_inner())
}

/// `sim`, `sgx` or `tdx`, as the scheduler reports it.
fn platform_name(p: veil_tee::Platform) -> Option<String> {
    serde_json::to_value(p).ok().and_then(|v| v.as_str().map(String::from))
}
