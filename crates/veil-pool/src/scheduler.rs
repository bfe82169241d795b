//! The scheduler: deals of its pool → tasks → workers, replicas until consensus, finalize.

use crate::api::{Assignment, Register, Report, ReportOutcome, Session, register_message};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Mutex, Notify};
use veil_core::events::Event;
use veil_core::state::{TaskStatus, task_id};
use veil_core::tx::authorization_hash;
use veil_core::{Address, B256, Bytes, Call, PrivateKey, U256, crypto};
use veil_sdk::{Client, NonceSender, SdkError};

/// Most replicas one task gets before the scheduler stops adding workers.
pub const MAX_REPLICAS: usize = 8;

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub node: String,
    pub workerpool: Address,
    pub key: PrivateKey,
    pub data_dir: PathBuf,
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
    lost: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TaskState {
    base: Assignment,
    trust: u64,
    consensus: bool,
    done: bool,
    assigned: BTreeMap<Address, Assigned>,
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
        if self.done || self.consensus || self.assigned.contains_key(w) || self.assigned.len() >= MAX_REPLICAS {
            return false;
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

#[derive(Default, Serialize, Deserialize)]
struct Persisted {
    last_block: u64,
    tasks: BTreeMap<B256, TaskState>,
}

struct WorkerInfo {
    last_seen_ms: u64,
}

struct Inner {
    p: Persisted,
    workers: HashMap<Address, WorkerInfo>,
    tokens: HashMap<String, Address>,
}

pub struct Scheduler {
    cfg: SchedulerConfig,
    client: Client,
    inner: Mutex<Inner>,
    work: Notify,
    sender: NonceSender,
}

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error(transparent)]
    Sdk(#[from] SdkError),
    #[error("state file {0}: {1}")]
    State(String, String),
    #[error("{0}")]
    Refused(String),
}

impl Scheduler {
    pub async fn open(cfg: SchedulerConfig) -> Result<Arc<Scheduler>, SchedulerError> {
        std::fs::create_dir_all(&cfg.data_dir)
            .map_err(|e| SchedulerError::State(cfg.data_dir.display().to_string(), e.to_string()))?;
        let path = cfg.data_dir.join("scheduler-state.json");
        let p: Persisted = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| SchedulerError::State(path.display().to_string(), e.to_string()))?,
            Err(_) => Persisted::default(),
        };
        let client = Client::new(&cfg.node);
        let pool = client.workerpool(&cfg.workerpool).await?;
        if pool.asset.owner != cfg.key.address() {
            return Err(SchedulerError::Refused(format!(
                "workerpool {} belongs to {}, not to this scheduler's key {}",
                cfg.workerpool,
                pool.asset.owner,
                cfg.key.address()
            )));
        }
        let inner = Inner { p, workers: HashMap::new(), tokens: HashMap::new() };
        let sender = NonceSender::new(client.clone(), cfg.key.clone());
        Ok(Arc::new(Scheduler { cfg, client, inner: Mutex::new(inner), work: Notify::new(), sender }))
    }

    /// Writes the scheduler's state (tmp file, fsync, rename) so a restart resumes in-flight tasks.
    fn persist(&self, p: &Persisted) {
        let path = self.cfg.data_dir.join("scheduler-state.json");
        let tmp = path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let bytes = serde_json::to_vec(p).map_err(std::io::Error::other)?;
            let f = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut &f, &bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        if let Err(e) = write() {
            tracing::error!("cannot save scheduler state: {e}");
        }
    }

    async fn send(&self, call: Call) -> Result<veil_core::block::Receipt, SdkError> {
        self.sender.send(call).await
    }

    /// Follows the ledger from where it stopped, forever (reconnecting when the node goes away).
    pub async fn follow(self: Arc<Self>) {
        loop {
            let from = self.inner.lock().await.p.last_block + 1;
            match self.client.events(from).await {
                Ok(stream) => {
                    let mut stream = Box::pin(stream);
                    while let Some(b) = stream.next().await {
                        match b {
                            Ok(b) => {
                                for r in &b.receipts {
                                    for e in &r.events {
                                        self.on_event(e).await;
                                    }
                                }
                                let mut inner = self.inner.lock().await;
                                inner.p.last_block = b.number;
                                self.persist(&inner.p);
                            }
                            Err(e) => {
                                tracing::warn!("event stream: {e}");
                                break;
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!("cannot follow the ledger: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn on_event(&self, e: &Event) {
        match e {
            Event::SchedulerNotice { workerpool, dealid } if *workerpool == self.cfg.workerpool => {
                if let Err(err) = self.take_deal(dealid).await {
                    tracing::error!(%dealid, "cannot schedule deal: {err}");
                }
            }
            Event::TaskConsensus { taskid, .. } => {
                let mut inner = self.inner.lock().await;
                if let Some(t) = inner.p.tasks.get_mut(taskid) {
                    t.consensus = true;
                }
            }
            Event::TaskReveal { taskid, .. } => self.maybe_finalize(taskid, false).await,
            Event::TaskReopen { taskid } => {
                let mut inner = self.inner.lock().await;
                if let Some(t) = inner.p.tasks.get_mut(taskid) {
                    t.consensus = false;
                    for a in t.assigned.values_mut().filter(|a| a.contributed) {
                        a.lost = true;
                    }
                }
                drop(inner);
                self.work.notify_waiters();
            }
            Event::TaskFinalize { taskid, .. } | Event::TaskClaimed { taskid } => {
                let mut inner = self.inner.lock().await;
                if let Some(t) = inner.p.tasks.get_mut(taskid) {
                    t.done = true;
                }
            }
            _ => {}
        }
    }

    async fn take_deal(&self, dealid: &B256) -> Result<(), SchedulerError> {
        let deal = self.client.deal(dealid).await?.deal;
        let app = self.client.app(&deal.app.pointer).await?.asset;
        let info = self.client.chain().await?;
        let timeref = info
            .categories
            .iter()
            .find(|(id, _)| *id == deal.category)
            .map(|(_, c)| c.work_clock_time_ref)
            .unwrap_or(300);
        let first: u64 = deal.bot_first.to();
        let size: u64 = deal.bot_size.to();
        for idx in first..first + size {
            let taskid = task_id(dealid, U256::from(idx));
            if self.inner.lock().await.p.tasks.contains_key(&taskid) {
                continue;
            }
            match self.send(Call::Initialize { dealid: *dealid, idx: U256::from(idx) }).await {
                Ok(_) => {}
                Err(e) if e.to_string().contains("UNSET") => {} // initialized already (restart)
                Err(e) => return Err(e.into()),
            }
            let base = Assignment {
                taskid,
                dealid: *dealid,
                idx,
                app: deal.app.pointer,
                app_multiaddr: app.multiaddr.clone(),
                app_checksum: app.checksum,
                dataset: deal.dataset.pointer,
                params: deal.params.clone(),
                time_limit_secs: timeref,
                enclave_challenge: Address::ZERO,
                authorization: crypto::Signature([0u8; 65]),
                bot_first: first,
                bot_size: size,
            };
            let trust: u64 = deal.trust.to();
            let mut inner = self.inner.lock().await;
            inner
                .p
                .tasks
                .insert(taskid, TaskState { base, trust, consensus: false, done: false, assigned: BTreeMap::new() });
            self.persist(&inner.p);
        }
        self.work.notify_waiters();
        Ok(())
    }

    /// Finalizes when every winner revealed, or (`deadline`) when the reveal deadline passed.
    async fn maybe_finalize(&self, taskid: &B256, deadline: bool) {
        let Ok(t) = self.client.task(taskid).await else { return };
        let task = t.task;
        if task.status != TaskStatus::Revealing {
            return;
        }
        let results = {
            let inner = self.inner.lock().await;
            let Some(st) = inner.p.tasks.get(taskid) else { return };
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
        if let Err(e) = self.send(call).await {
            tracing::warn!(%taskid, "finalize/reopen: {e}");
        }
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
                let mut changed = false;
                for (id, t) in inner.p.tasks.iter_mut().filter(|(_, t)| !t.done) {
                    for (w, a) in t.assigned.iter_mut() {
                        let silent = now.saturating_sub(*seen.get(w).unwrap_or(&0)) > timeout;
                        if !a.contributed && a.failed.is_none() && !a.lost && silent {
                            a.lost = true;
                            changed = true;
                            tracing::warn!(worker = %w, task = %id, "worker went silent: reassigning");
                        }
                    }
                    if t.consensus {
                        revealing.push(*id);
                    }
                }
                if changed {
                    self.work.notify_waiters();
                }
            }
            for id in revealing {
                if let Ok(t) = self.client.task(&id).await
                    && t.task.status == TaskStatus::Revealing
                    && t.task.reveal_deadline <= now / 1000
                {
                    self.maybe_finalize(&id, true).await;
                }
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
        Ok(Session { token })
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
                let pick = inner.p.tasks.iter().find(|(_, t)| t.wants_worker(&worker)).map(|(id, _)| *id);
                if let Some(id) = pick
                    && let Some(t) = inner.p.tasks.get_mut(&id)
                {
                    t.assigned.insert(worker, Assigned::default());
                    let mut a = t.base.clone();
                    let auth = authorization_hash(&worker, &id, &a.enclave_challenge);
                    a.authorization = self.cfg.key.sign_message_hash(&auth);
                    self.persist(&inner.p);
                    return Some(a);
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    pub async fn report(&self, worker: Address, r: &Report) -> Result<(), SchedulerError> {
        let mut inner = self.inner.lock().await;
        let t = inner
            .p
            .tasks
            .get_mut(&r.taskid)
            .ok_or_else(|| SchedulerError::Refused(format!("task {} is not scheduled here", r.taskid)))?;
        let a = t
            .assigned
            .get_mut(&worker)
            .ok_or_else(|| SchedulerError::Refused(format!("task {} is not assigned to {worker}", r.taskid)))?;
        match &r.outcome {
            ReportOutcome::Contributed { results } => {
                a.contributed = true;
                a.results = Some(results.clone());
            }
            ReportOutcome::Revealed => {}
            ReportOutcome::Failed { cause } => {
                tracing::warn!(worker = %worker, task = %r.taskid, "run failed: {cause}");
                a.failed = Some(cause.clone());
            }
        }
        self.persist(&inner.p);
        drop(inner);
        self.work.notify_waiters();
        Ok(())
    }
}
