//! The `process` runtime: the entrypoint (or its interpreter) as a child process with exactly the
//! iExec environment, its own process group, a time limit, a memory limit (RLIMIT_DATA) and, where
//! the kernel allows it, a network namespace of its own (no network at all).

use crate::runtime::{ExecError, Job, Outcome, Runtime};
use std::collections::HashMap;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct ProcessRuntime {
    /// Interpreter name → its real binary (resolved once: shims cost ~50 ms a start).
    interpreters: Mutex<HashMap<String, PathBuf>>,
    netns: bool,
}

/// Whether this process may give a child a network namespace of its own.
fn probe_netns() -> bool {
    let mut c = Command::new("/bin/sh");
    c.args(["-c", ":"]).stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: unshare is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        c.pre_exec(
            || if libc::unshare(libc::CLONE_NEWNET) == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) },
        );
    }
    c.status().map(|s| s.success()).unwrap_or(false)
}

/// Where the program `name` is: a path as given, or the first match on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(name)).find(|p| p.is_file()))
}

/// Asks an interpreter where its real binary is (pyenv and nvm put shell shims on the PATH).
fn real_binary(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let probe: Option<&[&str]> = if name.starts_with("python") {
        Some(&["-c", "import sys; print(sys.executable)"])
    } else if name.starts_with("node") {
        Some(&["-e", "console.log(process.execPath)"])
    } else {
        None
    };
    probe
        .and_then(|args| Command::new(path).args(args).output().ok())
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| path.to_path_buf())
}

impl Default for ProcessRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessRuntime {
    pub fn new() -> ProcessRuntime {
        ProcessRuntime { interpreters: Mutex::new(HashMap::new()), netns: probe_netns() }
    }

    /// Whether apps run without network on this machine.
    pub fn isolates_network(&self) -> bool {
        self.netns
    }

    /// A runtime that already knows whether it can isolate the network and where these interpreters are (e.g. resolved by a worker host
    /// for its enclave, which then skips the ~50–100 ms probe).
    /// `netns`: whether network namespaces work here (probed by the host: the probe costs a
    /// namespace creation, tens of milliseconds).
    pub fn prepared(netns: bool, known: impl IntoIterator<Item = (String, PathBuf)>) -> ProcessRuntime {
        ProcessRuntime { interpreters: Mutex::new(known.into_iter().collect()), netns }
    }

    /// The real binary of interpreter `name` (resolved once, then cached).
    pub fn interpreter(&self, name: &str) -> Result<PathBuf, ExecError> {
        let mut cache = self.interpreters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = cache.get(name) {
            return Ok(p.clone());
        }
        let found = which(name)
            .ok_or_else(|| ExecError::Start(format!("interpreter `{name}` is not installed on this worker")))?;
        let real = real_binary(&found);
        cache.insert(name.to_string(), real.clone());
        Ok(real)
    }
}

impl Runtime for ProcessRuntime {
    fn run(&self, job: &Job) -> Result<Outcome, ExecError> {
        let entry = job.app_dir.join(&job.manifest.entrypoint);
        let mut cmd = match &job.manifest.interpreter {
            Some(i) => {
                let mut c = Command::new(self.interpreter(i)?);
                c.arg(&entry);
                c
            }
            None => Command::new(&entry),
        };
        cmd.args(&job.args)
            .env_clear()
            .envs(job.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&job.app_dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&job.stdout)?)
            .stderr(std::fs::File::create(&job.stderr)?);
        let memory = job.memory_limit;
        let netns = self.netns;
        // SAFETY: only async-signal-safe system calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::setsid();
                let lim = libc::rlimit { rlim_cur: memory as libc::rlim_t, rlim_max: memory as libc::rlim_t };
                if memory > 0 && libc::setrlimit(libc::RLIMIT_DATA, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if netns && libc::unshare(libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let start = Instant::now();
        let mut child = cmd.spawn().map_err(|e| ExecError::Start(format!("{}: {e}", entry.display())))?;
        let pid = child.id() as i32;
        let mut nap = Duration::from_micros(200);
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break s;
            }
            if start.elapsed() >= job.time_limit {
                // SAFETY: signals the child's own process group (it called setsid).
                unsafe { libc::killpg(pid, libc::SIGKILL) };
                let _ = child.wait();
                return Err(ExecError::Timeout(job.time_limit));
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(10));
        };
        // Whatever the app left running in its group goes with it.
        unsafe { libc::killpg(pid, libc::SIGKILL) };
        let mut missing = vec![];
        if !netns {
            missing.push("network isolation (no network namespace available)".to_string());
        }
        match (status.code(), status.signal()) {
            (Some(0), _) => Ok(Outcome { duration: start.elapsed(), missing_limits: missing }),
            (Some(c), _) => Err(ExecError::Exit(c)),
            (None, Some(s)) => Err(ExecError::Signal(s)),
            _ => Err(ExecError::Start("the app ended in an unknown way".into())),
        }
    }
}
