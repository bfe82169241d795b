//! Commands that talk to a ledger node: accounts, asset registration, deals, tasks, orderbook.

use crate::cli_io::emit;
use crate::wallet_cmd::load_key;
use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use veil_core::book::BookQuery;
use veil_core::orders::OrderKind;
use veil_core::{Address, B256, Call, Nrlc, PrivateKey, U256};
use veil_sdk::{Client, Ledger};

/// The EVM chain the command line chose (`--rpc`, `--hub`), if any, and the node URL it names (or
/// the default): set once by `main`.
/// An EVM chain: its RPC URL and PoCo hub (optional where iExec's own hub is known).
type EvmChoice = (String, Option<Address>);

static CHOSEN: std::sync::OnceLock<(Option<EvmChoice>, String)> = std::sync::OnceLock::new();
/// What each node URL said it serves (asked once per process).
static DISCOVERED: std::sync::Mutex<Vec<(String, Option<EvmChoice>)>> = std::sync::Mutex::new(vec![]);

/// Called by `main` once the arguments are parsed: with an RPC URL, every ledger command talks to
/// PoCo on that chain and `--dev-account N` is anvil's account N. Without one, the first command
/// that needs the ledger asks `node` (`GET /chain`): a node serving an EVM chain's off-chain
/// services names its RPC and hub, and commands use them.
pub fn choose_ledger(rpc: Option<String>, hub: Option<Address>, node: String) {
    let _ = CHOSEN.set((rpc.map(|r| (r, hub)), node));
}

/// The node URL the command line names: `--node URL` or `--node=URL`, else VEIL_NODE (which
/// veil.toml may set), else the default.
pub fn node_in_args(args: &[String]) -> String {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--node" {
            if let Some(v) = it.next() {
                return v.clone();
            }
        } else if let Some(v) = a.strip_prefix("--node=") {
            return v.to_string();
        }
    }
    std::env::var("VEIL_NODE").ok().filter(|v| !v.is_empty()).unwrap_or_else(|| DEFAULT_NODE.to_string())
}

pub const DEFAULT_NODE: &str = "http://127.0.0.1:8645";

/// The RPC URL given on the command line, ignoring what a node says.
pub fn rpc_flag() -> Option<&'static EvmChoice> {
    CHOSEN.get().and_then(|(c, _)| c.as_ref())
}

/// The EVM chain commands use: the one chosen with `--rpc`, else the one the command line's node
/// says it serves.
fn evm_target() -> Option<EvmChoice> {
    let node = CHOSEN.get().map(|(_, n)| n.clone()).unwrap_or_else(|| DEFAULT_NODE.into());
    evm_target_for(&node)
}

/// Like [`evm_target`], asking `node`.
fn evm_target_for(node: &str) -> Option<EvmChoice> {
    if let Some(c) = rpc_flag() {
        return Some(c.clone());
    }
    let mut known = DISCOVERED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, t)) = known.iter().find(|(n, _)| n == node) {
        return t.clone();
    }
    let t = discover(node);
    known.push((node.to_string(), t.clone()));
    t
}

/// The EVM chain commands given `conn` use: `--rpc/--hub`, else what the node says it serves.
pub fn evm_target_of(conn: &Conn) -> Option<EvmChoice> {
    evm_target_for(&conn.node)
}

/// Asks the node which chain it serves (on a thread of its own: callers may be inside a runtime).
/// An unreachable node or a Veil ledger node: None (the command then talks to the node itself).
fn discover(node: &str) -> Option<EvmChoice> {
    let url = format!("{}/chain", node.trim_end_matches('/'));
    let asked = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
        rt.block_on(async {
            let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).build().ok()?;
            let info: veil_sdk::ChainInfo = http.get(&url).send().await.ok()?.json().await.ok()?;
            info.evm.map(|e| (e.rpc, Some(e.hub)))
        })
    });
    asked.join().ok().flatten()
}

/// With `--rpc`, the EIP-712 domain of the chosen hub (its chain id and address).
pub fn evm_domain() -> Result<Option<veil_core::Domain>> {
    let Some((rpc, hub)) = evm_target() else { return Ok(None) };
    let l = runtime()?.block_on(veil_evm::EvmLedger::connect(&rpc, hub))?;
    Ok(Some(veil_core::Domain { chain_id: l.rpc.chain_id, verifying_contract: l.deployment.hub }))
}

/// The ledger the command line chose: PoCo on an EVM chain (`--rpc`, or the chain the node
/// serves), else the Veil node.
pub async fn ledger(conn: &Conn) -> Result<Arc<dyn Ledger>> {
    Ok(match evm_target_for(&conn.node) {
        Some((rpc, hub)) => Arc::new(veil_evm::EvmLedger::connect(&rpc, hub).await?),
        None => Arc::new(conn.client()),
    })
}

/// The ledger for a long-running service: like [`ledger`], but an unreachable chain is waited for
/// (with a growing pause, saying so) instead of failing the start.
pub async fn service_ledger(conn: &Conn) -> Result<Arc<dyn Ledger>> {
    let mut backoff = veil_sdk::Backoff::new();
    loop {
        match ledger(conn).await {
            Err(e)
                if e.downcast_ref::<veil_evm::EvmError>()
                    .is_some_and(|e| matches!(e, veil_evm::EvmError::Unreachable { .. })) =>
            {
                tracing::warn!("{e:#}: trying again in {:?}", backoff.next());
                backoff.wait().await;
            }
            r => return r,
        }
    }
}

/// Which node to talk to.
#[derive(Args, Clone)]
pub struct Conn {
    /// The node's API URL.
    #[arg(long, env = "VEIL_NODE", default_value = DEFAULT_NODE, global = true)]
    pub node: String,
}

impl Conn {
    pub fn client(&self) -> Client {
        Client::new(&self.node)
    }
}

/// Who signs: `--wallet` or `--dev-account`; else `VEIL_WALLET` or `VEIL_DEV_ACCOUNT` (which
/// `veil.toml` may set, see [`crate::config`]).
#[derive(Args, Clone)]
pub struct SignerArgs {
    /// Keystore file of the signer [env: VEIL_WALLET].
    #[arg(long)]
    pub wallet: Option<PathBuf>,
    /// File whose first line is the wallet password.
    #[arg(long, env = "VEIL_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
    /// Use development account N of a `--dev` node instead of a wallet [env: VEIL_DEV_ACCOUNT].
    #[arg(long, conflicts_with = "wallet")]
    pub dev_account: Option<usize>,
}

impl SignerArgs {
    pub fn key(&self) -> Result<PrivateKey> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let (wallet, dev) = match (&self.wallet, self.dev_account) {
            (None, None) => {
                let dev = env("VEIL_DEV_ACCOUNT")
                    .map(|v| v.parse::<usize>().with_context(|| format!("VEIL_DEV_ACCOUNT=`{v}` is not a number")))
                    .transpose()?;
                match (env("VEIL_WALLET"), dev) {
                    (Some(_), Some(_)) => {
                        bail!(
                            "both a wallet and a dev account are configured (VEIL_WALLET, VEIL_DEV_ACCOUNT or veil.toml): keep one"
                        )
                    }
                    (w, d) => (w.map(PathBuf::from), d),
                }
            }
            (w, d) => (w.clone(), d),
        };
        match (wallet, dev) {
            (_, Some(i)) if evm_target().is_some() => Ok(veil_evm::anvil::dev_key(i)?),
            (_, Some(i)) if i >= veil_node::dev::DEV_ACCOUNTS => {
                bail!("--dev-account must be below {}", veil_node::dev::DEV_ACCOUNTS)
            }
            (_, Some(i)) => Ok(veil_node::dev::dev_key(i)),
            (Some(w), None) => load_key(&w, self.password_file.as_deref()),
            (None, None) => bail!(
                "no signer: pass --wallet FILE (with --password-file) or --dev-account N (a dev node's, or anvil's with --rpc), or set one in veil.toml (veil config)"
            ),
        }
    }
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")
}

/// Parses an amount: nRLC by default, or with a unit: `1.5 RLC`, `1.5RLC`, `1500nRLC`.
pub fn parse_amount(s: &str) -> Result<Nrlc> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let (num, rlc) = if let Some(n) = lower.strip_suffix("nrlc") {
        (n.trim().to_string(), false)
    } else if let Some(n) = lower.strip_suffix("rlc") {
        (n.trim().to_string(), true)
    } else {
        (lower.clone(), false)
    };
    let bad =
        || anyhow!("`{t}` is not an amount: write nRLC (e.g. 1500000000) or RLC with the unit (e.g. \"1.5 RLC\")");
    if !rlc {
        return veil_core::uint::parse(&num).map(Nrlc).map_err(|_| bad());
    }
    let (whole, frac) = num.split_once('.').unwrap_or((&num, ""));
    if frac.len() > 9
        || whole.is_empty() && frac.is_empty()
        || !(whole.bytes().chain(frac.bytes())).all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole = if whole.is_empty() { U256::ZERO } else { veil_core::uint::parse(whole).map_err(|_| bad())? };
    let frac =
        if frac.is_empty() { U256::ZERO } else { veil_core::uint::parse(&format!("{frac:0<9}")).map_err(|_| bad())? };
    whole.checked_mul(U256::from(1_000_000_000u64)).and_then(|w| w.checked_add(frac)).map(Nrlc).ok_or_else(bad)
}

fn show<T: Serialize>(json_out: bool, v: &T, human: &str) -> Result<()> {
    emit(json_out, &serde_json::to_value(v)?, human);
    Ok(())
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

#[derive(Subcommand)]
pub enum AccountCmd {
    /// Wallet, escrow balance, locked amount, nonce and score of an account (default: the signer).
    Show {
        address: Option<Address>,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Move RLC from the wallet into the PoCo escrow (amount in nRLC, or e.g. "10 RLC").
    Deposit {
        amount: String,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Move RLC from the escrow back to the wallet.
    Withdraw {
        amount: String,
        #[command(flatten)]
        signer: SignerArgs,
    },
}

pub fn account(cmd: AccountCmd, conn: &Conn, json: bool) -> Result<()> {
    let rt = runtime()?;
    let c = rt.block_on(ledger(conn))?;
    let (call, signer) = match cmd {
        AccountCmd::Show { address, signer } => {
            let a = match address {
                Some(a) => a,
                None => signer.key()?.address(),
            };
            let v = rt.block_on(c.account(&a))?;
            let acc = &v.account;
            let human = format!(
                "account {}\n  wallet   {}\n  escrow   {}\n  locked   {}\n  nonce    {}\n  score    {}",
                a.to_checksum(None),
                acc.wallet.to_rlc_string(),
                acc.balance.to_rlc_string(),
                acc.locked.to_rlc_string(),
                acc.nonce,
                acc.score
            );
            return show(json, &v, &human);
        }
        AccountCmd::Deposit { amount, signer } => (Call::Deposit { amount: parse_amount(&amount)? }, signer),
        AccountCmd::Withdraw { amount, signer } => (Call::Withdraw { amount: parse_amount(&amount)? }, signer),
    };
    let key = signer.key()?;
    let r = rt.block_on(c.send(&key, call))?;
    let v = rt.block_on(c.account(&key.address()))?;
    let human = format!(
        "done in block {}\n  escrow {}  locked {}  wallet {}",
        r.block,
        v.account.balance.to_rlc_string(),
        v.account.locked.to_rlc_string(),
        v.account.wallet.to_rlc_string()
    );
    show(json, &json!({ "receipt": r, "account": v }), &human)
}

#[derive(Args)]
pub struct DeployArgs {
    /// Name (apps and datasets) or description (workerpools). Apps deployed from a bundle default
    /// to the bundle's name.
    #[arg(long, default_value = "")]
    pub name: String,
    /// Where the asset is (URL or multiaddr).
    #[arg(long, default_value = "")]
    pub multiaddr: String,
    /// Checksum of the asset (0x + 64 hex).
    #[arg(long, default_value = "0x0000000000000000000000000000000000000000000000000000000000000000")]
    pub checksum: B256,
    /// App only: the enclave measurement (JSON or hex, as iExec stores it).
    #[arg(long, default_value = "")]
    pub mrenclave: String,
    /// App only: its type (iExec: DOCKER).
    #[arg(long, default_value = "VEIL")]
    pub app_type: String,
    #[command(flatten)]
    pub signer: SignerArgs,
}

/// Registers an app, dataset or workerpool and prints its address.
pub fn deploy(kind: &str, a: DeployArgs, conn: &Conn, json: bool) -> Result<()> {
    if a.name.trim().is_empty() {
        bail!("give the {kind} a --name");
    }
    let call = match kind {
        "app" => Call::CreateApp {
            name: a.name.clone(),
            app_type: a.app_type.clone(),
            multiaddr: a.multiaddr.clone(),
            checksum: a.checksum,
            mrenclave: a.mrenclave.clone(),
        },
        "dataset" => Call::CreateDataset { name: a.name.clone(), multiaddr: a.multiaddr.clone(), checksum: a.checksum },
        _ => Call::CreateWorkerpool { description: a.name.clone() },
    };
    let key = a.signer.key()?;
    let rt = runtime()?;
    let c = rt.block_on(ledger(conn))?;
    let r = rt.block_on(c.send(&key, call))?;
    let address = crate::local::created(&r.events)?;
    show(
        json,
        &json!({ "address": address, kind: address, "owner": key.address(), "txHash": r.tx_hash, "block": r.block }),
        &format!(
            "{kind} deployed at {}\n  owner {}  block {}",
            address.to_checksum(None),
            key.address().to_checksum(None),
            r.block
        ),
    )
}

pub fn deal_show(id: B256, conn: &Conn, json: bool) -> Result<()> {
    let rt = runtime()?;
    let v = rt.block_on(async { ledger(conn).await?.deal(&id).await.map_err(anyhow::Error::from) })?;
    let j = serde_json::to_value(&v)?;
    show(json, &v, &format!("deal {id}\n{}", pretty(&j)))
}

pub fn task_show(id: B256, scheduler: Option<String>, conn: &Conn, json: bool) -> Result<()> {
    let rt = runtime()?;
    let l = rt.block_on(ledger(conn))?;
    let v = rt.block_on(l.task(&id))?;
    let t = &v.task;
    let mut human = format!(
        "task {id}\n  status        {}\n  deal          {}  index {}\n  deadlines     contribution {}  reveal {}  final {}\n  contributors  {}\n  result digest {}",
        t.status,
        t.dealid,
        t.idx,
        t.contribution_deadline,
        t.reveal_deadline,
        t.final_deadline,
        t.contributors.len(),
        t.result_digest
    );
    let mut out = serde_json::to_value(&v)?;
    let deal = rt.block_on(l.deal(&t.dealid))?.deal;
    if veil_core::tag::has_tee(&deal.tag) {
        // Only the `sim` platform exists in this build.
        human.push_str(&format!("\n  enclave       sim: {}", veil_tee::SIM_NOTICE));
        out["enclave"] = json!({ "platform": "sim", "notice": veil_tee::SIM_NOTICE });
    }
    if let Some(url) = scheduler {
        let r = rt.block_on(replicates(url.trim_end_matches('/'), &id))?;
        for x in &r.replicates {
            human.push_str(&format!("\n  replicate     {}  {} (attempt {})", x.worker, x.status, x.attempts));
            if let Some(c) = &x.cause {
                human.push_str(&format!(": {c}"));
            }
        }
        out["replicates"] = serde_json::to_value(&r.replicates)?;
    }
    show(json, &out, &human)
}

/// The scheduler's view of a running task.
async fn replicates(scheduler: &str, id: &B256) -> Result<veil_pool::api::TaskReplicates> {
    let r = reqwest::get(format!("{scheduler}/tasks/{id}"))
        .await
        .with_context(|| format!("cannot reach the scheduler at {scheduler}"))?;
    if !r.status().is_success() {
        let body: Value = r.json().await.unwrap_or_default();
        bail!("scheduler: {}", body["error"].as_str().unwrap_or("no answer"));
    }
    Ok(r.json().await?)
}

#[derive(Args)]
pub struct OrderbookArgs {
    /// app, dataset, workerpool or request.
    pub kind: OrderKind,
    #[arg(long)]
    pub app: Option<Address>,
    #[arg(long)]
    pub dataset: Option<Address>,
    #[arg(long)]
    pub workerpool: Option<Address>,
    #[arg(long)]
    pub requester: Option<Address>,
    /// Every bit of this tag must be in the order's tag (hex or names like tee,scone).
    #[arg(long, value_parser = veil_core::tag::parse)]
    pub min_tag: Option<B256>,
    /// The order's tag must be within this tag.
    #[arg(long, value_parser = veil_core::tag::parse)]
    pub max_tag: Option<B256>,
    #[arg(long)]
    pub category: Option<u64>,
    #[arg(long)]
    pub min_trust: Option<u64>,
    #[arg(long)]
    pub max_trust: Option<u64>,
    #[arg(long)]
    pub min_volume: Option<u64>,
    /// Restriction filters match only orders restricted to exactly that party.
    #[arg(long)]
    pub strict: bool,
    #[arg(long)]
    pub page: Option<u64>,
    #[arg(long)]
    pub page_size: Option<u64>,
}

pub fn orderbook(a: OrderbookArgs, conn: &Conn, json: bool) -> Result<()> {
    let q = BookQuery {
        app: a.app,
        dataset: a.dataset,
        workerpool: a.workerpool,
        requester: a.requester,
        min_tag: a.min_tag,
        max_tag: a.max_tag,
        category: a.category,
        min_trust: a.min_trust,
        max_trust: a.max_trust,
        min_volume: a.min_volume,
        strict: a.strict,
        page: a.page,
        page_size: a.page_size,
        ..Default::default()
    };
    let page = runtime()?.block_on(conn.client().orderbook(a.kind, &q))?;
    let mut human = format!("{} {} orders (page {}, {} matching)", page.orders.len(), a.kind, page.page, page.count);
    for e in &page.orders {
        human.push_str(&format!(
            "\n  {}  price {}  remaining {}  tag {}  signer {}",
            e.order_hash,
            e.order.price(),
            e.remaining,
            e.order.tag(),
            e.signer.to_checksum(None)
        ));
    }
    if let Some(n) = page.next_page {
        human.push_str(&format!("\n  more: --page {n}"));
    }
    show(json, &page, &human)
}

#[derive(Args)]
pub struct TaskDebugArgs {
    pub id: B256,
    /// The workerpool scheduler's URL (it keeps the app's output).
    #[arg(long, env = "VEIL_SCHEDULER", default_value = "http://127.0.0.1:8648")]
    pub scheduler: String,
    /// Sign as the task's requester.
    #[command(flatten)]
    pub signer: SignerArgs,
}

/// `veil task debug TASK`: the ledger's view, and the app's stdout and stderr of each run (the
/// scheduler gives them to the deal's requester only, on a fresh signed request).
pub fn task_debug(a: TaskDebugArgs, conn: &Conn, json: bool) -> Result<()> {
    let key = a.signer.key()?;
    let rt = runtime()?;
    let l = rt.block_on(ledger(conn))?;
    let task = rt.block_on(l.task(&a.id))?.task;
    let pool = rt.block_on(l.deal(&task.dealid))?.deal.workerpool.pointer;
    let scheduler = a.scheduler.trim_end_matches('/');
    let timestamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let signature = key.sign_message_hash(&veil_pool::api::logs_message(&pool, &a.id, timestamp));
    let url = format!("{scheduler}/tasks/{}/logs?timestamp={timestamp}&signature={}", a.id, signature.to_hex());
    let logs: veil_pool::api::TaskLogs = rt.block_on(async {
        let r = reqwest::get(&url)
            .await
            .with_context(|| format!("cannot reach the scheduler at {scheduler} (--scheduler URL)"))?;
        let status = r.status();
        let body: Value = r.json().await.unwrap_or_default();
        if !status.is_success() {
            bail!("scheduler: {}", body["error"].as_str().unwrap_or("no answer"));
        }
        Ok(serde_json::from_value(body)?)
    })?;
    let mut human = format!("task {}  {}  (deal {}, index {})", a.id, task.status, task.dealid, task.idx);
    if logs.runs.is_empty() {
        human.push_str("\n  no app output yet: no worker has run it (or the scheduler restarted before keeping it)");
    }
    for r in &logs.runs {
        human.push_str(&format!("\n--- worker {} ---", r.worker));
        for (name, text) in [("stdout", &r.logs.stdout), ("stderr", &r.logs.stderr)] {
            let text = if text.is_empty() { "(empty)" } else { text.trim_end() };
            human.push_str(&format!("\n[{name}]\n{text}"));
        }
        if r.logs.truncated {
            human.push_str("\n(only the last 64 KiB of each stream are kept)");
        }
    }
    let v = json!({ "taskid": a.id, "status": task.status, "dealid": task.dealid, "runs": logs.runs });
    show(json, &v, &human)
}
