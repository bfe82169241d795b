//! `veil bench ledger`: signed matchOrders through the HTTP API of a real node process with
//! persistence on, from concurrent clients; then the node's memory holding many deals.

use crate::cli_io::emit;
use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Instant;
use veil_core::*;
use veil_node::dev::dev_key;
use veil_sdk::Client;

pub(crate) struct NodeProc {
    pub(crate) child: Child,
    pub(crate) url: String,
    _dir: tempfile_dir::TempDir,
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary folder removed on drop (kept tiny to avoid a dependency in the binary).
mod tempfile_dir {
    pub struct TempDir(pub std::path::PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub(crate) fn start_node() -> Result<NodeProc> {
    let dir =
        std::env::temp_dir().join(format!("veil-bench-{}-{}", std::process::id(), Instant::now().elapsed().as_nanos()));
    std::fs::create_dir_all(&dir)?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["node", "--dev", "--json", "--listen", "127.0.0.1:0", "--checkpoint-every", "0", "--data-dir"])
        .arg(&dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start the node")?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("node stdout")?).read_line(&mut line)?;
    let v: serde_json::Value = serde_json::from_str(&line).with_context(|| format!("node did not start: {line}"))?;
    let url = v["url"].as_str().context("no url")?.to_string();
    Ok(NodeProc { child, url, _dir: tempfile_dir::TempDir(dir) })
}

pub(crate) fn rss_mb(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Registers assets, funds `lanes` requesters and pre-signs `per_lane` matchOrders for each.
async fn prepare(c: &Client, lanes: usize, per_lane: usize) -> Result<Vec<Vec<SignedTx>>> {
    let (dev, owner, pool_owner, funder) = (dev_key(1), dev_key(2), dev_key(3), dev_key(4));
    for k in [&dev, &owner, &pool_owner, &funder] {
        c.send(k, Call::Deposit { amount: Nrlc::rlc(100_000) }).await?;
    }
    let reg = |r: veil_core::block::Receipt| crate::local::created(&r.events);
    let app = reg(c
        .send(
            &dev,
            Call::CreateApp {
                name: "bench".into(),
                app_type: "VEIL".into(),
                multiaddr: "m".into(),
                checksum: B256::ZERO,
                mrenclave: String::new(),
            },
        )
        .await?)?;
    let dataset = reg(c
        .send(&owner, Call::CreateDataset { name: "bench".into(), multiaddr: "m".into(), checksum: B256::ZERO })
        .await?)?;
    let pool = reg(c.send(&pool_owner, Call::CreateWorkerpool { description: "bench".into() }).await?)?;
    let info = c.chain().await?;
    let market = crate::bench::BenchMarket::new([&dev, &owner, &pool_owner], (app, dataset, pool), &info.domain);
    let mut out = vec![];
    for lane in 0..lanes {
        let req = PrivateKey::from_seed(&format!("veil bench requester {lane}"));
        c.send(&funder, Call::Transfer { to: req.address(), amount: Nrlc::rlc(1000) }).await?;
        let nonce0 = c.account(&req.address()).await?.account.nonce;
        out.push((0..per_lane as u64).map(|i| market.match_tx(&req, nonce0 + i, i)).collect());
    }
    Ok(out)
}

/// Submits every lane's transactions in order, lanes in parallel; returns per-transaction latencies.
async fn submit_all(c: &Client, lanes: Vec<Vec<SignedTx>>) -> Result<Vec<f64>> {
    let mut tasks = vec![];
    for txs in lanes {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(txs.len());
            for stx in txs {
                let t = Instant::now();
                c.submit(&stx).await.map_err(|e| anyhow!("transaction refused: {e}"))?;
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut all = vec![];
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(all)
}

pub fn run(n: usize, runs: usize, lanes: usize, memory_deals: usize, json: bool) -> Result<()> {
    if n == 0 || runs == 0 || lanes == 0 {
        bail!("--n, --runs and --concurrency must be at least 1");
    }
    if cfg!(debug_assertions) && !json {
        eprintln!("warning: debug build; run `cargo run --release -p veil -- bench ledger` for real numbers");
    }
    let node = start_node()?;
    let pid = node.child.id();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let c = Client::new(&node.url);
    let per_lane = n.div_ceil(lanes);
    let idle_mb = rss_mb(pid);
    if !json {
        eprintln!(
            "node pid {pid} at {}; signing {} matchOrders in {lanes} lanes × {runs} runs…",
            node.url,
            per_lane * lanes
        );
    }
    let mut rates = vec![];
    let mut lat = vec![];
    for run in 0..runs {
        let lanes_txs = rt.block_on(prepare(&c, lanes, per_lane))?;
        let total: usize = lanes_txs.iter().map(Vec::len).sum();
        let t = Instant::now();
        let l = rt.block_on(submit_all(&c, lanes_txs))?;
        let rate = total as f64 / t.elapsed().as_secs_f64();
        if !json {
            eprintln!("  run {}: {rate:.0} matchOrders/s over HTTP with persistence", run + 1);
        }
        rates.push(rate);
        lat.extend(l);
    }
    let (rate_s, lat_s) = (crate::bench::Stats::of(&rates), crate::bench::Stats::of(&lat));
    let deals_so_far = per_lane * lanes * runs;
    let mut loaded = None;
    if memory_deals > deals_so_far {
        let more = memory_deals - deals_so_far;
        if !json {
            eprintln!("filling the node up to {memory_deals} deals…");
        }
        let lanes_txs = rt.block_on(prepare(&c, lanes, more.div_ceil(lanes)))?;
        rt.block_on(submit_all(&c, lanes_txs))?;
        loaded = rss_mb(pid).map(|m| (memory_deals, m));
    } else if memory_deals > 0 {
        loaded = rss_mb(pid).map(|m| (deals_so_far, m));
    }
    let v = json!({
        "scenario": "ledger",
        "transactions": per_lane * lanes,
        "runs": runs,
        "concurrency": lanes,
        "perSecond": rate_s.json(),
        "submitToReceiptMs": lat_s.json(),
        "nodeRssMb": { "idle": idle_mb, "loaded": loaded.map(|(d, m)| json!({ "deals": d, "mb": m })) },
        "targets": { "perSecond": 2000, "p50Ms": 5, "rssMbAt100kDeals": 200 },
    });
    let mut human = format!(
        "ledger: signed matchOrders through HTTP, persistence on, {lanes} concurrent clients, {runs} runs of {}\n  throughput        {}\n  submit → receipt  {}",
        per_lane * lanes,
        rate_s.human("/s", 0),
        lat_s.human("ms", 2),
    );
    if let Some(m) = idle_mb {
        human.push_str(&format!("\n  node RSS  idle {m:.0} MB"));
    }
    if let Some((d, m)) = loaded {
        human.push_str(&format!(", {m:.0} MB holding {d} deals"));
    }
    human.push_str("\n  targets  ≥ 2000/s, p50 < 5 ms, < 200 MB at 100,000 deals");
    emit(json, &v, &human);
    Ok(())
}
