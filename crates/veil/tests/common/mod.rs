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
    /// SIGTERM first (a service that keeps state, like anvil, writes it and stops its children),
    /// then SIGKILL after 5 s.
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The two ledgers the end-to-end tests run on: one test body, two backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Veil's own node (`veil node --dev`).
    Embedded,
    /// iExec's PoCo on anvil (`veil evm anvil`) with `veil node --rpc … --hub …` for its services.
    Anvil,
}

impl Backend {
    /// Development account `i` of this ledger (what `--dev-account i` signs with).
    pub fn dev_key(self, i: usize) -> veil_core::PrivateKey {
        match self {
            Backend::Embedded => veil_node::dev::dev_key(i),
            Backend::Anvil => veil_evm::anvil::dev_key(i).expect("anvil dev key"),
        }
    }

    pub fn address(self, i: usize) -> String {
        format!("{:?}", self.dev_key(i).address())
    }
}

/// Generates `mod NAME { fn embedded(); fn anvil(); }` running `fn NAME(Backend)` on each ledger.
#[macro_export]
macro_rules! on_both_ledgers {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn embedded() {
                super::$name($crate::common::Backend::Embedded)
            }
            #[test]
            fn anvil() {
                super::$name($crate::common::Backend::Anvil)
            }
        }
    )*};
}

/// A ledger and the node serving its off-chain services (orderbook, storage, SMS in dev mode).
pub struct Chain {
    pub node: Service,
    /// With [`Backend::Anvil`]: `veil evm anvil` (its ready line has `rpc` and `hub`).
    pub anvil: Option<Service>,
    pub backend: Backend,
}

impl std::ops::Deref for Chain {
    type Target = Service;
    fn deref(&self) -> &Service {
        &self.node
    }
}

/// One runtime for a test's async calls (a client's connections live on the runtime that made them).
pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap())
}

impl Chain {
    /// The ledger itself, to send transactions as a hand-written client (or an attacker) would.
    pub fn ledger(&self) -> std::sync::Arc<dyn veil_sdk::Ledger> {
        match &self.anvil {
            None => std::sync::Arc::new(veil_sdk::Client::new(&self.node.url)),
            Some(a) => {
                let hub = a.ready["hub"].as_str().and_then(|h| h.parse().ok());
                std::sync::Arc::new(rt().block_on(veil_evm::EvmLedger::connect(&a.url, hub)).expect("PoCo on anvil"))
            }
        }
    }
}

/// A dev ledger on `backend` with its node's data in `dir` (anvil's state in `dir/anvil`).
pub fn chain(backend: Backend, dir: &Path) -> Chain {
    chain_logged(backend, dir, Stdio::null(), "warn")
}

/// [`chain`] with the node's standard error and log level.
pub fn chain_logged(backend: Backend, dir: &Path, stderr: Stdio, level: &str) -> Chain {
    let data = dir.to_str().expect("utf-8 path");
    match backend {
        Backend::Embedded => {
            Chain { node: spawn_logged(&["node", "--dev", "--data-dir", data], stderr, level), anvil: None, backend }
        }
        Backend::Anvil => {
            let anvil = spawn_anvil(&dir.join("anvil"), "0");
            let (rpc, hub) = (anvil.url.clone(), anvil.ready["hub"].as_str().expect("hub").to_string());
            let node =
                spawn_logged(&["node", "--dev", "--data-dir", data, "--rpc", &rpc, "--hub", &hub], stderr, level);
            Chain { node, anvil: Some(anvil), backend }
        }
    }
}

/// `veil evm anvil` on `port` (0: a free one) with its state in `dir` (fresh unless kept there);
/// its `url` is the RPC.
pub fn spawn_anvil(dir: &Path, port: &str) -> Service {
    let mut child = Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(["evm", "anvil", "--json", "--port", port, "--data-dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start veil evm anvil");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("ready line");
    let ready: Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("veil evm anvil: bad ready line `{line}` (run scripts/evm-deps?): {e}"));
    let url = ready["rpc"].as_str().expect("rpc").to_string();
    Service { child, url, ready }
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
    veil_env(url, args, &[])
}

/// [`veil`] with more environment variables.
pub fn veil_env(url: &str, args: &[&str], env: &[(&str, &str)]) -> Result<Value, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(args)
        .arg("--json")
        .env("VEIL_NODE", url)
        .envs(env.iter().copied())
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
    dev_network_on(Backend::Embedded, dir, fresh)
}

/// [`dev_network`] on `backend` (`--chain anvil`: anvil on a free port).
pub fn dev_network_on(backend: Backend, dir: &Path, fresh: bool) -> Service {
    let mut c = Command::new(env!("CARGO_BIN_EXE_veil"));
    if backend == Backend::Anvil {
        c.args(["dev", "--chain", "anvil", "--anvil-port", "0"]);
    }
    if backend == Backend::Embedded {
        c.arg("dev");
    }
    c.args(["--json", "--workers", "1", "--listen", "127.0.0.1:0", "--scheduler-listen", "127.0.0.1:0", "--data-dir"])
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
    pub node: Chain,
    pub scheduler: Service,
    pub url: String,
    pub pool: String,
}

pub fn pool_network(dir: &Path, funded: &[&str], amount: &str) -> PoolNet {
    pool_network_on(Backend::Embedded, dir, funded, amount)
}

/// [`pool_network`] on `backend`.
pub fn pool_network_on(backend: Backend, dir: &Path, funded: &[&str], amount: &str) -> PoolNet {
    let node = chain(backend, &dir.join("node"));
    let url = node.url.clone();
    for i in funded {
        ok(&url, &["account", "deposit", amount, "--dev-account", i]);
    }
    let (pool, scheduler) = pool_and_scheduler(&url, &dir.join("sched"));
    PoolNet { node, scheduler, url, pool }
}

/// A workerpool of dev account 3 on the node at `url`, and its scheduler (data in `sched_dir`).
pub fn pool_and_scheduler(url: &str, sched_dir: &Path) -> (String, Service) {
    let pool = ok(url, &["workerpool", "deploy", "--name", "pool", "--dev-account", "3"])["address"]
        .as_str()
        .expect("pool address")
        .to_string();
    let args = ["scheduler", "--workerpool", &pool, "--dev-account", "3", "--node", url, "--data-dir"];
    let scheduler = spawn(&[&args[..], &[sched_dir.to_str().expect("utf-8 path")]].concat(), Stdio::null());
    (pool, scheduler)
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
