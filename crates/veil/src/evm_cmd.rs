//! `veil evm`: iExec's PoCo contracts on an EVM chain. `deploy-poco` deploys them from iExec's npm
//! package on any chain; `anvil` starts a local chain with PoCo deployed and dev accounts funded,
//! kept between runs.

use crate::chain_cmd::{SignerArgs, runtime};
use crate::cli_io::{emit, veil_home};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;
use veil_evm::anvil::{self, Anvil};
use veil_evm::{Deployment, EvmLedger};
use veil_sdk::Ledger;

#[derive(Subcommand)]
pub enum EvmCmd {
    /// Deploy PoCo v6 from the unpacked @iexec/poco@6.1.0 package on the chain at --rpc, and write a
    /// deployment file (hub, RLC, registries, chain id).
    DeployPoco(DeployPocoArgs),
    /// Start anvil with PoCo deployed and dev accounts 1–9 funded with RLC; the chain's state is
    /// kept in --data-dir between runs (Ctrl-C stops it and saves).
    Anvil(AnvilArgs),
    /// On a test chain (anvil): give an address ETH for gas and, from anvil's account 0 (PoCo's
    /// deployer), RLC — what a new wallet needs before `veil account deposit` on `veil dev --chain
    /// anvil`. The chain: --rpc/--hub, or the one the node serves.
    Fund(FundArgs),
}

#[derive(Args)]
pub struct FundArgs {
    /// The address to fund.
    pub address: veil_core::Address,
    /// ETH for gas (the balance is set to this).
    #[arg(long, default_value = "10")]
    pub eth: u64,
    /// RLC sent from anvil's account 0 (0: none).
    #[arg(long, default_value = "1000")]
    pub rlc: u64,
    #[command(flatten)]
    pub conn: crate::chain_cmd::Conn,
}

#[derive(Args)]
pub struct DeployPocoArgs {
    /// The unpacked @iexec/poco@6.1.0 package (default: $VEIL_POCO, else the one scripts/evm-deps caches).
    #[arg(long)]
    pub poco: Option<PathBuf>,
    /// Where to write the deployment (JSON).
    #[arg(long, default_value = "poco-deployment.json")]
    pub out: PathBuf,
    /// The deployer (it receives the 87 M RLC; with --dev-account N, anvil's account N).
    #[command(flatten)]
    pub signer: SignerArgs,
}

#[derive(Args)]
pub struct AnvilArgs {
    /// Port of the RPC endpoint.
    #[arg(long, default_value_t = 8545)]
    pub port: u16,
    /// Where the chain's state is kept (default: $VEIL_HOME/anvil).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Start again from a fresh PoCo deployment, dropping the kept state.
    #[arg(long)]
    pub fresh: bool,
    /// The anvil binary (default: $VEIL_ANVIL, `anvil` on PATH, or the one scripts/evm-deps caches).
    #[arg(long)]
    pub anvil: Option<PathBuf>,
    /// The unpacked @iexec/poco@6.1.0 package (default: $VEIL_POCO, else the cached one).
    #[arg(long)]
    pub poco: Option<PathBuf>,
}

pub fn run(cmd: EvmCmd, json: bool) -> Result<()> {
    match cmd {
        EvmCmd::DeployPoco(a) => deploy_poco(a, json),
        EvmCmd::Anvil(a) => run_anvil(a, json),
        EvmCmd::Fund(a) => fund(a, json),
    }
}

fn rpc_url() -> Result<String> {
    // `--rpc` falls back to VEIL_RPC (and veil.toml) already.
    crate::chain_cmd::rpc_flag().map(|(r, _)| r.clone()).context(
        "say which chain: --rpc URL (or VEIL_RPC); `veil evm anvil` starts a local one with PoCo already deployed",
    )
}

fn deploy_poco(a: DeployPocoArgs, json: bool) -> Result<()> {
    let url = rpc_url()?;
    let poco = anvil::find_poco(a.poco.as_deref())?;
    let key = a.signer.key()?;
    let rt = runtime()?;
    let t0 = Instant::now();
    let d = rt.block_on(async {
        let rpc = veil_evm::rpc::Rpc::connect(&url).await?;
        veil_evm::deploy_poco(&rpc, &poco, &key, &mut |m| {
            if !json {
                eprintln!("  {m}");
            }
        })
        .await
    })?;
    std::fs::write(&a.out, serde_json::to_vec_pretty(&d)?)
        .with_context(|| format!("cannot write {}", a.out.display()))?;
    let human = format!(
        "PoCo 6.1.0 deployed on chain {} in {:.1} s ({} transactions, {} gas)\n  hub                  {}\n  RLC                  {}\n  app registry         {}\n  dataset registry     {}\n  workerpool registry  {}\n  written              {}\nUse it: veil --rpc {url} --hub {} account show",
        d.chain_id,
        t0.elapsed().as_secs_f64(),
        d.transactions,
        d.gas_used,
        d.hub.to_checksum(None),
        d.rlc.to_checksum(None),
        d.app_registry.to_checksum(None),
        d.dataset_registry.to_checksum(None),
        d.workerpool_registry.to_checksum(None),
        a.out.display(),
        d.hub.to_checksum(None),
    );
    emit(json, &json!({ "deployment": d, "file": a.out, "rpc": url }), &human);
    Ok(())
}

/// A local chain with PoCo: anvil started from the state kept in `dir` (or, the first time or
/// with `fresh`, from the cached fixture). Stopping the returned [`Anvil`] writes the state back.
pub struct LocalChain {
    pub node: Anvil,
    pub deployment: Deployment,
    /// Started from state kept by an earlier run.
    pub kept: bool,
}

pub async fn start_local_chain(
    dir: &Path,
    port: u16,
    fresh: bool,
    anvil_bin: Option<&Path>,
    poco: Option<&Path>,
    progress: veil_evm::deploy::Progress<'_>,
) -> Result<LocalChain> {
    let bin = anvil::find_anvil(anvil_bin)?;
    let state = dir.join("state.json");
    let dep_file = dir.join("deployment.json");
    let kept = !fresh && state.is_file() && dep_file.is_file();
    let deployment: Deployment = if kept {
        serde_json::from_slice(&std::fs::read(&dep_file)?)
            .with_context(|| format!("{} is unreadable: start again with --fresh", dep_file.display()))?
    } else {
        let poco = anvil::find_poco(poco)?;
        let fixture = anvil::fixture(&bin, &poco, progress).await?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::copy(&fixture.state, &state).with_context(|| format!("cannot write {}", state.display()))?;
        std::fs::write(&dep_file, serde_json::to_vec_pretty(&fixture.deployment)?)?;
        fixture.deployment
    };
    let node = Anvil::spawn(&bin, port, Some(&state)).await?;
    Ok(LocalChain { node, deployment, kept })
}

fn run_anvil(a: AnvilArgs, json: bool) -> Result<()> {
    let dir = a.data_dir.unwrap_or_else(|| veil_home().join("anvil"));
    let state = dir.join("state.json");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let t0 = Instant::now();
    let chain =
        rt.block_on(start_local_chain(&dir, a.port, a.fresh, a.anvil.as_deref(), a.poco.as_deref(), &mut |m| {
            if !json {
                eprintln!("  {m}");
            }
        }))?;
    let LocalChain { mut node, deployment, kept } = chain;
    let ledger = rt.block_on(EvmLedger::connect(&node.url, Some(deployment.hub)))?;
    let mut accounts = vec![];
    for (i, addr) in anvil::dev_addresses() {
        accounts.push((i, addr, rt.block_on(ledger.account(&addr))?.account));
    }
    let ready_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let mut human = format!(
        "anvil with PoCo 6.1.0 ready in {ready_ms:.0} ms ({})\n  RPC       {}\n  chain id  {}\n  hub       {}\n  RLC       {}\n  state     {}\nDev accounts (anvil's public test keys: --dev-account N):",
        if kept { "state kept from the last run" } else { "fresh deployment" },
        node.url,
        deployment.chain_id,
        deployment.hub.to_checksum(None),
        deployment.rlc.to_checksum(None),
        dir.display()
    );
    for (i, addr, acc) in &accounts {
        human.push_str(&format!("\n  {i}  {}  {}", addr.to_checksum(None), acc.wallet.to_rlc_string()));
    }
    human.push_str(&format!(
        "\nTry: veil --rpc {} --hub {} account show --dev-account 1\nCtrl-C stops anvil and keeps the state.",
        node.url,
        deployment.hub.to_checksum(None)
    ));
    let v = json!({
        "rpc": node.url,
        "chainId": deployment.chain_id,
        "hub": deployment.hub,
        "deployment": deployment,
        "stateDir": dir,
        "kept": kept,
        "readyMs": ready_ms,
        "pid": node.pid(),
        "accounts": accounts
            .iter()
            .map(|(i, addr, acc)| json!({ "index": i, "address": addr, "rlc": acc.wallet, "escrow": acc.balance }))
            .collect::<Vec<_>>(),
    });
    if json {
        println!("{}", serde_json::to_string(&v)?);
    } else {
        println!("{human}");
    }
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        anyhow::Ok(())
    })?;
    node.stop();
    if !state.is_file() {
        bail!("anvil stopped without writing its state to {}", state.display());
    }
    if !json {
        eprintln!("anvil stopped; state kept in {}", dir.display());
    }
    Ok(())
}

fn fund(a: FundArgs, json: bool) -> Result<()> {
    let rt = runtime()?;
    let (wallet, escrow) = rt.block_on(async {
        let Some((rpc, hub)) = crate::chain_cmd::evm_target_of(&a.conn) else {
            bail!("no EVM chain: pass --rpc URL (anvil's), or --node of a node serving one (veil dev --chain anvil)")
        };
        let l = EvmLedger::connect(&rpc, hub).await?;
        if l.rpc.chain_id != 31337 {
            bail!("chain {} is not a local test chain (anvil's is 31337): fund wallets there yourself", l.rpc.chain_id);
        }
        let wei = veil_core::U256::from(a.eth) * veil_core::U256::from(10u64).pow(veil_core::U256::from(18u64));
        l.set_gas_balance(a.address, wei).await?;
        if a.rlc > 0 {
            let amount = veil_core::Nrlc::rlc(a.rlc).0;
            let out = veil_evm::deploy::rlc_transfer(l.deployment.rlc, a.address, amount);
            for r in l.rpc.send(&anvil::dev_key(0)?, vec![out]).await {
                r?;
            }
        }
        let acc = l.account(&a.address).await?.account;
        anyhow::Ok((acc.wallet, acc.balance))
    })?;
    let human = format!(
        "{} funded: {} ETH for gas, {} in its wallet ({} in the escrow)",
        a.address,
        a.eth,
        wallet.to_rlc_string(),
        escrow.to_rlc_string()
    );
    emit(json, &json!({ "address": a.address, "eth": a.eth, "wallet": wallet, "escrow": escrow }), &human);
    Ok(())
}
