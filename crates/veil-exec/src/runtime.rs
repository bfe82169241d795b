//! One trait for every runtime: run a job, report how it ended and which limits held.

use crate::bundle::Manifest;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot start the app: {0}")]
    Start(String),
    #[error("the app ran out of time ({0:?}) and was killed")]
    Timeout(Duration),
    #[error("the app exited with status {0}")]
    Exit(i32),
    #[error("the app was killed by signal {0} (memory limit or crash)")]
    Signal(i32),
    #[error("the app went over its memory limit ({} MiB) and was killed", .0 >> 20)]
    MemoryKilled(u64),
    #[error("{0}")]
    Unsupported(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// What to run and under which limits.
#[derive(Debug, Clone)]
pub struct Job {
    /// Where the bundle is unpacked.
    pub app_dir: PathBuf,
    pub manifest: Manifest,
    pub args: Vec<String>,
    /// The complete environment (see [`crate::contract::environment`]).
    pub env: Vec<(String, String)>,
    pub iexec_in: PathBuf,
    pub iexec_out: PathBuf,
    pub time_limit: Duration,
    pub memory_limit: u64,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

/// How a run ended (successfully), and what isolation it had.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub duration: Duration,
    /// Limits that could not be applied on this machine (the worker logs them).
    pub missing_limits: Vec<String>,
}

pub trait Runtime: Send + Sync {
    fn run(&self, job: &Job) -> Result<Outcome, ExecError>;
}

/// A task's folders, laid out as every worker, enclave and `veil app test` lays them out:
/// `app` (the unpacked bundle), `in` (`IEXEC_IN`) and `out` (`IEXEC_OUT`), logs beside them.
#[derive(Debug, Clone)]
pub struct TaskDirs {
    pub root: PathBuf,
    pub app: PathBuf,
    pub iexec_in: PathBuf,
    pub iexec_out: PathBuf,
}

impl TaskDirs {
    /// Creates `in` and `out` under `root` (the bundle unpacks into `app`).
    pub fn create(root: &std::path::Path) -> std::io::Result<TaskDirs> {
        let d = TaskDirs {
            root: root.to_path_buf(),
            app: root.join("app"),
            iexec_in: root.join("in"),
            iexec_out: root.join("out"),
        };
        std::fs::create_dir_all(&d.iexec_in)?;
        std::fs::create_dir_all(&d.iexec_out)?;
        Ok(d)
    }

    /// The job for this task: the iExec environment of `info`, stdout and stderr logged in `root`.
    pub fn job(
        &self,
        manifest: Manifest,
        args: Vec<String>,
        info: &crate::contract::TaskInfo,
        time_limit: Duration,
        memory_limit: u64,
    ) -> Job {
        Job {
            app_dir: self.app.clone(),
            manifest,
            args,
            env: crate::contract::environment(info, &self.iexec_in, &self.iexec_out),
            iexec_in: self.iexec_in.clone(),
            iexec_out: self.iexec_out.clone(),
            time_limit,
            memory_limit,
            stdout: self.root.join("stdout.log"),
            stderr: self.root.join("stderr.log"),
        }
    }
}
