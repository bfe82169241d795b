//! `veil node` (run a ledger node) and `veil node verify`.

use crate::cli_io::{emit, read_text, veil_home};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use veil_node::dev::{DEV_ACCOUNTS, DEV_FUNDS_RLC, dev_genesis, dev_key};
use veil_node::{NodeConfig, serve, verify_chain};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct NodeArgs {
    #[command(subcommand)]
    cmd: Option<NodeSub>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum NodeSub {
    /// Re-execute the whole chain from genesis and check every block hash and state digest.
    Verify {
        /// The node's data folder (default: $VEIL_HOME/node).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Where the ledger lives (default: $VEIL_HOME/node).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address to serve the API on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8645")]
    listen: SocketAddr,
    /// Development ledger: deterministic pre-funded accounts, short categories.
    #[arg(long)]
    dev: bool,
    /// Genesis file (JSON) for a new, non-dev ledger.
    #[arg(long, conflicts_with = "dev")]
    genesis: Option<PathBuf>,
    /// Gather transactions this long before making a block (0: a block as soon as any wait).
    #[arg(long, default_value_t = 0)]
    block_time_ms: u64,
    /// Write a state checkpoint every this many blocks.
    #[arg(long, default_value_t = 1000)]
    checkpoint_every: u64,
    /// Serve only the ledger: no embedded blob storage and SMS.
    #[arg(long)]
    no_services: bool,
    /// Largest blob the embedded storage accepts, in bytes.
    #[arg(long, default_value_t = 16 << 30)]
    max_blob_size: u64,
}

fn data_dir(d: Option<PathBuf>) -> PathBuf {
    d.unwrap_or_else(|| veil_home().join("node"))
}

pub fn run(a: NodeArgs, json: bool) -> Result<()> {
    match a.cmd {
        Some(NodeSub::Verify { data_dir: d }) => {
            let dir = data_dir(d);
            let r = verify_chain(&dir).with_context(|| format!("verification of {} failed", dir.display()))?;
            emit(
                json,
                &json!({ "ok": true, "blocks": r.head, "stateDigest": r.state_digest }),
                &format!(
                    "chain verified: {} blocks re-executed, every hash and state digest matches\n  state digest {}",
                    r.head, r.state_digest
                ),
            );
            Ok(())
        }
        None => run_node(a.run, json),
    }
}

fn run_node(a: RunArgs, json: bool) -> Result<()> {
    if crate::chain_cmd::rpc_flag().is_some() {
        return run_chain_node(a, json);
    }
    let genesis = match (&a.genesis, a.dev) {
        (Some(p), _) => Some(
            serde_json::from_str(&read_text(p, "genesis file")?)
                .with_context(|| format!("genesis file {} is not valid", p.display()))?,
        ),
        (None, true) => Some(dev_genesis()),
        (None, false) => None,
    };
    let config = NodeConfig {
        data_dir: data_dir(a.data_dir),
        listen: a.listen,
        genesis,
        dev: a.dev,
        block_time: Duration::from_millis(a.block_time_ms),
        checkpoint_every: a.checkpoint_every,
        embedded_services: !a.no_services,
        max_blob_size: a.max_blob_size,
    };
    crate::logging(json);
    let rt = tokio::runtime::Runtime::new()?;
    let dev = a.dev;
    let dir = config.data_dir.clone();
    rt.block_on(serve(config, move |addr, report| {
        let url = format!("http://{addr}");
        let accounts: Vec<_> = if dev {
            (0..DEV_ACCOUNTS).map(|i| { let k = dev_key(i); json!({ "address": k.address().to_checksum(None), "privateKey": format!("0x{}", hex::encode(k.secret_bytes())) }) }).collect()
        } else {
            vec![]
        };
        if json {
            println!("{}", json!({ "ready": true, "url": url, "dataDir": dir, "head": report.head, "replayedBlocks": report.replayed_blocks, "stateDigest": report.state_digest, "devAccounts": accounts }));
        } else {
            println!("veil node listening on {url}  (data {}, head block {}, {} blocks replayed)", dir.display(), report.head, report.replayed_blocks);
            println!("  API description  {url}/openapi.json");
            println!("  blob storage     {url}/blobs  ·  SMS {url}/sms");
            println!("  event stream     {url}/events?from=1");
            if dev {
                println!("\nDevelopment accounts ({DEV_FUNDS_RLC} RLC each; public keys, never hold value with them):");
                for (i, acc) in accounts.iter().enumerate() {
                    println!("  ({i}) {}  {}", acc["address"].as_str().unwrap_or(""), acc["privateKey"].as_str().unwrap_or(""));
                }
                println!("\nUse them with --dev-account N (or VEIL_DEV_ACCOUNT=N).");
            }
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }))?;
    Ok(())
}

/// `veil node --rpc URL --hub ADDRESS`: the off-chain services (orderbook, storage, SMS) of an EVM
/// chain running PoCo, without a ledger of its own.
fn run_chain_node(a: RunArgs, json: bool) -> Result<()> {
    if a.genesis.is_some() || a.no_services {
        anyhow::bail!("--genesis and --no-services are for a node with its own ledger, not for --rpc");
    }
    let config = NodeConfig {
        data_dir: a.data_dir.unwrap_or_else(|| veil_home().join("chain-node")),
        listen: a.listen,
        genesis: None,
        dev: a.dev,
        block_time: Duration::ZERO,
        checkpoint_every: 0,
        embedded_services: true,
        max_blob_size: a.max_blob_size,
    };
    crate::logging(json);
    let rt = tokio::runtime::Runtime::new()?;
    let conn = crate::chain_cmd::Conn { node: String::new() };
    rt.block_on(async {
        let ledger = crate::chain_cmd::service_ledger(&conn).await?;
        let described = ledger.describe();
        let dir = config.data_dir.clone();
        let dev = config.dev;
        veil_node::chain_node::serve(config, ledger, move |addr, followed| {
            let url = format!("http://{addr}");
            if json {
                println!("{}", json!({ "ready": true, "url": url, "dataDir": dir, "ledger": described, "followedBlock": followed, "dev": dev }));
            } else {
                println!("veil node listening on {url}: off-chain services of {described}  (data {}, orderbook follows from block {followed})", dir.display());
                println!("  orderbook        {url}/orderbook/{{app,dataset,workerpool,request}}");
                println!("  blob storage     {url}/blobs  ·  SMS {url}/sms{}", if dev { " (dev mode: sim enclaves accepted)" } else { "" });
                println!("  clients given --node {url} find the chain's RPC and hub at {url}/chain");
            }
            use std::io::Write;
            let _ = std::io::stdout().flush();
        })
        .await?;
        Ok(())
    })
}
