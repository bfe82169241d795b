//! `veil dev`: the whole local network in one process — a ledger with its storage and SMS (dev
//! mode: `sim` enclaves), one workerpool with its scheduler and N workers, and pool orders (standard
//! and TEE) kept published. The ledger is Veil's embedded one, or (`--chain anvil`) iExec's PoCo on
//! a local anvil that this command starts; everything else reaches it through the ledger trait.
//! Stopping and starting again keeps everything; `--fresh` starts over.

use crate::cli_io::veil_home;
use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use serde_json::json;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use veil_core::{Address, B256, Call, Nrlc, PrivateKey, U256, WorkerpoolOrder};
use veil_node::dev::{DEV_ACCOUNTS, DEV_FUNDS_RLC, dev_genesis};
use veil_sdk::{Client, Ledger};

/// Dev account of the pool owner (and scheduler); workers use the accounts after it.
const POOL_ACCOUNT: usize = 3;
const FIRST_WORKER_ACCOUNT: usize = 5;
/// Escrow each service keeps for stakes.
const STAKE_RLC: u64 = 1_000;

/// Which ledger a local network runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ChainKind {
    /// Veil's own ledger, in this process.
    Embedded,
    /// iExec's PoCo contracts on a local anvil (started by this command).
    Anvil,
}

impl ChainKind {
    /// Development account `i` of this ledger: Veil's dev keys, or anvil's well-known keys.
    pub fn dev_key(self, i: usize) -> PrivateKey {
        match self {
            ChainKind::Embedded => veil_node::dev::dev_key(i),
            ChainKind::Anvil => {
                veil_evm::anvil::dev_key(i).expect("anvil has dev accounts 0–9, and callers stay below DEV_ACCOUNTS")
            }
        }
    }
}

#[derive(Args)]
pub struct DevArgs {
    /// Workers in the pool (dev accounts 5, 6, …).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Tasks each worker runs at once.
    #[arg(long, default_value_t = 4)]
    slots: u32,
    /// Where the network keeps its state (default: $VEIL_HOME/dev).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Start from an empty network (deletes the data folder first).
    #[arg(long)]
    fresh: bool,
    /// The node's API (with storage and SMS).
    #[arg(long, default_value = "127.0.0.1:8645")]
    listen: SocketAddr,
    /// The scheduler's API for workers.
    #[arg(long, default_value = "127.0.0.1:8648")]
    scheduler_listen: SocketAddr,
    /// The ledger: Veil's embedded one, or iExec's PoCo contracts on a local anvil.
    #[arg(long, value_enum, default_value = "embedded")]
    chain: ChainKind,
    /// With --chain anvil: anvil's RPC port.
    #[arg(long, default_value_t = 8545)]
    anvil_port: u16,
    /// Whether image apps may reach the network (iExec's apps send email and call APIs).
    #[arg(long, value_enum, default_value = "on")]
    app_network: crate::pool_cmd::OnOff,
}

pub fn run(a: DevArgs, json: bool) -> Result<()> {
    let max = DEV_ACCOUNTS - FIRST_WORKER_ACCOUNT;
    if a.workers == 0 || a.workers > max {
        bail!("--workers must be between 1 and {max} (dev accounts {FIRST_WORKER_ACCOUNT}…{})", DEV_ACCOUNTS - 1);
    }
    let default = if a.chain == ChainKind::Anvil { "dev-anvil" } else { "dev" };
    let dir = a.data_dir.clone().unwrap_or_else(|| veil_home().join(default));
    if a.fresh && dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    crate::logging(json);
    tokio::runtime::Runtime::new()?.block_on(network(a, dir, json))
}

/// What a local network is made of.
pub struct NetOptions {
    pub dir: PathBuf,
    pub workers: usize,
    pub slots: u32,
    pub listen: SocketAddr,
    pub scheduler_listen: SocketAddr,
    /// Price of the pool's orders, per task.
    pub pool_price: U256,
    pub chain: ChainKind,
    /// With [`ChainKind::Anvil`]: anvil's port (0: a free one).
    pub anvil_port: u16,
    /// Whether image apps may reach the network.
    pub app_network: bool,
}

/// A running local network (its services live on the runtime that started it).
pub struct Network {
    pub node: String,
    pub scheduler: String,
    pub workerpool: Address,
    pub head: u64,
    pub chain: ChainKind,
    pub ledger: Arc<dyn Ledger>,
    /// With [`ChainKind::Anvil`]: the chain (stopped, and its state written, when dropped), and
    /// PoCo on it (for what only a test chain offers: gas for new keys).
    pub anvil: Option<veil_evm::anvil::Anvil>,
    pub evm: Option<veil_evm::EvmLedger>,
    pub hub: Option<Address>,
}

impl Network {
    pub fn conn(&self) -> crate::chain_cmd::Conn {
        crate::chain_cmd::Conn { node: self.node.clone() }
    }

    /// Dev account of the pool owner (its scheduler signs with it).
    pub fn pool_owner(&self) -> PrivateKey {
        self.chain.dev_key(POOL_ACCOUNT)
    }

    /// Dev accounts of the network's workers.
    pub fn worker_keys(&self, n: usize) -> Vec<PrivateKey> {
        worker_keys(self.chain, n)
    }
}

/// Dev accounts of the first `n` workers.
pub fn worker_keys(chain: ChainKind, n: usize) -> Vec<PrivateKey> {
    (0..n).map(|w| chain.dev_key(FIRST_WORKER_ACCOUNT + w)).collect()
}

async fn network(a: DevArgs, dir: PathBuf, json: bool) -> Result<()> {
    let o = NetOptions {
        dir: dir.clone(),
        workers: a.workers,
        slots: a.slots,
        listen: a.listen,
        scheduler_listen: a.scheduler_listen,
        pool_price: U256::ZERO,
        chain: a.chain,
        anvil_port: a.anvil_port,
        app_network: a.app_network == crate::pool_cmd::OnOff::On,
    };
    let net = start(&o).await?;
    announce(&net, &a, &dir, json);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    if let Some(mut anvil) = net.anvil {
        // anvil writes the chain's state as it stops.
        tokio::task::block_in_place(|| anvil.stop());
    }
    Ok(())
}

/// The ledger's part of a network: Veil's node with its services, or anvil with PoCo plus the
/// node's off-chain services for it.
async fn start_ledger(o: &NetOptions) -> Result<LedgerPart> {
    let dir = &o.dir;
    let config = veil_node::NodeConfig {
        data_dir: dir.join("node"),
        listen: o.listen,
        genesis: Some(dev_genesis()),
        dev: true,
        block_time: Duration::ZERO,
        checkpoint_every: 1000,
        embedded_services: true,
        max_blob_size: 16 << 30,
    };
    let listener =
        tokio::net::TcpListener::bind(o.listen).await.with_context(|| format!("cannot listen on {}", o.listen))?;
    let node = format!("http://{}", listener.local_addr()?);
    match o.chain {
        ChainKind::Embedded => {
            let (shared, report) = veil_node::start(&config)?;
            let router = veil_node::node::router(shared, &config, &node)?;
            tokio::spawn(async move { axum::serve(veil_node::node::nodelay(listener), router).await });
            let ledger = Arc::new(Client::new(&node));
            Ok(LedgerPart { node, ledger, head: report.head, anvil: None, evm: None, hub: None })
        }
        ChainKind::Anvil => {
            let chain =
                crate::evm_cmd::start_local_chain(&dir.join("anvil"), o.anvil_port, false, None, None, &mut |m| {
                    eprintln!("  {m}")
                })
                .await?;
            let hub = chain.deployment.hub;
            let evm = veil_evm::EvmLedger::connect(&chain.node.url, Some(hub)).await?;
            let ledger: Arc<dyn Ledger> = Arc::new(evm.clone());
            let (router, _) = veil_node::chain_node::start(&config, ledger.clone()).await?;
            tokio::spawn(async move { axum::serve(veil_node::node::nodelay(listener), router).await });
            let head = ledger.chain().await?.head;
            Ok(LedgerPart { node, ledger, head, anvil: Some(chain.node), evm: Some(evm), hub: Some(hub) })
        }
    }
}

struct LedgerPart {
    node: String,
    ledger: Arc<dyn Ledger>,
    head: u64,
    anvil: Option<veil_evm::anvil::Anvil>,
    evm: Option<veil_evm::EvmLedger>,
    hub: Option<Address>,
}

/// Starts the ledger (with storage and SMS in dev mode), scheduler, workers and the pool-order
/// keepers as tasks of the current (multi-threaded) runtime.
pub async fn start(o: &NetOptions) -> Result<Network> {
    let dir = &o.dir;
    let LedgerPart { node, ledger, head, anvil, evm, hub } = start_ledger(o).await?;
    let book = Client::new(&node);
    let owner = o.chain.dev_key(POOL_ACCOUNT);
    let workers = worker_keys(o.chain, o.workers);
    for k in std::iter::once(&owner).chain(&workers) {
        keep_stake(ledger.as_ref(), k).await?;
    }
    let pool = pool(ledger.as_ref(), &owner, dir).await?;

    let sched_cfg = veil_pool::SchedulerConfig {
        workerpool: pool,
        key: owner.clone(),
        data_dir: dir.join("scheduler"),
        sms: node.clone(),
        worker_timeout: Duration::from_secs(10),
    };
    let scheduler = veil_pool::Scheduler::open(sched_cfg, ledger.clone()).await?;
    tokio::spawn(scheduler.clone().follow());
    tokio::spawn(scheduler.clone().watch());
    let sl = tokio::net::TcpListener::bind(o.scheduler_listen)
        .await
        .with_context(|| format!("cannot listen on {}", o.scheduler_listen))?;
    let sched_url = format!("http://{}", sl.local_addr()?);
    // iExec's compass on the node answers where this pool's API is (`iexec task debug`).
    scheduler.announce_api(&node, &sched_url).await?;
    tokio::spawn(scheduler.clone().announce_forever(node.clone(), sched_url.clone()));
    tokio::spawn(async move { axum::serve(veil_node::node::nodelay(sl), veil_pool::http::router(scheduler)).await });

    let program = std::env::current_exe().context("cannot find the veil program to run enclaves")?;
    for (w, key) in workers.iter().enumerate() {
        let cfg = veil_pool::WorkerConfig {
            scheduler: sched_url.clone(),
            storage: node.clone(),
            key: key.clone(),
            slots: o.slots,
            work_dir: dir.join(format!("worker-{w}")),
            memory_limit: 2048 << 20,
            max_output: veil_exec::result::DEFAULT_MAX_OUTPUT,
            sms: node.clone(),
            enclave_program: program.clone(),
            app_network: o.app_network,
            image_cache: veil_pool::image::DEFAULT_CACHE,
            tee: veil_pool::tee::TeeChoice::Sim,
        };
        tokio::spawn(veil_pool::Worker::new(cfg, ledger.clone()).run());
    }
    let trust = if o.workers >= 2 { 3 } else { 1 };
    let mut published = vec![];
    // Standard, TEE, and TEE+TDX (iExec's SDK puts the TDX tag on every order; here TDX deals run
    // on the `sim` platform like every TEE deal, and say so).
    let tdx = B256::with_last_byte(veil_core::tag::TEE | veil_core::tag::TDX);
    for tag in [B256::ZERO, B256::with_last_byte(veil_core::tag::TEE), tdx] {
        let (ledger, book, owner, price) = (ledger.clone(), book.clone(), owner.clone(), o.pool_price);
        let (tell, first) = tokio::sync::oneshot::channel();
        published.push(first);
        tokio::spawn(async move {
            if let Err(e) = keep_offering(ledger.as_ref(), &book, &owner, pool, tag, trust, price, tell).await {
                eprintln!("veil dev: pool orders are no longer kept published: {e}");
            }
        });
    }
    for first in published {
        first.await.context("the pool could not publish its first order")?;
    }
    Ok(Network { node, scheduler: sched_url, workerpool: pool, head, chain: o.chain, ledger, anvil, evm, hub })
}

/// Tops the account's escrow up to the stake it needs.
async fn keep_stake(ledger: &dyn Ledger, k: &PrivateKey) -> Result<()> {
    let balance = ledger.account(&k.address()).await?.account.balance;
    let want = Nrlc::rlc(STAKE_RLC);
    if balance < want {
        let amount = want.checked_sub(balance).unwrap_or(want);
        ledger.send(k, Call::Deposit { amount }).await?;
    }
    Ok(())
}

/// The network's workerpool: remembered in `dev.json`, registered on first start.
async fn pool(ledger: &dyn Ledger, owner: &PrivateKey, dir: &Path) -> Result<Address> {
    let file = dir.join("dev.json");
    if let Ok(b) = std::fs::read(&file) {
        let v: serde_json::Value =
            serde_json::from_slice(&b).with_context(|| format!("{} is damaged", file.display()))?;
        if let Some(p) = v["workerpool"].as_str().and_then(|s| s.parse().ok()) {
            return Ok(p);
        }
    }
    let r = ledger.send(owner, Call::CreateWorkerpool { description: "veil dev pool".into() }).await?;
    let p = crate::local::created(&r.events)?;
    crate::cli_io::write_file(&file, json!({ "workerpool": p }).to_string().as_bytes(), false)?;
    Ok(p)
}

/// Keeps one pool order with this tag in the book (see [`crate::pool_cmd::keep_pool_order`]);
/// `published` is told once the first one is in.
#[allow(clippy::too_many_arguments)]
async fn keep_offering(
    ledger: &dyn Ledger,
    book: &Client,
    owner: &PrivateKey,
    pool: Address,
    tag: B256,
    trust: u64,
    price: U256,
    published: tokio::sync::oneshot::Sender<()>,
) -> Result<()> {
    let order = || WorkerpoolOrder {
        workerpool: pool,
        workerpoolprice: price,
        volume: U256::from(10_000),
        tag,
        category: U256::ZERO,
        trust: U256::from(trust),
        apprestrict: Address::ZERO,
        datasetrestrict: Address::ZERO,
        requesterrestrict: Address::ZERO,
        salt: veil_sdk::flows::salt(),
    };
    crate::pool_cmd::keep_pool_order(ledger, book, owner, order, None, Some(published)).await
}

fn announce(net: &Network, a: &DevArgs, dir: &Path, json: bool) {
    let (node, sched, pool, head) = (&net.node, &net.scheduler, net.workerpool, net.head);
    let accounts: Vec<_> = (0..DEV_ACCOUNTS)
        .map(|i| {
            let k = net.chain.dev_key(i);
            json!({ "address": k.address().to_checksum(None), "privateKey": format!("0x{}", hex::encode(k.secret_bytes())) })
        })
        .collect();
    if json {
        println!(
            "{}",
            json!({ "ready": true, "url": node, "scheduler": sched, "workerpool": pool, "workers": a.workers, "dataDir": dir, "head": head, "devAccounts": accounts, "chain": net.chain.to_possible_value().map(|v| v.get_name().to_string()), "rpc": net.anvil.as_ref().map(|a| a.url.clone()), "hub": net.hub, "explorer": format!("{node}/explorer") })
        );
    } else {
        println!("veil dev: a whole network in this process (data {}, head block {head})", dir.display());
        if let (Some(anvil), Some(hub)) = (&net.anvil, net.hub) {
            println!("  ledger              iExec's PoCo 6.1.0 on anvil {} (chain 31337), hub {hub}", anvil.url);
            println!("  orderbook, storage, SMS  {node}   (SMS in dev mode: `sim` enclaves, {})", veil_tee::SIM_NOTICE);
        } else {
            println!("  node, storage, SMS  {node}   (SMS in dev mode: `sim` enclaves, {})", veil_tee::SIM_NOTICE);
        }
        println!("  explorer            {node}/explorer");
        println!("  scheduler           {sched}   workerpool {pool}");
        println!("  workers             {} × {} slots (dev accounts {FIRST_WORKER_ACCOUNT}…)", a.workers, a.slots);
        println!("  pool orders         category 0, price 0, standard and TEE, kept published");
        println!("\nDevelopment accounts ({DEV_FUNDS_RLC} RLC each; public keys, never hold value with them):");
        for (i, acc) in accounts.iter().enumerate() {
            let role = match i {
                POOL_ACCOUNT => "  (pool owner)",
                i if (FIRST_WORKER_ACCOUNT..FIRST_WORKER_ACCOUNT + a.workers).contains(&i) => "  (worker)",
                _ => "",
            };
            println!(
                "  ({i}) {}  {}{role}",
                acc["address"].as_str().unwrap_or(""),
                acc["privateKey"].as_str().unwrap_or("")
            );
        }
        println!(
            "\nTry: veil app deploy --bundle DIR --dev-account 1, then veil run APP --dev-account 4. Ctrl-C stops; state is kept."
        );
    }
    let _ = std::io::stdout().flush();
}
