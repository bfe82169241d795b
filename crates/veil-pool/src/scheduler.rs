//! The scheduler: deals of its pool → tasks → workers, replicas until consensus, finalize.

use crate::api::{
    Assignment, LOG_REQUEST_WINDOW_SECS, LogsUpload, Register, Replicate, Report, ReportOutcome, Session, StatusChange,
    TaskLogs, TaskReplicates, WorkerLogs, logs_message, mark, register_message,
};
use crate::store::{Changes, Store};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Mutex, Notify};
use veil_core::events::Event;
use veil_core::state::{TaskStatus, task_id};
use veil_core::tx::authorization_hash;
use veil_core::{Address, B256, Bytes, Call, PrivateKey, U256, crypto};
use veil_sdk::{Backoff, Ledger, SdkError};

/// Most replicas one task gets before the scheduler stops adding workers.
pub const MAX_REPLICAS: usize = 8;
/// Most times one worker is given the same task (after failures another attempt could fix).
pub const MAX_ATTEMPTS: u32 = 3;

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub workerpool: Address,
    pub key: PrivateKey,
    pub data_dir: PathBuf,
    /// The SMS that keeps TEE tasks' enclave challenges (default: the node's embedded one).
    pub sms: String,
    /// A worker unheard of for this long loses its unfinished assignments.
    pub worker_timeout: Duration,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Assigned {
    contributed: bool,
    results: Option<String>,
    failed: Option<String>,
    /// The failure could go away on another attempt.
    retry: bool,
    lost: bool,
    attempts: u32,
    /// iExec's replicate statuses so far (kept across attempts).
    #[serde(default)]
    history: Vec<StatusChange>,
    /// The enclave platform of a TEE run.
    #[serde(default)]
    enclave: Option<String>,
}

impl Assigned {
    /// This worker may be given the task again: it failed in a way another attempt could fix, or
    /// went silent and came back, without contributing.
    fn may_retry(&self) -> bool {
        !self.contributed && ((self.failed.is_some() && self.retry) || self.lost) && self.attempts < MAX_ATTEMPTS
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TaskState {
    base: Assignment,
    trust: u64,
    consensus: bool,
    assigned: BTreeMap<Address, Assigned>,
    /// iExec's task statuses so far.
    #[serde(default)]
    history: Vec<StatusChange>,
}

impl TaskState {
    fn contributed(&self) -> usize {
        self.assigned.values().filter(|a| a.contributed).count()
    }

    fn open(&self) -> usize {
        self.assigned.values().filter(|a| !a.contributed && a.failed.is_none() && !a.lost).count()
    }

    /// Trust 1: one worker. Otherwise two, then one more each time all have contributed without
    /// reaching consensus.
    fn wants_worker(&self, w: &Address) -> bool {
        if self.consensus {
            return false;
        }
        match self.assigned.get(w) {
            Some(a) if !a.may_retry() => return false,
            None if self.assigned.len() >= MAX_REPLICAS => return false,
            _ => {}
        }
        let done = self.contributed();
        let required = if self.trust <= 1 {
            1
        } else if done >= 2 {
            done + 1
        } else {
            2
        };
        self.open() + done < required
    }
}

struct WorkerInfo {
    last_seen_ms: u64,
}

struct Inner {
    last_block: u64,
    /// Unfinished tasks (finished ones are dropped, here and in the database).
    tasks: BTreeMap<B256, TaskState>,
    /// Tasks changed since the last save.
    dirty: BTreeSet<B256>,
    removed: Vec<B256>,
    /// Tasks whose finalize (or reopen) is being sent, so two reveals do not both send it.
    finalizing: HashSet<B256>,
    workers: HashMap<Address, WorkerInfo>,
    tokens: HashMap<String, Address>,
    store: Store,
}

impl Inner {
    fn task_mut(&mut self, id: &B256) -> Option<&mut TaskState> {
        let t = self.tasks.get_mut(id)?;
        self.dirty.insert(*id);
        Some(t)
    }

    /// Saves what changed; `durable` forces an fsync (otherwise one happens at most every 200 ms).
    fn save(&mut self, durable: bool) {
        let dirty = std::mem::take(&mut self.dirty);
        let upsert = dirty.iter().filter_map(|id| self.tasks.get(id).map(|t| (*id, t))).collect();
        let remove = std::mem::take(&mut self.removed);
        let changes = Changes { last_block: self.last_block, upsert, remove, durable };
        if let Err(e) = self.store.save(changes) {
            tracing::error!("cannot save scheduler state: {e}");
        }
    }
}

pub struct Scheduler {
    cfg: SchedulerConfig,
    /// Veil's node or PoCo: the scheduler never knows which.
    ledger: Arc<dyn Ledger>,
    http: reqwest::Client,
    inner: Mutex<Inner>,
    work: Notify,
    /// iExec's workerpool API: challenges for reading logs.
    challenges: veil_sdk::challenge::Challenges,
}

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error(transparent)]
    Sdk(#[from] SdkError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot create {0}: {1}")]
    DataDir(String, String),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    NotFound(String),
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("{0}")]
    Unauthenticated(String),
}

impl Scheduler {
    pub async fn open(cfg: SchedulerConfig, ledger: Arc<dyn Ledger>) -> Result<Arc<Scheduler>, SchedulerError> {
        std::fs::create_dir_all(&cfg.data_dir)
            .map_err(|e| SchedulerError::DataDir(cfg.data_dir.display().to_string(), e.to_string()))?;
        let store = Store::open(&cfg.data_dir.join("scheduler.redb"))?;
        let (last_block, tasks) = store.load::<TaskState>()?;
        if !tasks.is_empty() {
            tracing::info!(tasks = tasks.len(), last_block, "resuming unfinished tasks");
        }
        let pool = ledger.workerpool(&cfg.workerpool).await?;
        let challenges = veil_sdk::challenge::Challenges::new("iExec Core", ledger.chain().await?.domain.chain_id);
        if pool.asset.owner != cfg.key.address() {
            return Err(SchedulerError::Refused(format!(
                "workerpool {} belongs to {}, not to this scheduler's key {}",
                cfg.workerpool,
                pool.asset.owner,
                cfg.key.address()
            )));
        }
        let inner = Inner {
            last_block,
            tasks,
            dirty: BTreeSet::new(),
            removed: vec![],
            finalizing: HashSet::new(),
            workers: HashMap::new(),
            tokens: HashMap::new(),
            store,
        };
        let http = veil_sdk::http();
        Ok(Arc::new(Scheduler { cfg, ledger, http, inner: Mutex::new(inner), work: Notify::new(), challenges }))
    }

    async fn send(&self, call: Call) -> Result<veil_core::block::Receipt, SdkError> {
        crate::retry::send_patiently(self.ledger.as_ref(), &self.cfg.key, call).await
    }

    /// Follows the ledger from where it stopped, forever: when the ledger goes away it retries with
    /// a growing pause ([`Backoff`]) and resumes after the last block it processed.
    pub async fn follow(self: Arc<Self>) {
        let mut backoff = Backoff::new();
        loop {
            let from = self.inner.lock().await.last_block + 1;
            match self.ledger.follow(from).await {
                Ok(mut stream) => {
                    while let Some(b) = stream.next().await {
                        match b {
                            Ok(b) => {
                                backoff.reset();
                                if let Err(e) = self.clone().on_block(&b.events).await {
                                    // Not saved as processed: the block is read again.
                                    tracing::warn!(block = b.block, "{e}: will read this block again");
                                    break;
                                }
                                let mut inner = self.inner.lock().await;
                                inner.last_block = b.block;
                                inner.save(false);
                            }
                            Err(e) => {
                                tracing::warn!("following {}: {e}", self.ledger.describe());
                                break;
                            }
                        }
                    }
                }
                Err(e) => {
                    let pause = backoff.next();
                    tracing::warn!("cannot follow {}: {e} (retrying in {pause:?})", self.ledger.describe())
                }
            }
            backoff.wait().await;
        }
    }

    /// A transient failure (the ledger went away while a deal was being taken) is an error: the
    /// block is processed again later, and what was done already is skipped then.
    async fn on_block(self: Arc<Self>, events: &[Event]) -> Result<(), SdkError> {
        for e in events {
            self.clone().on_event(e).await?;
        }
        Ok(())
    }

    async fn on_event(self: Arc<Self>, e: &Event) -> Result<(), SdkError> {
        match e {
            Event::SchedulerNotice { workerpool, dealid } if *workerpool == self.cfg.workerpool => {
                match self.take_deal(dealid).await {
                    Err(SchedulerError::Sdk(e)) if e.is_transient() => return Err(e),
                    Err(err) => tracing::error!(%dealid, "cannot schedule deal: {err}"),
                    Ok(()) => {}
                }
            }
            Event::TaskConsensus { taskid, .. } => {
                let mut inner = self.inner.lock().await;
                if let Some(t) = inner.task_mut(taskid) {
                    t.consensus = true;
                    mark(&mut t.history, "CONSENSUS_REACHED", None);
                }
            }
            // Finalizing waits for a block: do not hold up the following of the ledger.
            Event::TaskReveal { taskid, worker, .. } => {
                let taskid = *taskid;
                if let Some(t) = self.inner.lock().await.task_mut(&taskid) {
                    if !t.history.iter().any(|c| c.status == "AT_LEAST_ONE_REVEALED") {
                        mark(&mut t.history, "AT_LEAST_ONE_REVEALED", None);
                    }
                    // The ledger is the witness: the worker's own report may come after finalization.
                    if let Some(a) = t.assigned.get_mut(worker) {
                        mark(&mut a.history, "REVEALED", None);
                    }
                }
                tokio::spawn(async move { self.maybe_finalize(&taskid, None).await });
            }
            Event::TaskReopen { taskid } => {
                let mut inner = self.inner.lock().await;
                if let Some(t) = inner.task_mut(taskid) {
                    t.consensus = false;
                    mark(&mut t.history, "REOPENED", None);
                    for a in t.assigned.values_mut().filter(|a| a.contributed) {
                        a.lost = true;
                        mark(&mut a.history, "WORKER_LOST", Some("the task was reopened: no winner revealed".into()));
                    }
                }
                drop(inner);
                self.work.notify_waiters();
            }
            Event::TaskFinalize { taskid, .. } | Event::TaskClaimed { taskid } => {
                let completed = matches!(e, Event::TaskFinalize { .. });
                let mut inner = self.inner.lock().await;
                if let Some(mut t) = inner.tasks.remove(taskid) {
                    inner.removed.push(*taskid);
                    mark(&mut t.history, if completed { "COMPLETED" } else { "FAILED" }, None);
                    for a in t.assigned.values_mut().filter(|a| completed && a.history_has("REVEALED")) {
                        mark(&mut a.history, "COMPLETED", None);
                    }
                    // What `GET /tasks/{id}` answers once the task is done.
                    let kept = replicates_of(taskid, &t);
                    if let Err(err) = inner.store.put_history(taskid, &kept) {
                        tracing::warn!(%taskid, "cannot keep the task's history: {err}");
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn take_deal(&self, dealid: &B256) -> Result<(), SchedulerError> {
        let deal = self.ledger.deal(dealid).await?.deal;
        let app = self.ledger.app(&deal.app.pointer).await?.asset;
        let info = self.ledger.chain().await?;
        let timeref = info
            .categories
            .iter()
            .find(|(id, _)| *id == deal.category)
            .map(|(_, c)| c.work_clock_time_ref)
            .unwrap_or(300);
        let first: u64 = deal.bot_first.to();
        let size: u64 = deal.bot_size.to();
        let trust: u64 = deal.trust.to();
        let todo: Vec<u64> = {
            let inner = self.inner.lock().await;
            (first..first + size).filter(|i| !inner.tasks.contains_key(&task_id(dealid, U256::from(*i)))).collect()
        };
        // Sent together: they share blocks instead of taking one block each.
        let calls = todo.iter().map(|i| Call::Initialize { dealid: *dealid, idx: U256::from(*i) }).collect();
        let answers = self.ledger.send_batch(&self.cfg.key, calls).await;
        let mut inner = self.inner.lock().await;
        let mut transient = None;
        for (idx, answer) in todo.into_iter().zip(answers) {
            match answer {
                Ok(_) => {}
                // Initialized already (before a restart, or the answer was lost): the ledger says
                // whether the task is still ours to run; finished ones are not ours to redo.
                Err(e) => match self.ledger.task(&task_id(dealid, U256::from(idx))).await {
                    Ok(t) if matches!(t.task.status, TaskStatus::Completed | TaskStatus::Failed) => continue,
                    Ok(t) if t.task.status != TaskStatus::Unset => {}
                    _ if e.is_transient() => {
                        transient = Some(e);
                        continue;
                    }
                    _ => {
                        tracing::error!(%dealid, idx, "cannot initialize task: {e}");
                        continue;
                    }
                },
            }
            let taskid = task_id(dealid, U256::from(idx));
            // TEE tasks: the SMS makes the task's enclave challenge, which the authorization names.
            let enclave_challenge = if veil_core::tag::has_tee(&deal.tag) {
                match self.enclave_challenge(&taskid).await {
                    Ok(a) => a,
                    Err(e) => {
                        // The task is initialized: it must not be forgotten while the SMS is away.
                        let message = format!("no enclave challenge from the SMS for task {taskid}: {e}");
                        transient = Some(SdkError::Api { status: 503, kind: "unavailable".into(), message });
                        continue;
                    }
                }
            } else {
                Address::ZERO
            };
            let base = Assignment {
                taskid,
                dealid: *dealid,
                idx,
                app: deal.app.pointer,
                app_type: app.app_type.clone(),
                app_multiaddr: app.multiaddr.clone(),
                app_checksum: app.checksum,
                dataset: deal.dataset.pointer,
                params: deal.params.clone(),
                time_limit_secs: timeref,
                enclave_challenge,
                authorization: crypto::Signature([0u8; 65]),
                bot_first: first,
                bot_size: size,
                trust,
            };
            let history = vec![StatusChange::now("INITIALIZED", None)];
            inner.tasks.insert(taskid, TaskState { base, trust, consensus: false, assigned: BTreeMap::new(), history });
            inner.dirty.insert(taskid);
        }
        inner.save(true);
        drop(inner);
        self.work.notify_waiters();
        match transient {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    async fn enclave_challenge(&self, taskid: &B256) -> Result<Address, String> {
        let url = format!("{}/sms/enclave-challenge/{taskid}", self.cfg.sms);
        let r = self.http.post(&url).send().await.map_err(|e| format!("{url}: {e}"))?;
        let ok = r.status().is_success();
        let v: serde_json::Value = r.json().await.map_err(|e| format!("{url}: {e}"))?;
        if !ok {
            return Err(v["error"].as_str().unwrap_or("refused").to_string());
        }
        serde_json::from_value(v["address"].clone()).map_err(|e| format!("{url}: {e}"))
    }

    /// Finalizes when every winner revealed, or when the reveal deadline passed by `now` (the
    /// ledger's time; None: no deadline check). Reads the task once.
    async fn maybe_finalize(&self, taskid: &B256, now: Option<u64>) {
        let Ok(t) = self.ledger.task(taskid).await else { return };
        let task = t.task;
        if task.status != TaskStatus::Revealing {
            return;
        }
        let deadline = now.is_some_and(|now| task.reveal_deadline <= now);
        let results = {
            let inner = self.inner.lock().await;
            if inner.finalizing.contains(taskid) {
                return;
            }
            let Some(st) = inner.tasks.get(taskid) else { return };
            let winners: Vec<_> = task
                .contributions
                .iter()
                .filter(|(_, c)| c.result_hash == task.consensus_value)
                .map(|(a, _)| *a)
                .collect();
            winners.iter().find_map(|w| st.assigned.get(w).and_then(|a| a.results.clone())).unwrap_or_default()
        };
        let call = if task.reveal_counter == task.winner_counter || (deadline && task.reveal_counter > 0) {
            Call::Finalize {
                taskid: *taskid,
                results: Bytes::from(results.into_bytes()),
                results_callback: Bytes::new(),
            }
        } else if deadline && task.reveal_counter == 0 {
            Call::Reopen { taskid: *taskid }
        } else {
            return;
        };
        if !self.inner.lock().await.finalizing.insert(*taskid) {
            return;
        }
        if let Err(e) = self.send(call).await {
            tracing::warn!(%taskid, "finalize/reopen: {e}");
        }
        self.inner.lock().await.finalizing.remove(taskid);
    }

    /// Once a second: lost workers lose their assignments; overdue reveals are settled.
    pub async fn watch(self: Arc<Self>) {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = now_ms();
            let timeout = self.cfg.worker_timeout.as_millis() as u64;
            let mut revealing = vec![];
            {
                let mut inner = self.inner.lock().await;
                let seen: HashMap<Address, u64> = inner.workers.iter().map(|(a, w)| (*a, w.last_seen_ms)).collect();
                let mut changed = vec![];
                for (id, t) in inner.tasks.iter_mut() {
                    for (w, a) in t.assigned.iter_mut() {
                        let silent = now.saturating_sub(*seen.get(w).unwrap_or(&0)) > timeout;
                        if !a.contributed && a.failed.is_none() && !a.lost && silent {
                            a.lost = true;
                            mark(&mut a.history, "WORKER_LOST", Some("the worker went silent".into()));
                            changed.push(*id);
                            tracing::warn!(worker = %w, task = %id, "worker went silent: reassigning");
                        }
                    }
                    if t.consensus {
                        revealing.push(*id);
                    }
                }
                if !changed.is_empty() {
                    inner.dirty.extend(changed);
                    inner.save(false);
                    self.work.notify_waiters();
                }
            }
            // Deadlines are the ledger's time (a test chain's clock may be moved ahead).
            let chain_now = match revealing.is_empty() {
                true => 0,
                false => self.ledger.chain().await.map(|c| c.timestamp).unwrap_or(0),
            };
            let now_s = (now / 1000).max(chain_now);
            // Also catches a finalize that failed to go out when the last reveal arrived.
            for id in revealing {
                self.maybe_finalize(&id, Some(now_s)).await;
            }
        }
    }

    pub async fn register(&self, r: &Register) -> Result<Session, SchedulerError> {
        let age = (now_ms() / 1000).abs_diff(r.timestamp);
        if age > 60 {
            return Err(SchedulerError::Refused(
                "registration timestamp is more than a minute off; check the clock".into(),
            ));
        }
        let signer = crypto::recover_message_hash(&register_message(&r.worker, r.slots, r.timestamp), &r.signature)
            .map_err(|e| SchedulerError::Refused(format!("bad registration signature: {e}")))?;
        if signer != r.worker {
            return Err(SchedulerError::Refused(format!("registration for {} is signed by {signer}", r.worker)));
        }
        let mut b = [0u8; 24];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut b);
        let token: String = b.iter().map(|x| format!("{x:02x}")).collect();
        let mut inner = self.inner.lock().await;
        inner.tokens.insert(token.clone(), r.worker);
        inner.workers.insert(r.worker, WorkerInfo { last_seen_ms: now_ms() });
        tracing::info!(worker = %r.worker, slots = r.slots, "worker registered");
        // Three heartbeats per timeout: one lost packet does not make a busy worker look silent.
        let heartbeat_ms = (self.cfg.worker_timeout.as_millis() as u64 / 3).max(100);
        Ok(Session { token, heartbeat_ms })
    }

    /// Registered workers: address, last heard from (unix ms) and `alive` or `silent` (past the
    /// worker timeout).
    pub async fn workers(&self) -> Vec<serde_json::Value> {
        let inner = self.inner.lock().await;
        let timeout = self.cfg.worker_timeout.as_millis() as u64;
        let now = now_ms();
        let mut out: Vec<serde_json::Value> = inner
            .workers
            .iter()
            .map(|(w, i)| {
                let status = if now.saturating_sub(i.last_seen_ms) <= timeout { "alive" } else { "silent" };
                serde_json::json!({ "worker": w, "lastSeenMs": i.last_seen_ms, "status": status })
            })
            .collect();
        out.sort_by(|a, b| a["worker"].as_str().cmp(&b["worker"].as_str()));
        out
    }

    pub async fn worker_of(&self, token: &str) -> Option<Address> {
        let mut inner = self.inner.lock().await;
        let w = *inner.tokens.get(token)?;
        if let Some(i) = inner.workers.get_mut(&w) {
            i.last_seen_ms = now_ms();
        }
        Some(w)
    }

    /// The next task for `worker`, waiting up to `wait` for one.
    pub async fn next_for(&self, worker: Address, wait: Duration) -> Option<Assignment> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.work.notified();
            {
                let mut inner = self.inner.lock().await;
                if let Some(i) = inner.workers.get_mut(&worker) {
                    i.last_seen_ms = now_ms();
                }
                let pick = inner.tasks.iter().find(|(_, t)| t.wants_worker(&worker)).map(|(id, _)| *id);
                if let Some(id) = pick
                    && let Some(t) = inner.task_mut(&id)
                {
                    let (attempts, mut history) =
                        t.assigned.get(&worker).map_or((0, vec![]), |a| (a.attempts, a.history.clone()));
                    mark(&mut history, "CREATED", None);
                    t.assigned.insert(worker, Assigned { attempts: attempts + 1, history, ..Default::default() });
                    mark(&mut t.history, "RUNNING", None);
                    let mut a = t.base.clone();
                    let auth = authorization_hash(&worker, &id, &a.enclave_challenge);
                    a.authorization = self.cfg.key.sign_message_hash(&auth);
                    inner.save(false);
                    return Some(a);
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Each worker's part in an unfinished task (None: unknown here, or finished).
    /// Each worker's part in a task this scheduler ran or runs (None: unknown here).
    pub async fn replicates(&self, taskid: &B256) -> Result<Option<TaskReplicates>, SchedulerError> {
        let inner = self.inner.lock().await;
        match inner.tasks.get(taskid) {
            Some(t) => Ok(Some(replicates_of(taskid, t))),
            None => Ok(inner.store.history(taskid)?),
        }
    }

    pub async fn report(&self, worker: Address, r: &Report) -> Result<(), SchedulerError> {
        let mut inner = self.inner.lock().await;
        if r.outcome == ReportOutcome::Revealed && !inner.tasks.contains_key(&r.taskid) {
            return Ok(()); // finalized already
        }
        // A TEE task contributed and finalized in one transaction is often done before its
        // worker's report arrives: the enclave it ran on goes into the kept history.
        if let ReportOutcome::Contributed { enclave: Some(e), .. } = &r.outcome
            && !inner.tasks.contains_key(&r.taskid)
        {
            let kept: Option<TaskReplicates> = inner.store.history(&r.taskid)?;
            if let Some(mut h) = kept {
                h.replicates.iter_mut().filter(|x| x.worker == worker).for_each(|x| x.enclave = Some(e.clone()));
                inner.store.put_history(&r.taskid, &h)?;
                return Ok(());
            }
        }
        let t = inner
            .task_mut(&r.taskid)
            .ok_or_else(|| SchedulerError::Refused(format!("task {} is not scheduled here", r.taskid)))?;
        // A restart can lose a recent assignment; its contribution still counts (the ledger is
        // the judge: only contributors that match the consensus are ever read back).
        if matches!(r.outcome, ReportOutcome::Contributed { .. }) {
            t.assigned.entry(worker).or_insert_with(|| Assigned { attempts: 1, ..Default::default() });
        }
        let a = t
            .assigned
            .get_mut(&worker)
            .ok_or_else(|| SchedulerError::Refused(format!("task {} is not assigned to {worker}", r.taskid)))?;
        match &r.outcome {
            ReportOutcome::Contributed { results, enclave } => {
                a.contributed = true;
                a.results = Some(results.clone());
                if enclave.is_some() {
                    a.enclave = enclave.clone();
                }
                mark(&mut a.history, "CONTRIBUTED", None);
            }
            ReportOutcome::Revealed => mark(&mut a.history, "REVEALED", None),
            ReportOutcome::Enclave { platform } => a.enclave = Some(platform.clone()),
            ReportOutcome::Failed { cause, retry } => {
                tracing::warn!(worker = %worker, task = %r.taskid, retry, "run failed: {cause}");
                a.failed = Some(cause.clone());
                a.retry = *retry;
                mark(&mut a.history, "FAILED", Some(cause.clone()));
            }
        }
        inner.save(false);
        drop(inner);
        self.work.notify_waiters();
        Ok(())
    }

    /// Keeps the app's output of `worker`'s run (only while the task is in flight and assigned to it).
    pub async fn put_logs(&self, worker: Address, u: LogsUpload) -> Result<(), SchedulerError> {
        let mut inner = self.inner.lock().await;
        let assigned = inner.tasks.get(&u.taskid).is_some_and(|t| t.assigned.contains_key(&worker));
        if !assigned {
            return Err(SchedulerError::Refused(format!("task {} is not assigned to {worker} here", u.taskid)));
        }
        let mut runs: Vec<WorkerLogs> = inner.store.logs(&u.taskid)?.unwrap_or_default();
        runs.retain(|r| r.worker != worker);
        runs.push(WorkerLogs { worker, logs: u.logs.bounded() });
        inner.store.put_logs(&u.taskid, &runs)?;
        Ok(())
    }

    /// The task's logs, for the deal's requester only: `signature` is theirs (EIP-191) over
    /// [`logs_message`] at `timestamp`, within [`LOG_REQUEST_WINDOW_SECS`] of now.
    pub async fn task_logs(
        &self,
        taskid: &B256,
        timestamp: u64,
        signature: &veil_core::Signature,
    ) -> Result<TaskLogs, SchedulerError> {
        if (now_ms() / 1000).abs_diff(timestamp) > LOG_REQUEST_WINDOW_SECS {
            return Err(SchedulerError::Refused(format!(
                "the request's timestamp is more than {LOG_REQUEST_WINDOW_SECS} s off: sign a fresh one (and check the clock)"
            )));
        }
        let signer = crypto::recover_message_hash(&logs_message(&self.cfg.workerpool, taskid, timestamp), signature)
            .map_err(|e| SchedulerError::Refused(format!("bad signature: {e}")))?;
        self.logs_for(taskid, signer).await.map_err(|e| match e {
            LogsRefusal::NotRequester(m) => SchedulerError::Refused(m),
            LogsRefusal::Other(e) => e,
        })
    }

    /// iExec's workerpool API: a new EIP-712 challenge ("iExec Core") for `address`.
    pub fn logs_challenge(&self, chain_id: u64, address: Address) -> Result<serde_json::Value, SchedulerError> {
        if chain_id != self.challenges.chain_id() {
            return Err(SchedulerError::Malformed(format!(
                "this workerpool serves chain {}, not {chain_id}",
                self.challenges.chain_id()
            )));
        }
        self.challenges.issue(address, rand::random()).map_err(|e| SchedulerError::Refused(e.to_string()))
    }

    /// iExec's workerpool API: the task's logs for the holder of a signed challenge, who must be
    /// the task's requester (401 otherwise, as iExec's scheduler answers).
    pub async fn task_logs_iexec(
        &self,
        taskid: &B256,
        authorization: Option<&str>,
    ) -> Result<TaskLogs, SchedulerError> {
        let who = self
            .challenges
            .redeem(authorization, "/tasks/logs/challenge")
            .map_err(|e| SchedulerError::Unauthenticated(format!("invalid authorization: {e}")))?;
        self.logs_for(taskid, who).await.map_err(|e| match e {
            LogsRefusal::NotRequester(m) => SchedulerError::Unauthenticated(m),
            LogsRefusal::Other(e) => e,
        })
    }

    async fn logs_for(&self, taskid: &B256, signer: Address) -> Result<TaskLogs, LogsRefusal> {
        let task = match self.ledger.task(taskid).await {
            Ok(t) => t.task,
            Err(e) if e.kind() == Some("not_found") => {
                return Err(SchedulerError::NotFound(format!("task {taskid} is not on the ledger")).into());
            }
            Err(e) => return Err(SchedulerError::from(e).into()),
        };
        let deal = self.ledger.deal(&task.dealid).await.map_err(SchedulerError::from)?.deal;
        if deal.workerpool.pointer != self.cfg.workerpool {
            return Err(SchedulerError::NotFound(format!("task {taskid} is not run by this workerpool")).into());
        }
        if signer != deal.requester {
            return Err(LogsRefusal::NotRequester(format!(
                "only the requester of task {taskid} may read its logs; this request is signed by {signer}"
            )));
        }
        let runs: Vec<WorkerLogs> =
            self.inner.lock().await.store.logs(taskid).map_err(SchedulerError::from)?.unwrap_or_default();
        Ok(TaskLogs::new(*taskid, runs))
    }
}

/// Why logs were refused: not the requester (403 in Veil's API, 401 in iExec's), or anything else.
enum LogsRefusal {
    NotRequester(String),
    Other(SchedulerError),
}

impl From<SchedulerError> for LogsRefusal {
    fn from(e: SchedulerError) -> LogsRefusal {
        LogsRefusal::Other(e)
    }
}

impl Assigned {
    fn history_has(&self, status: &str) -> bool {
        self.history.iter().any(|c| c.status == status)
    }

    /// Veil's short status of this worker's part.
    fn status(&self) -> &'static str {
        if self.history_has("COMPLETED") {
            "completed"
        } else if self.history_has("REVEALED") {
            "revealed"
        } else if self.contributed {
            "contributed"
        } else if self.failed.is_some() {
            "failed"
        } else if self.lost {
            "lost"
        } else {
            "running"
        }
    }

    /// The app's exit status, as far as the scheduler knows it.
    fn exit_code(&self) -> Option<i32> {
        if self.contributed {
            return Some(0);
        }
        let cause = self.failed.as_deref()?;
        let (_, after) = cause.split_once("the app exited with status ")?;
        after.split(|c: char| !c.is_ascii_digit() && c != '-').next()?.parse().ok()
    }
}

/// A task's replicates in both shapes (see [`TaskReplicates`]).
fn replicates_of(taskid: &B256, t: &TaskState) -> TaskReplicates {
    let replicates = t
        .assigned
        .iter()
        .map(|(w, a)| Replicate {
            worker: *w,
            status: a.status().into(),
            attempts: a.attempts,
            cause: a.failed.clone(),
            wallet_address: *w,
            current_status: a.history.last().map(|c| c.status.clone()).unwrap_or_default(),
            status_update_list: a.history.clone(),
            app_exit_code: a.exit_code(),
            enclave: a.enclave.clone(),
        })
        .collect();
    TaskReplicates {
        taskid: *taskid,
        current_status: t.history.last().map(|c| c.status.clone()).unwrap_or_default(),
        date_status_list: t.history.clone(),
        replicates,
    }
}

impl Scheduler {
    /// Tells the node at `node` (iExec's compass there) that this workerpool's API is at `api_url`,
    /// signed by the workerpool's owner.
    pub async fn announce_api(&self, node: &str, api_url: &str) -> Result<(), SchedulerError> {
        let timestamp = now_ms() / 1000;
        let message = veil_sdk::pool_api_message(&self.cfg.workerpool, api_url.trim_end_matches('/'), timestamp);
        let body = veil_sdk::PoolApiAnnouncement {
            url: api_url.trim_end_matches('/').to_string(),
            timestamp,
            signature: self.cfg.key.sign_message_hash(&message),
        };
        let url = format!("{}/workerpools/{}/api", node.trim_end_matches('/'), self.cfg.workerpool);
        let r = self.http.post(&url).json(&body).send().await;
        match r {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                Err(SchedulerError::Refused(format!("the node refused the API announcement ({status}): {text}")))
            }
            Err(e) => Err(SchedulerError::Refused(format!("cannot reach the node at {node}: {e}"))),
        }
    }

    /// [`Scheduler::announce_api`] every minute from now on (a restarted node forgets announcements).
    pub async fn announce_forever(self: Arc<Self>, node: String, api_url: String) {
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            if let Err(e) = self.announce_api(&node, &api_url).await {
                tracing::warn!("iExec compass: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replicates_exit_code_is_what_the_scheduler_knows() {
        let check = |contributed: bool, failed: Option<&str>, want: Option<i32>| {
            let a = Assigned { contributed, failed: failed.map(String::from), ..Default::default() };
            assert_eq!(a.exit_code(), want, "{contributed} {failed:?}");
        };
        check(true, None, Some(0));
        check(false, Some("task 0x01: the app exited with status 3"), Some(3));
        check(false, Some("the app exited with status 137 (killed)"), Some(137));
        check(false, Some("the app went over its memory limit (64 MiB)"), None);
        check(false, None, None);
    }

    #[test]
    fn status_marks_are_not_repeated() {
        let mut list = vec![];
        mark(&mut list, "CREATED", None);
        mark(&mut list, "CREATED", None);
        mark(&mut list, "FAILED", Some("why".into()));
        mark(&mut list, "CREATED", None);
        let statuses: Vec<&str> = list.iter().map(|c| c.status.as_str()).collect();
        assert_eq!(statuses, ["CREATED", "FAILED", "CREATED"]);
        assert_eq!(list[1].cause.as_deref(), Some("why"));
        assert!(list[0].date.ends_with('Z'));
    }
}
