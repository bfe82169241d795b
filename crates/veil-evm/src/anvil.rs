//! anvil with PoCo deployed: finds the binary and the package, builds a fixture once (a dumped anvil
//! state with PoCo and funded dev accounts, cached so later starts take a fraction of a second),
//! and runs anvil from it, stopped with SIGTERM so it writes its state back.

use crate::deploy::{Deployment, deploy_poco, rlc_transfer};
use crate::error::EvmError;
use crate::rpc::Rpc;
use alloy::primitives::{Address, U256};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use veil_core::PrivateKey;

/// anvil's ten development keys (from its public test mnemonic; never use them for real funds).
pub const ANVIL_KEYS: [&str; 10] = [
    "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "dbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
];

/// RLC given to each of dev accounts 1–9 in the fixture (account 0, PoCo's deployer, keeps the rest).
pub const DEV_RLC: u64 = 1_000_000;

pub fn dev_key(i: usize) -> Result<PrivateKey, EvmError> {
    let hex = ANVIL_KEYS.get(i).ok_or_else(|| EvmError::Setup(format!("anvil has dev accounts 0–9, not {i}")))?;
    PrivateKey::from_hex(hex).map_err(|e| EvmError::Setup(e.to_string()))
}

const ANVIL_VERSION: &str = "1.7.1";
const POCO_VERSION: &str = "6.1.0";
const INSTALL: &str = "run scripts/evm-deps (it installs both from the npm registry into ~/.cache/veil/evm)";

/// Where downloads and fixtures are cached: `$VEIL_EVM_CACHE`, else `$XDG_CACHE_HOME/veil/evm`, else `~/.cache/veil/evm`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("VEIL_EVM_CACHE") {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into())).join(".cache"));
    base.join("veil").join("evm")
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|f| f.is_file()))
}

/// The anvil binary: `explicit`, `$VEIL_ANVIL`, `anvil` on `PATH`, or the cached npm package.
pub fn find_anvil(explicit: Option<&Path>) -> Result<PathBuf, EvmError> {
    let candidate = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("VEIL_ANVIL").map(PathBuf::from))
        .or_else(|| on_path("anvil"))
        .unwrap_or_else(|| cache_dir().join(format!("anvil-{ANVIL_VERSION}/bin/anvil")));
    if candidate.is_file() {
        Ok(candidate)
    } else {
        Err(EvmError::Setup(format!(
            "anvil not found at {} nor on PATH: {INSTALL}, or `npm pack @foundry-rs/anvil-linux-amd64@{ANVIL_VERSION}` and pass --anvil BIN",
            candidate.display()
        )))
    }
}

/// The unpacked `@iexec/poco` package: `explicit`, `$VEIL_POCO`, or the cached one.
pub fn find_poco(explicit: Option<&Path>) -> Result<PathBuf, EvmError> {
    let candidate = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("VEIL_POCO").map(PathBuf::from))
        .unwrap_or_else(|| cache_dir().join(format!("poco-{POCO_VERSION}")));
    if candidate.join("package.json").is_file() {
        Ok(candidate)
    } else {
        Err(EvmError::Setup(format!(
            "iExec's PoCo package is not at {}: {INSTALL}, or `npm pack @iexec/poco@{POCO_VERSION}`, unpack it and pass --poco DIR",
            candidate.display()
        )))
    }
}

/// A running anvil; stopped with SIGTERM (so it writes `--state`) when dropped.
pub struct Anvil {
    child: Child,
    pub port: u16,
    pub url: String,
}

impl Anvil {
    /// Starts anvil on `port` (0: a free one) with `--state FILE` when given, and waits until it answers.
    pub async fn spawn(bin: &Path, port: u16, state: Option<&Path>) -> Result<Anvil, EvmError> {
        let port = if port == 0 { free_port()? } else { port };
        let mut cmd = Command::new(bin);
        cmd.args(["--port", &port.to_string(), "--host", "127.0.0.1", "--silent", "--chain-id", "31337"]);
        if let Some(s) = state {
            cmd.arg("--state").arg(s);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        // If the process that started anvil dies without stopping it, anvil is told to stop (and
        // writes its state) instead of living on, orphaned, on its port.
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| EvmError::Setup(format!("cannot start {}: {e}", bin.display())))?;
        let url = format!("http://127.0.0.1:{port}");
        let mut anvil = Anvil { child, port, url };
        anvil.wait_ready().await?;
        Ok(anvil)
    }

    async fn wait_ready(&mut self) -> Result<(), EvmError> {
        let started = Instant::now();
        loop {
            if Rpc::connect(&self.url).await.is_ok() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                return Err(EvmError::Setup(format!("anvil exited ({status}) before answering: {}", err.trim())));
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err(EvmError::Setup(format!("anvil did not answer at {} within 30 s", self.url)));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops anvil with SIGTERM and waits for it (it writes its `--state` file on the way out).
    pub fn stop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for anvil to exit by itself (for a foreground `veil evm anvil`).
    pub fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.child.wait()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

fn free_port() -> Result<u16, EvmError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| EvmError::Setup(format!("no free port: {e}")))?;
    l.local_addr().map(|a| a.port()).map_err(|e| EvmError::Setup(e.to_string()))
}

/// The cached fixture: anvil's state with PoCo deployed, dev accounts 1–9 funded and the dev
/// ledger's short categories (5: 5 s, 6: 60 s) added.
pub struct Fixture {
    pub state: PathBuf,
    pub deployment: Deployment,
}

/// Builds the fixture on first use (about 3 s), then reuses it.
pub async fn fixture(anvil: &Path, poco: &Path, progress: crate::deploy::Progress<'_>) -> Result<Fixture, EvmError> {
    let dir = cache_dir().join(format!("fixture-poco-{POCO_VERSION}-anvil-{ANVIL_VERSION}-dev"));
    let state = dir.join("state.json");
    let dep_file = dir.join("deployment.json");
    if let (true, Ok(text)) = (state.is_file(), std::fs::read_to_string(&dep_file))
        && let Ok(deployment) = serde_json::from_str(&text)
    {
        return Ok(Fixture { state, deployment });
    }
    progress("building the PoCo fixture (once): deploying PoCo 6.1.0 on a fresh anvil");
    let io = |e: std::io::Error| EvmError::Setup(format!("cannot write the fixture in {}: {e}", dir.display()));
    std::fs::create_dir_all(&dir).map_err(io)?;
    let tmp = tempdir_in(&dir)?;
    let tmp_state = tmp.join("state.json");
    let mut node = Anvil::spawn(anvil, 0, Some(&tmp_state)).await?;
    let rpc = Rpc::connect(&node.url).await?;
    let deployer = dev_key(0)?;
    let deployment = deploy_poco(&rpc, poco, &deployer, progress).await?;
    let amount = U256::from(DEV_RLC) * U256::from(1_000_000_000u64);
    let mut setup = (1..10)
        .map(|i| dev_key(i).map(|k| rlc_transfer(deployment.rlc, k.address(), amount)))
        .collect::<Result<Vec<_>, _>>()?;
    // The dev ledger's short categories too, so a deal's deadlines can run out in a test.
    let dev = veil_core::state::dev_categories();
    setup.extend(
        dev[crate::deploy::CATEGORIES.len()..].iter().map(|c| crate::deploy::create_category(deployment.hub, c)),
    );
    for r in rpc.send(&deployer, setup).await {
        r?;
    }
    node.stop();
    if !tmp_state.is_file() {
        return Err(EvmError::Setup("anvil wrote no state on SIGTERM: is it anvil 1.x?".into()));
    }
    std::fs::write(tmp.join("deployment.json"), serde_json::to_vec_pretty(&deployment).unwrap_or_default())
        .map_err(io)?;
    std::fs::rename(tmp.join("deployment.json"), &dep_file).map_err(io)?;
    std::fs::rename(&tmp_state, &state).map_err(io)?;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(Fixture { state, deployment })
}

fn tempdir_in(dir: &Path) -> Result<PathBuf, EvmError> {
    let p = dir.join(format!(".build-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).map_err(|e| EvmError::Setup(format!("cannot create {}: {e}", p.display())))?;
    Ok(p)
}

/// A chain for tests and benchmarks: anvil started from a copy of the fixture in `dir`.
pub async fn start_from_fixture(anvil: &Path, fixture: &Fixture, dir: &Path, port: u16) -> Result<Anvil, EvmError> {
    let state = dir.join("state.json");
    std::fs::copy(&fixture.state, &state)
        .map_err(|e| EvmError::Setup(format!("cannot copy the fixture to {}: {e}", state.display())))?;
    Anvil::spawn(anvil, port, Some(&state)).await
}

/// The dev accounts as (index, address).
pub fn dev_addresses() -> Vec<(usize, Address)> {
    (0..10).filter_map(|i| dev_key(i).ok().map(|k| (i, k.address()))).collect()
}
