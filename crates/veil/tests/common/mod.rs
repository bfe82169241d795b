//! Helpers shared by the end-to-end tests: start a `veil` service process and run CLI commands.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running `veil` service, killed when dropped.
pub struct Service {
    pub child: Child,
    pub url: String,
    /// Its first (ready) line as JSON.
    pub ready: Value,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `veil ARGS --json --listen 127.0.0.1:0` and waits for its ready line.
pub fn spawn(args: &[&str], stderr: Stdio) -> Service {
    spawn_logged(args, stderr, "warn")
}

/// [`spawn`] with its log level (`RUST_LOG`).
pub fn spawn_logged(args: &[&str], stderr: Stdio, level: &str) -> Service {
    spawn_at(args, stderr, level, "127.0.0.1:0")
}

/// [`spawn_logged`] listening on `listen` (to restart a service where its clients expect it).
pub fn spawn_at(args: &[&str], stderr: Stdio, level: &str, listen: &str) -> Service {
    let mut child = Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(args)
        .args(["--json", "--listen", listen])
        .env("RUST_LOG", level)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("start veil");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("ready line");
    let ready: Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("veil {args:?}: bad ready line `{line}`: {e}"));
    let url = ready["url"].as_str().expect("url").to_string();
    Service { child, url, ready }
}

/// A development node with its data in `dir`.
pub fn dev_node(dir: &Path) -> Service {
    spawn(&["node", "--dev", "--data-dir", dir.to_str().expect("utf-8 path")], Stdio::null())
}

/// Runs `veil ARGS --json` against the node at `url`; the JSON answer, or the error message.
pub fn veil(url: &str, args: &[&str]) -> Result<Value, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(args)
        .arg("--json")
        .env("VEIL_NODE", url)
        .output()
        .expect("run veil");
    let v: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("{args:?}: not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))?;
    if out.status.success() { Ok(v) } else { Err(v["error"].as_str().unwrap_or("").to_string()) }
}

pub fn ok(url: &str, args: &[&str]) -> Value {
    veil(url, args).unwrap_or_else(|e| panic!("veil {args:?} failed: {e}"))
}

/// Starts `veil worker` (its work in `dir`) for the scheduler at `scheduler`.
pub fn spawn_worker(scheduler: &str, node: &str, account: &str, dir: &Path) -> Service {
    spawn_worker_with(scheduler, node, account, dir, &[])
}

/// `veil dev` (one worker, ephemeral ports) with its state in `dir`.
pub fn dev_network(dir: &Path, fresh: bool) -> Service {
    let mut c = Command::new(env!("CARGO_BIN_EXE_veil"));
    c.args([
        "dev",
        "--json",
        "--workers",
        "1",
        "--listen",
        "127.0.0.1:0",
        "--scheduler-listen",
        "127.0.0.1:0",
        "--data-dir",
    ])
    .arg(dir)
    .env("RUST_LOG", "warn")
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    if fresh {
        c.arg("--fresh");
    }
    let mut child = c.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad ready line `{line}`: {e}"));
    Service { url: ready["url"].as_str().unwrap().to_string(), child, ready }
}

/// [`veil`] run in the folder `cwd` (for commands that act on the current project).
pub fn veil_in(cwd: &Path, url: &str, args: &[&str]) -> Result<Value, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(args)
        .arg("--json")
        .env("VEIL_NODE", url)
        .current_dir(cwd)
        .output()
        .expect("run veil");
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "{args:?}: not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    if out.status.success() { Ok(v) } else { Err(v["error"].as_str().unwrap_or("").to_string()) }
}

pub fn ok_in(cwd: &Path, url: &str, args: &[&str]) -> Value {
    veil_in(cwd, url, args).unwrap_or_else(|e| panic!("veil {args:?} in {} failed: {e}", cwd.display()))
}

/// [`spawn_worker`] with more flags (e.g. `--max-result-mb 1`).
pub fn spawn_worker_with(scheduler: &str, node: &str, account: &str, dir: &Path, extra: &[&str]) -> Service {
    let child = Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(["worker", "--json", "--scheduler", scheduler, "--node", node, "--dev-account", account, "--work-dir"])
        .arg(dir)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start veil worker");
    Service { child, url: String::new(), ready: Value::Null }
}

/// A dev node whose `funded` dev accounts deposited `amount` into the escrow, a workerpool of dev
/// account 3 and its scheduler (data in `dir`).
pub struct PoolNet {
    pub node: Service,
    pub scheduler: Service,
    pub url: String,
    pub pool: String,
}

pub fn pool_network(dir: &Path, funded: &[&str], amount: &str) -> PoolNet {
    let node = spawn(&["node", "--dev", "--data-dir", dir.join("node").to_str().expect("utf-8 path")], Stdio::null());
    let url = node.url.clone();
    for i in funded {
        ok(&url, &["account", "deposit", amount, "--dev-account", i]);
    }
    let pool = ok(&url, &["workerpool", "deploy", "--name", "pool", "--dev-account", "3"])["address"]
        .as_str()
        .expect("pool address")
        .to_string();
    let sched_dir = dir.join("sched");
    let args = ["scheduler", "--workerpool", &pool, "--dev-account", "3", "--node", &url, "--data-dir"];
    let scheduler = spawn(&[&args[..], &[sched_dir.to_str().expect("utf-8 path")]].concat(), Stdio::null());
    PoolNet { node, scheduler, url, pool }
}

/// An iApp folder `dir` holding the trivial WASM fixture (`veil-wasm/tests/fixtures/hello.wasm`);
/// returns its path as text for `--bundle`.
pub fn wasm_app_dir(dir: &Path) -> String {
    std::fs::create_dir_all(dir).expect("app folder");
    std::fs::write(dir.join("iapp.toml"), "name = \"w\"\nruntime = \"wasm\"\nentrypoint = \"hello.wasm\"\n")
        .expect("iapp.toml");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../veil-wasm/tests/fixtures/hello.wasm"),
        dir.join("hello.wasm"),
    )
    .expect("the WASM fixture");
    dir.to_str().expect("utf-8 path").to_string()
}
