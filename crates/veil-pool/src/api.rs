//! What scheduler and workers say to each other over HTTP.

use serde::{Deserialize, Serialize};
use veil_core::{Address, B256, Signature, keccak256};

/// `POST /workers/register`: a worker proves it holds its key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Register {
    pub worker: Address,
    pub slots: u32,
    /// Unix seconds; registrations older than a minute are refused.
    pub timestamp: u64,
    /// EIP-191 signature of [`register_message`].
    pub signature: Signature,
}

pub fn register_message(worker: &Address, slots: u32, timestamp: u64) -> B256 {
    keccak256(
        [b"veil-worker-register-v1".as_slice(), worker.as_slice(), &slots.to_be_bytes(), &timestamp.to_be_bytes()]
            .concat(),
    )
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// Bearer token for the worker's next calls.
    pub token: String,
    /// How often the worker says it is alive (`POST /workers/heartbeat`), busy or not.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_ms: u64,
}

fn default_heartbeat() -> u64 {
    3000
}

/// One task for one worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    pub taskid: B256,
    pub dealid: B256,
    pub idx: u64,
    pub app: Address,
    /// The app's iExec type (`VEIL` for bundles; `DOCKER` images cannot run here).
    #[serde(default)]
    pub app_type: String,
    pub app_multiaddr: String,
    pub app_checksum: B256,
    pub dataset: Address,
    pub params: String,
    /// Seconds the app may run (the category's reference time).
    pub time_limit_secs: u64,
    pub enclave_challenge: Address,
    /// The scheduler's EIP-191 signature over `keccak256(worker ‖ taskid ‖ enclaveChallenge)`.
    pub authorization: Signature,
    pub bot_first: u64,
    pub bot_size: u64,
    /// The deal's trust (a trust-1 TEE task is contributed and finalized at once).
    #[serde(default)]
    pub trust: u64,
}

/// `POST /workers/report`: how an assignment went.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub taskid: B256,
    pub outcome: ReportOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum ReportOutcome {
    /// Contributed on the ledger; `results` is where the result is stored.
    Contributed {
        results: String,
        /// The enclave platform a TEE task ran on (`sim`, `tdx`), as its evidence said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        enclave: Option<String>,
    },
    Revealed,
    /// A TEE run's enclave produced its result on this platform (`sim`, `tdx`), as its evidence
    /// said; sent before the contribution, while the task is surely still the scheduler's.
    Enclave {
        platform: String,
    },
    /// The run failed: the cause, for the requester's eyes; `retry` when another attempt could
    /// succeed (a download or the node failed, not the app).
    Failed {
        cause: String,
        #[serde(default)]
        retry: bool,
    },
}

/// `GET /tasks/{taskid}`: how each worker is doing with a task, in Veil's words (`replicates[].
/// worker/status/attempts/cause`) and in the shape of iExec's workerpool API, which its SDK reads for
/// `iexec task debug` (`currentStatus`, `dateStatusList`, `replicates[].walletAddress/currentStatus/
/// statusUpdateList/appExitCode`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskReplicates {
    pub taskid: B256,
    /// iExec's task status: INITIALIZED, RUNNING, CONSENSUS_REACHED, AT_LEAST_ONE_REVEALED,
    /// REOPENED, COMPLETED or FAILED.
    #[serde(default)]
    pub current_status: String,
    #[serde(default)]
    pub date_status_list: Vec<StatusChange>,
    pub replicates: Vec<Replicate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Replicate {
    pub worker: Address,
    /// `running`, `contributed`, `revealed`, `completed`, `failed` or `lost` (the worker went silent).
    pub status: String,
    pub attempts: u32,
    /// Why the run failed (without the app's output, which only the requester may read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// The worker again, under iExec's name.
    #[serde(default)]
    pub wallet_address: Address,
    /// iExec's replicate status: CREATED, CONTRIBUTED, REVEALED, COMPLETED, FAILED or WORKER_LOST.
    #[serde(default)]
    pub current_status: String,
    #[serde(default)]
    pub status_update_list: Vec<StatusChange>,
    /// 0 for a run that contributed (a non-zero exit fails the run), the status a failed app
    /// exited with, or none when the app did not get to exit.
    #[serde(default)]
    pub app_exit_code: Option<i32>,
    /// The enclave platform a TEE run used (`sim`: no hardware protection), as the worker reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enclave: Option<String>,
}

/// One step in a task's or a replicate's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusChange {
    pub status: String,
    /// ISO 8601, UTC.
    pub date: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

impl StatusChange {
    pub fn now(status: &str, cause: Option<String>) -> StatusChange {
        let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        StatusChange { status: status.into(), date: veil_sdk::iso8601_ms(ms), cause }
    }
}

/// Appends `status` to `list` unless it is already the last step.
pub fn mark(list: &mut Vec<StatusChange>, status: &str, cause: Option<String>) {
    if list.last().is_none_or(|c| c.status != status) {
        list.push(StatusChange::now(status, cause));
    }
}

/// Most of each stream kept from an app's output (the end: where errors are).
pub const MAX_LOG_BYTES: usize = 64 * 1024;
/// How far a log request's timestamp may be from the scheduler's clock.
pub const LOG_REQUEST_WINDOW_SECS: u64 = 300;

/// An app's stdout and stderr from one run (tails of at most [`MAX_LOG_BYTES`] each).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppLogs {
    pub stdout: String,
    pub stderr: String,
    /// Whether either stream was longer and lost its beginning.
    #[serde(default)]
    pub truncated: bool,
}

impl AppLogs {
    /// Reads the two log files (missing files are empty streams).
    pub fn read(stdout: &std::path::Path, stderr: &std::path::Path) -> AppLogs {
        let (o, t1) = tail(stdout);
        let (e, t2) = tail(stderr);
        AppLogs { stdout: o, stderr: e, truncated: t1 || t2 }
    }

    /// Cuts both streams to their last [`MAX_LOG_BYTES`] (for logs from outside).
    pub fn bounded(mut self) -> AppLogs {
        for s in [&mut self.stdout, &mut self.stderr] {
            if s.len() > MAX_LOG_BYTES {
                let mut cut = s.len() - MAX_LOG_BYTES;
                while !s.is_char_boundary(cut) {
                    cut += 1;
                }
                *s = s[cut..].to_string();
                self.truncated = true;
            }
        }
        self
    }
}

fn tail(path: &std::path::Path) -> (String, bool) {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else { return (String::new(), false) };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let cut = len.saturating_sub(MAX_LOG_BYTES as u64);
    let mut bytes = vec![];
    if f.seek(SeekFrom::Start(cut)).is_err() || f.read_to_end(&mut bytes).is_err() {
        return (String::new(), false);
    }
    (String::from_utf8_lossy(&bytes).into_owned(), cut > 0)
}

/// `POST /workers/logs`: a worker hands in the app's output for one task.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogsUpload {
    pub taskid: B256,
    pub logs: AppLogs,
}

/// `GET /tasks/{id}/logs`: each worker's run of the task, for its requester only.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskLogs {
    pub taskid: B256,
    pub runs: Vec<WorkerLogs>,
    /// The same runs in the shape of iExec's workerpool API (`iexec task debug --logs`).
    #[serde(default)]
    pub compute_logs_list: Vec<ComputeLogs>,
}

impl TaskLogs {
    pub fn new(taskid: B256, runs: Vec<WorkerLogs>) -> TaskLogs {
        let compute_logs_list = runs
            .iter()
            .map(|r| ComputeLogs {
                wallet_address: r.worker,
                stdout: r.logs.stdout.clone(),
                stderr: r.logs.stderr.clone(),
            })
            .collect();
        TaskLogs { taskid, runs, compute_logs_list }
    }
}

/// One worker's run in iExec's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComputeLogs {
    pub wallet_address: Address,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerLogs {
    pub worker: Address,
    #[serde(flatten)]
    pub logs: AppLogs,
}

/// What a requester signs (EIP-191) to read a task's logs from `workerpool`'s scheduler at
/// `timestamp` (Unix seconds): bound to that pool, so a request shown to one scheduler is no key to
/// another.
pub fn logs_message(workerpool: &Address, taskid: &B256, timestamp: u64) -> B256 {
    let mut m = b"veil-task-logs-v1".to_vec();
    m.extend_from_slice(workerpool.as_slice());
    m.extend_from_slice(taskid.as_slice());
    m.extend_from_slice(&timestamp.to_be_bytes());
    keccak256(&m)
}
