//! The `image` runtime: an OCI image's root filesystem run by a real OCI runtime, `crun` or `runc`
//! (no Docker daemon), as iExec's worker runs a Docker iApp: entrypoint + args (or the image's CMD), the image's
//! Env, WorkingDir and User, `/iexec_in` (read-only) and `/iexec_out` bound in, the `IEXEC_*`
//! environment, a memory limit (cgroup), a pids limit, a time limit, and the host's network unless
//! the worker turns it off (then a network namespace with only loopback).
//!
//! Each task gets its own writable layer: an overlay whose lower layer is the image's shared,
//! unpacked root filesystem (a copy when overlays cannot be mounted here).

use crate::runtime::{ExecError, Outcome};
use serde_json::json;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Docker's PATH for images that set none (`FROM scratch` images, for instance).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Where the app sees its input and output folders.
pub const IN: &str = "/iexec_in";
pub const OUT: &str = "/iexec_out";
const PIDS_LIMIT: i64 = 1024;

/// What an image says about running it, and what this task adds.
#[derive(Debug, Clone, Default)]
pub struct ContainerJob {
    /// The image's unpacked root filesystem, shared by every task (never written).
    pub rootfs: PathBuf,
    /// This task's own folder (its writable layer and the runtime's bundle go here).
    pub task_dir: PathBuf,
    /// Entrypoint + args, or entrypoint + the image's CMD when the args are blank.
    pub command: Vec<String>,
    /// The image's Env (`KEY=VALUE`), then the task's (`IEXEC_*`), which win.
    pub image_env: Vec<String>,
    pub task_env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub iexec_in: PathBuf,
    pub iexec_out: PathBuf,
    pub time_limit: Duration,
    pub memory_limit: u64,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

/// The command iExec's worker gives a container: entrypoint, then the args split shell-style, or
/// the image's CMD when there are none.
pub fn command(entrypoint: &[String], cmd: &[String], args: &[String]) -> Result<Vec<String>, ExecError> {
    let mut c = entrypoint.to_vec();
    c.extend_from_slice(if args.is_empty() { cmd } else { args });
    if c.is_empty() {
        return Err(ExecError::Start("the image has no ENTRYPOINT or CMD and the task gave no args".into()));
    }
    Ok(c)
}

/// An OCI runtime found on this host; serializable, so a worker hands the one it detected to its
/// enclave processes instead of each detecting it again.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ContainerRuntime {
    /// The OCI runtime's binary (crun or runc; both take the same commands).
    runc: PathBuf,
    /// crun refuses hosts with hybrid cgroups (v1 controllers + a v2 `unified` mount): it runs in a
    /// mount namespace of its own where `/sys/fs/cgroup/unified` is detached.
    crun: bool,
    version: String,
    /// The runtime's state folder (under the folder `detect` was given).
    state: PathBuf,
    overlay: bool,
    network: bool,
}

/// `name` on `PATH`, else in the system folders (runtimes live in /usr/sbin, often off a user's PATH).
fn which(name: &str) -> Option<PathBuf> {
    crate::process::which(name).or_else(|| {
        ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].iter().map(|d| Path::new(d).join(name)).find(|p| p.is_file())
    })
}

fn mount_overlay(lower: &Path, upper: &Path, work: &Path, target: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    let bad = |p: &Path| p.to_string_lossy().contains([',', ':']);
    if bad(lower) || bad(upper) || bad(work) {
        return Err(std::io::Error::other("overlay paths may not contain `,` or `:`"));
    }
    let opts = format!("lowerdir={},upperdir={},workdir={}", lower.display(), upper.display(), work.display());
    let c = |s: &str| CString::new(s).map_err(|_| std::io::Error::other("a path holds a NUL byte"));
    let (src, tgt, fs, data) = (c("overlay")?, c(&target.to_string_lossy())?, c("overlay")?, c(&opts)?);
    // SAFETY: every pointer is a valid NUL-terminated string that outlives the call.
    let r = unsafe { libc::mount(src.as_ptr(), tgt.as_ptr(), fs.as_ptr(), 0, data.as_ptr().cast()) };
    if r == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

fn unmount(target: &Path) {
    if let Ok(t) = std::ffi::CString::new(target.to_string_lossy().as_bytes()) {
        // SAFETY: a valid NUL-terminated path.
        unsafe { libc::umount2(t.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Unmounts the task layers a killed worker left mounted under `tasks` (`TASK/container/rootfs`),
/// so their folders can go; returns how many task folders it looked at.
pub fn unmount_stale(tasks: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(tasks).into_iter().flatten().flatten() {
        unmount(&e.path().join("container").join("rootfs"));
        n += 1;
    }
    n
}

/// Whether this process may mount overlays (probed once, in `dir`).
fn probe_overlay(dir: &Path) -> bool {
    let p = dir.join(format!("overlay-probe-{}", std::process::id()));
    let (l, u, w, m) = (p.join("l"), p.join("u"), p.join("w"), p.join("m"));
    let ok =
        [&l, &u, &w, &m].iter().all(|d| std::fs::create_dir_all(d).is_ok()) && mount_overlay(&l, &u, &w, &m).is_ok();
    if ok {
        unmount(&m);
    }
    let _ = std::fs::remove_dir_all(&p);
    ok
}

impl ContainerRuntime {
    /// Finds an OCI runtime and checks it can run containers here; `Err` says why not.
    /// `$VEIL_OCI_RUNTIME` (`crun`, `runc` or a path) chooses; otherwise crun (starts containers
    /// about twice as fast here), else runc. `state` is a folder for the runtime's state;
    /// `network`: whether apps get the network.
    pub fn detect(state: &Path, network: bool) -> Result<ContainerRuntime, String> {
        let chosen = std::env::var("VEIL_OCI_RUNTIME").ok().filter(|v| !v.trim().is_empty());
        let runc = match &chosen {
            Some(c) if c.contains('/') => PathBuf::from(c),
            Some(c) => which(c).ok_or_else(|| format!("VEIL_OCI_RUNTIME={c}, which is not installed"))?,
            None => which("crun")
                .or_else(|| which("runc"))
                .ok_or("no OCI runtime: install crun or runc (Debian: apt-get install crun runc) to run image apps")?,
        };
        let out =
            Command::new(&runc).arg("--version").output().map_err(|e| format!("cannot run {}: {e}", runc.display()))?;
        let version = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or("runc").trim().to_string();
        let crun = version.starts_with("crun");
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(format!(
                "{version} is here, but containers need root on this worker (rootless containers are not set up)"
            ));
        }
        let state = state.join(if crun { "crun" } else { "runc" });
        std::fs::create_dir_all(&state).map_err(|e| format!("{}: {e}", state.display()))?;
        // runc refuses paths through symlinks: work on the real path.
        let state = state.canonicalize().map_err(|e| format!("{}: {e}", state.display()))?;
        let overlay = probe_overlay(&state);
        Ok(ContainerRuntime { runc, crun, version, state, overlay, network })
    }

    /// A command of the OCI runtime (`--root STATE ARGS…`), in its own mount namespace for crun.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.runc);
        c.arg("--root").arg(&self.state).args(args);
        if self.crun {
            let (root, unified) = (c"/", c"/sys/fs/cgroup/unified");
            // SAFETY: only system calls between fork and exec, on static strings.
            unsafe {
                c.pre_exec(move || {
                    if libc::unshare(libc::CLONE_NEWNS) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let flags = libc::MS_REC | libc::MS_PRIVATE;
                    if libc::mount(std::ptr::null(), root.as_ptr(), std::ptr::null(), flags, std::ptr::null()) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // Absent on pure v1 or v2 hosts: nothing to detach there.
                    libc::umount2(unified.as_ptr(), libc::MNT_DETACH);
                    Ok(())
                });
            }
        }
        c
    }

    /// E.g. "runc version 1.1.5 (overlay layers, network on)".
    pub fn describe(&self) -> String {
        format!(
            "{} ({}, network {})",
            self.version,
            if self.overlay {
                "overlay layers"
            } else {
                "a copy of the image per task: overlays cannot be mounted here"
            },
            if self.network { "on" } else { "off" }
        )
    }

    pub fn network(&self) -> bool {
        self.network
    }

    pub fn run(&self, job: &ContainerJob) -> Result<Outcome, ExecError> {
        std::fs::create_dir_all(&job.task_dir)?;
        let dir = job.task_dir.canonicalize()?.join("container");
        let (upper, work, rootfs) = (dir.join("upper"), dir.join("work"), dir.join("rootfs"));
        for d in [&upper, &work, &rootfs] {
            std::fs::create_dir_all(d)?;
        }
        let lower = job.rootfs.canonicalize()?;
        if self.overlay {
            mount_overlay(&lower, &upper, &work, &rootfs)
                .map_err(|e| ExecError::Start(format!("cannot mount the task's layer: {e}")))?;
        } else {
            let st = Command::new("cp").arg("-a").arg(format!("{}/.", lower.display())).arg(&rootfs).status()?;
            if !st.success() {
                return Err(ExecError::Start("cannot copy the image for this task".into()));
            }
        }
        let r = self.run_in(job, &dir, &rootfs);
        if self.overlay {
            unmount(&rootfs);
        }
        r
    }

    fn run_in(&self, job: &ContainerJob, dir: &Path, rootfs: &Path) -> Result<Outcome, ExecError> {
        let (uid, gid) = resolve_user(rootfs, job.user.as_deref())?;
        let spec = self.spec(job, rootfs, uid, gid)?;
        std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&spec).unwrap_or_default())?;
        let id = format!("veil-{:016x}", {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write(dir.to_string_lossy().as_bytes());
            h.finish()
        });
        let start = Instant::now();
        let bundle = dir.to_string_lossy().to_string();
        let mut child = self
            .command(&["run", "--bundle", &bundle, &id])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&job.stdout)?)
            .stderr(std::fs::File::create(&job.stderr)?)
            .spawn()
            .map_err(|e| ExecError::Start(format!("{}: {e}", self.runc.display())))?;
        // A watchdog kills the container at the time limit; this thread waits for the end, so
        // the task is over the moment runc returns.
        let (done, ended) = std::sync::mpsc::channel::<()>();
        let watchdog = {
            let mut kill = self.command(&["kill", &id, "KILL"]);
            let (pid, limit) = (child.id() as i32, job.time_limit);
            std::thread::spawn(move || {
                if ended.recv_timeout(limit) != Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
                    return false;
                }
                let _ = kill.stdout(Stdio::null()).stderr(Stdio::null()).status();
                if ended.recv_timeout(Duration::from_secs(2)).is_err() {
                    // SAFETY: signals the runc process this runtime started (still ours: not yet waited).
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                true
            })
        };
        let status = child.wait();
        let _ = done.send(());
        let timed_out = watchdog.join().unwrap_or(false);
        let status = status?;
        if timed_out {
            self.delete(&id);
            return Err(ExecError::Timeout(job.time_limit));
        }
        // `runc run` removes the container when it ends; a kill by signal leaves it behind.
        if status.code().is_none() {
            self.delete(&id);
        }
        let code = status.code().or(status.signal().map(|s| 128 + s));
        match code {
            Some(0) => Ok(Outcome { duration: start.elapsed(), missing_limits: vec![] }),
            Some(137) if job.memory_limit > 0 => Err(ExecError::MemoryKilled(job.memory_limit)),
            Some(c) if c > 128 => Err(ExecError::Signal(c - 128)),
            Some(c) => Err(ExecError::Exit(c)),
            None => Err(ExecError::Start("the container ended in an unknown way".into())),
        }
    }

    /// Kills and removes every container in this runtime's state folder (those a killed worker
    /// left running); returns how many. Only for a process that owns the folder alone.
    pub fn clear_stale(&self) -> usize {
        let Ok(out) = self.command(&["list", "-q"]).stderr(Stdio::null()).output() else { return 0 };
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim().to_string()).collect();
        let ids: Vec<&String> = ids.iter().filter(|i| !i.is_empty()).collect();
        for id in &ids {
            self.delete(id);
        }
        ids.len()
    }

    fn delete(&self, id: &str) {
        let _ = self.command(&["delete", "--force", id]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }

    fn spec(&self, job: &ContainerJob, rootfs: &Path, uid: u32, gid: u32) -> Result<serde_json::Value, ExecError> {
        let mut env: Vec<(String, String)> = job
            .image_env
            .iter()
            .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
            .collect();
        let set = |env: &mut Vec<(String, String)>, k: &str, v: String, overwrite: bool| match env
            .iter_mut()
            .find(|(ek, _)| ek == k)
        {
            Some(e) if overwrite => e.1 = v,
            Some(_) => {}
            None => env.push((k.to_string(), v)),
        };
        set(&mut env, "PATH", DEFAULT_PATH.into(), false);
        set(&mut env, "HOME", if uid == 0 { "/root".into() } else { "/".into() }, false);
        set(&mut env, "HOSTNAME", "iexec-app".into(), true);
        for (k, v) in &job.task_env {
            set(&mut env, k, v.clone(), true);
        }
        let bind = |src: &Path, dst: &str, ro: bool| {
            let mut opts = vec!["rbind", "nosuid", "nodev"];
            if ro {
                opts.push("ro");
            }
            json!({ "destination": dst, "type": "bind", "source": src, "options": opts })
        };
        let mut mounts = vec![
            json!({"destination": "/proc", "type": "proc", "source": "proc"}),
            json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
            json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}),
            json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
            json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
            json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
            bind(&job.iexec_in.canonicalize()?, IN, true),
            bind(&job.iexec_out.canonicalize()?, OUT, false),
        ];
        let mut namespaces =
            vec![json!({"type": "pid"}), json!({"type": "ipc"}), json!({"type": "uts"}), json!({"type": "mount"})];
        if self.network {
            for f in ["/etc/resolv.conf", "/etc/hosts"] {
                if Path::new(f).is_file() {
                    mounts.push(bind(Path::new(f), f, true));
                }
            }
        } else {
            namespaces.push(json!({"type": "network"}));
        }
        let caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
        let mut resources = json!({ "pids": { "limit": PIDS_LIMIT } });
        if job.memory_limit > 0 {
            resources["memory"] = json!({ "limit": job.memory_limit, "swap": job.memory_limit });
        }
        Ok(json!({
            "ociVersion": "1.0.2",
            "process": {
                "terminal": false,
                "user": { "uid": uid, "gid": gid },
                "args": job.command,
                "env": env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
                "cwd": job.working_dir.clone().filter(|w| w.starts_with('/')).unwrap_or_else(|| "/".into()),
                "capabilities": { "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps },
                "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
                "noNewPrivileges": true
            },
            "root": { "path": rootfs, "readonly": false },
            "hostname": "iexec-app",
            "mounts": mounts,
            "linux": {
                "resources": resources,
                "namespaces": namespaces,
                "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
                "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
            }
        }))
    }
}

/// Numeric uid and gid for an image's `User` (`name`, `uid`, `name:group`, `uid:gid`), looked up in
/// the image's own `/etc/passwd` and `/etc/group`.
pub fn resolve_user(rootfs: &Path, user: Option<&str>) -> Result<(u32, u32), ExecError> {
    let user = user.map(str::trim).unwrap_or("");
    if user.is_empty() {
        return Ok((0, 0));
    }
    let (u, g) = user.split_once(':').map_or((user, None), |(u, g)| (u, Some(g)));
    let table = |file: &str| -> Vec<Vec<String>> {
        std::fs::read_to_string(rootfs.join(file))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split(':').map(String::from).collect())
            .collect()
    };
    let passwd = table("etc/passwd");
    let (uid, primary) = match u.parse::<u32>() {
        Ok(n) => (n, passwd.iter().find(|r| r.get(2) == Some(&n.to_string())).and_then(|r| r.get(3)?.parse().ok())),
        Err(_) => {
            let row = passwd
                .iter()
                .find(|r| r.first().map(String::as_str) == Some(u))
                .ok_or_else(|| ExecError::Start(format!("the image's user `{u}` is not in its /etc/passwd")))?;
            let uid = row.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
            (uid, row.get(3).and_then(|s| s.parse().ok()))
        }
    };
    let gid = match g {
        None => primary.unwrap_or(uid),
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => table("etc/group")
                .iter()
                .find(|r| r.first().map(String::as_str) == Some(g))
                .and_then(|r| r.get(2)?.parse().ok())
                .ok_or_else(|| ExecError::Start(format!("the image's group `{g}` is not in its /etc/group")))?,
        },
    };
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_follow_iexec() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            command(&s(&["python3", "/app/app.py"]), &[], &s(&["a b", "c"])).unwrap(),
            s(&["python3", "/app/app.py", "a b", "c"])
        );
        assert_eq!(command(&s(&["/bin/app"]), &s(&["--default"]), &[]).unwrap(), s(&["/bin/app", "--default"]));
        assert_eq!(command(&[], &s(&["sh", "-c", "x"]), &[]).unwrap(), s(&["sh", "-c", "x"]));
        assert_eq!(command(&[], &s(&["ignored"]), &s(&["/bin/echo", "hi"])).unwrap(), s(&["/bin/echo", "hi"]));
        assert!(command(&[], &[], &[]).is_err());
    }

    #[test]
    fn users_resolve_from_the_image() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::write(d.path().join("etc/passwd"), "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n")
            .unwrap();
        std::fs::write(d.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let check = |u: Option<&str>, want: Result<(u32, u32), &str>| match (resolve_user(d.path(), u), want) {
            (Ok(got), Ok(w)) => assert_eq!(got, w, "{u:?}"),
            (Err(e), Err(needle)) => assert!(e.to_string().contains(needle), "{u:?}: {e}"),
            (got, want) => panic!("{u:?}: got {got:?}, wanted {want:?}"),
        };
        check(None, Ok((0, 0)));
        check(Some("app"), Ok((1000, 1001)));
        check(Some("1000"), Ok((1000, 1001)));
        check(Some("4242"), Ok((4242, 4242)));
        check(Some("app:staff"), Ok((1000, 50)));
        check(Some("7:8"), Ok((7, 8)));
        check(Some("nobody"), Err("not in its /etc/passwd"));
        check(Some("app:nogroup"), Err("not in its /etc/group"));
    }
}
