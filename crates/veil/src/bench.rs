//! `veil bench`: performance scenarios. Build with `--release` for meaningful numbers.

use crate::cli_io::emit;
use crate::local::{created, send};
use anyhow::{Result, bail};
use clap::Subcommand;
use serde_json::json;
use std::time::Instant;
use veil_core::state::{Genesis, default_categories};
use veil_core::*;

#[derive(Subcommand)]
pub enum BenchCmd {
    /// Verify real SGX and TDX DCAP quotes (signatures, Intel's chain, collateral, TCB policy).
    Quote {
        #[arg(long, default_value_t = 1000)]
        runs: usize,
    },
    /// Fully signed matchOrders (tx signature + four order signatures) applied in-process, one core.
    Core {
        /// Transactions per run.
        #[arg(long, default_value_t = 5000)]
        n: usize,
        /// Number of runs.
        #[arg(long, default_value_t = 7)]
        runs: usize,
    },
    /// Signed matchOrders through the HTTP API of a real node process (persistence on), from
    /// concurrent clients; then the node's memory holding many deals.
    Ledger {
        /// Transactions per run.
        #[arg(long, default_value_t = 10000)]
        n: usize,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Concurrent clients (each its own requester).
        #[arg(long, default_value_t = 12)]
        concurrency: usize,
        /// Fill the node up to this many deals and report its memory (0: skip).
        #[arg(long, default_value_t = 100_000)]
        memory_deals: usize,
        /// `anvil`: matchOrders through the ledger trait on iExec's PoCo on anvil, side by side with
        /// the embedded ledger in the same run, and PoCo's gas per call.
        #[arg(long)]
        chain: Option<BenchChain>,
        /// With --chain: matchOrders sent per backend.
        #[arg(long, default_value_t = 400)]
        chain_n: usize,
    },
    /// Trivial app, matchOrders → finalized, on a local network of real processes (process, wasm).
    Latency {
        #[arg(long, default_value_t = 200)]
        runs: usize,
        /// `anvil`: the same runs on iExec's PoCo on anvil too, side by side, with gas per task.
        #[arg(long)]
        chain: Option<BenchChain>,
    },
    /// One deal of many trivial tasks (WASM, or a static binary image run by runc), with 1 and 2
    /// workers (tasks per second).
    Bag {
        #[arg(long, default_value_t = 1000)]
        volume: u64,
        /// Tasks each worker runs at once.
        #[arg(long, default_value_t = 8)]
        slots: u32,
        /// Deals measured per worker count (median and spread reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// `anvil`: the same deals on iExec's PoCo on anvil too, side by side, with gas per task.
        #[arg(long)]
        chain: Option<BenchChain>,
        /// The trivial app: WebAssembly, or an image (a static binary FROM scratch, run by runc).
        #[arg(long, value_enum, default_value = "wasm")]
        runtime: BagRuntime,
    },
    /// Pulling (from Debian's docker-registry on loopback) and unpacking an image of --size-mb
    /// of incompressible files, from an empty cache.
    Image {
        #[arg(long, default_value_t = 60)]
        size_mb: u64,
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Resident memory of node, scheduler and workers: idle, and at their peak under a bag of tasks.
    Memory {
        /// Tasks in the loading deal.
        #[arg(long, default_value_t = 1000)]
        volume: u64,
        /// Fresh networks measured.
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// `veil data protect` of a large file against `openssl enc` + `sha256sum`, side by side.
    Protect {
        /// File size in MiB.
        #[arg(long, default_value_t = 1024)]
        size_mb: u64,
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
}

/// The app of `veil bench bag`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BagRuntime {
    Wasm,
    Image,
}

/// A chain to compare the embedded ledger with.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum BenchChain {
    Anvil,
}

/// The embedded ledger, and the chain named with `--chain` beside it.
fn ledgers(chain: Option<BenchChain>) -> Vec<crate::dev_cmd::ChainKind> {
    use crate::dev_cmd::ChainKind;
    match chain {
        Some(BenchChain::Anvil) => vec![ChainKind::Embedded, ChainKind::Anvil],
        None => vec![ChainKind::Embedded],
    }
}

pub fn run(cmd: BenchCmd, json: bool) -> Result<()> {
    match cmd {
        BenchCmd::Core { n, runs } => core(n, runs, json),
        BenchCmd::Quote { runs } => crate::bench_quote::run(runs.max(1), json),
        BenchCmd::Protect { size_mb, runs } => crate::bench_protect::bench(size_mb, runs, json),
        BenchCmd::Memory { volume, runs } => crate::bench_exec::memory(volume, runs, json),
        BenchCmd::Latency { runs, chain } => crate::bench_exec::latency(runs, &ledgers(chain), json),
        BenchCmd::Bag { volume, slots, runs, chain, runtime } => {
            crate::bench_exec::bag(volume, slots, runs, &[1, 2], &ledgers(chain), runtime, json)
        }
        BenchCmd::Image { size_mb, runs } => crate::bench_image::run(size_mb, runs, json),
        BenchCmd::Ledger { chain: Some(BenchChain::Anvil), chain_n, concurrency, runs, .. } => {
            crate::bench_chain::run(chain_n, concurrency, runs, json)
        }
        BenchCmd::Ledger { n, runs, concurrency, memory_deals, chain: None, .. } => {
            crate::bench_ledger::run(n, runs, concurrency, memory_deals, json)
        }
    }
}

struct Fixture {
    state: State,
    txs: Vec<SignedTx>,
}

/// A ledger with registered assets and `n` distinct signed matchOrders transactions.
fn fixture(n: usize) -> Fixture {
    let k = PrivateKey::from_seed;
    let (dev, owner, pool_owner, requester) = (k("bench app"), k("bench data"), k("bench pool"), k("bench requester"));
    let domain = eip712::veil_dev_domain();
    let genesis = Genesis {
        domain,
        admin: pool_owner.address(),
        categories: default_categories(),
        allocations: [&dev, &owner, &pool_owner, &requester]
            .iter()
            .map(|k| (k.address(), Nrlc::rlc(1_000_000_000)))
            .collect(),
    };
    let mut state = State::genesis(&genesis);
    let (app, dataset, pool) = register(&mut state, [&dev, &owner, &pool_owner, &requester]).expect("bench setup");
    let market = BenchMarket::new([&dev, &owner, &pool_owner], (app, dataset, pool), &domain);
    let nonce0 = state.account(&requester.address()).nonce;
    let txs = (0..n).map(|i| market.match_tx(&requester, nonce0 + i as u64, i as u64)).collect();
    Fixture { state, txs }
}

/// Signed app, dataset and workerpool orders of unbounded volume, and matchOrders built on them.
pub(crate) struct BenchMarket {
    domain: Domain,
    app: Signed<AppOrder>,
    dataset: Signed<DatasetOrder>,
    pool: Signed<WorkerpoolOrder>,
}

impl BenchMarket {
    /// `keys`: the app, dataset and workerpool owners; `assets`: app, dataset, workerpool.
    pub(crate) fn new(keys: [&PrivateKey; 3], assets: (Address, Address, Address), domain: &Domain) -> BenchMarket {
        let (big, z) = (U256::from(u64::MAX), Address::ZERO);
        let (app, dataset, workerpool) = assets;
        let a = AppOrder {
            app,
            appprice: U256::from(1),
            volume: big,
            tag: B256::ZERO,
            datasetrestrict: z,
            workerpoolrestrict: z,
            requesterrestrict: z,
            salt: B256::ZERO,
        };
        let d = DatasetOrder {
            dataset,
            datasetprice: U256::from(1),
            volume: big,
            tag: B256::ZERO,
            apprestrict: z,
            workerpoolrestrict: z,
            requesterrestrict: z,
            salt: B256::ZERO,
        };
        let w = WorkerpoolOrder {
            workerpool,
            workerpoolprice: U256::from(10),
            volume: big,
            tag: B256::ZERO,
            category: U256::ZERO,
            trust: U256::ZERO,
            apprestrict: z,
            datasetrestrict: z,
            requesterrestrict: z,
            salt: B256::ZERO,
        };
        BenchMarket {
            domain: *domain,
            app: Signed::new(a, keys[0], domain),
            dataset: Signed::new(d, keys[1], domain),
            pool: Signed::new(w, keys[2], domain),
        }
    }

    /// Puts `tag` on the app, dataset and workerpool orders and signs them again.
    pub(crate) fn set_tag(&mut self, tag: B256, keys: &[&PrivateKey; 3]) {
        self.app.order.tag = tag;
        self.dataset.order.tag = tag;
        self.pool.order.tag = tag;
        self.app = Signed::new(self.app.order.clone(), keys[0], &self.domain);
        self.dataset = Signed::new(self.dataset.order.clone(), keys[1], &self.domain);
        self.pool = Signed::new(self.pool.order.clone(), keys[2], &self.domain);
    }

    /// A matchOrders from `requester` with its own request order (salt `i`), at `nonce`.
    pub(crate) fn match_tx(&self, requester: &PrivateKey, nonce: u64, i: u64) -> SignedTx {
        let call = self.match_call(requester, i);
        Tx { chain_id: self.domain.chain_id, from: requester.address(), nonce, call }.sign(requester)
    }

    /// The matchOrders call of `requester`'s own request order (salt `i`).
    pub(crate) fn match_call(&self, requester: &PrivateKey, i: u64) -> Call {
        let r = RequestOrder {
            app: self.app.order.app,
            appmaxprice: U256::from(1),
            dataset: self.dataset.order.dataset,
            datasetmaxprice: U256::from(1),
            workerpool: Address::ZERO,
            workerpoolmaxprice: U256::from(10),
            requester: requester.address(),
            volume: U256::from(1),
            tag: B256::ZERO,
            category: U256::ZERO,
            trust: U256::ZERO,
            beneficiary: requester.address(),
            callback: Address::ZERO,
            params: "bench".into(),
            salt: B256::from(U256::from(i)),
        };
        Call::MatchOrders {
            app_order: self.app.clone(),
            dataset_order: Some(self.dataset.clone()),
            workerpool_order: self.pool.clone(),
            request_order: Signed::new(r, requester, &self.domain),
        }
    }
}

/// Median time of one secp256k1 public-key recovery, the floor under every signature check.
fn time_recovery() -> f64 {
    let key = PrivateKey::from_seed("recovery bench");
    let mut samples = vec![];
    for round in 0..5u64 {
        let hashes: Vec<B256> = (0..400u64).map(|i| keccak256((round * 1000 + i).to_be_bytes())).collect();
        let sigs: Vec<Signature> = hashes.iter().map(|h| key.sign_hash(h)).collect();
        let t = Instant::now();
        for (h, s) in hashes.iter().zip(&sigs) {
            std::hint::black_box(crypto::recover(h, s).ok());
        }
        samples.push(t.elapsed().as_secs_f64() * 1e6 / hashes.len() as f64);
    }
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Deposits for everyone and registers an app, a dataset and a workerpool.
fn register(state: &mut State, keys: [&PrivateKey; 4]) -> Result<(Address, Address, Address)> {
    for key in keys {
        send(state, key, Call::Deposit { amount: Nrlc::rlc(500_000_000) }, 1)?;
    }
    let app_call = Call::CreateApp {
        name: "b".into(),
        app_type: "VEIL".into(),
        multiaddr: "m".into(),
        checksum: B256::ZERO,
        mrenclave: String::new(),
    };
    let app = created(&send(state, keys[0], app_call, 1)?)?;
    let ds_call = Call::CreateDataset { name: "d".into(), multiaddr: "m".into(), checksum: B256::ZERO };
    let dataset = created(&send(state, keys[1], ds_call, 1)?)?;
    let pool = created(&send(state, keys[2], Call::CreateWorkerpool { description: "p".into() }, 1)?)?;
    Ok((app, dataset, pool))
}

/// Median, p99 and spread of repeated measurements: what every scenario reports.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub(crate) struct Stats {
    pub median: f64,
    pub p99: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Stats {
    pub fn of(values: &[f64]) -> Stats {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        Stats {
            median: percentile(&v, 0.5),
            p99: percentile(&v, 0.99),
            min: v.first().copied().unwrap_or(0.0),
            max: v.last().copied().unwrap_or(0.0),
            n: v.len(),
        }
    }

    /// `median 12.3 ms  p99 15.0  (min 11.0, max 16.2, n 200)` with `decimals` digits.
    pub fn human(&self, unit: &str, decimals: usize) -> String {
        let f = |x: f64| format!("{x:.decimals$}");
        format!(
            "median {} {unit}  p99 {}  (min {}, max {}, n {})",
            f(self.median),
            f(self.p99),
            f(self.min),
            f(self.max),
            self.n
        )
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn core(n: usize, runs: usize, json: bool) -> Result<()> {
    if n == 0 || runs == 0 {
        bail!("--n and --runs must be at least 1");
    }
    if cfg!(debug_assertions) && !json {
        eprintln!("warning: this is a debug build; run `cargo run --release -p veil -- bench core` for real numbers");
    }
    if !json {
        eprintln!("preparing {n} signed matchOrders transactions…");
    }
    let recover_us = time_recovery();
    if !json {
        eprintln!("one secp256k1 recovery on this machine: {recover_us:.1} µs");
    }
    let fx = fixture(n);
    let verified: Vec<VerifiedTx> = fx
        .txs
        .iter()
        .map(|t| verify(t.clone(), &fx.state.domain))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // The sequencer's share: apply_verified (signatures already recovered at admission).
    let mut rates = vec![];
    let mut lat_us = vec![];
    // Everything on one core: verify (the transaction's and the four orders' signatures) + apply.
    let mut full_rates = vec![];
    // Four order recoveries + apply: exactly what PoCo's matchOrders does (no transaction envelope).
    let mut poco_rates = vec![];
    for run in 0..runs {
        let mut state = fx.state.clone();
        let start = Instant::now();
        for vtx in &verified {
            let t = Instant::now();
            apply_verified(&mut state, vtx, 2).map_err(|e| anyhow::anyhow!("bench transaction refused: {e}"))?;
            lat_us.push(t.elapsed().as_secs_f64() * 1e6);
        }
        let rate = n as f64 / start.elapsed().as_secs_f64();
        let mut state = fx.state.clone();
        let start = Instant::now();
        for stx in &fx.txs {
            apply(&mut state, stx, 2).map_err(|e| anyhow::anyhow!("bench transaction refused: {e}"))?;
        }
        let full = n as f64 / start.elapsed().as_secs_f64();
        // PoCo's own matchOrders work: the four order signatures (hashes + recoveries), then apply.
        let domain = fx.state.domain;
        let start = Instant::now();
        for stx in &fx.txs {
            if let Call::MatchOrders { app_order, dataset_order, workerpool_order, request_order } = &stx.tx.call {
                let recover = &crypto::recover;
                let p = market::MatchProofs::of(
                    &domain,
                    app_order,
                    dataset_order.as_ref(),
                    workerpool_order,
                    request_order,
                    recover,
                );
                std::hint::black_box(p);
            }
        }
        let orders_secs = start.elapsed().as_secs_f64();
        let poco = n as f64 / (orders_secs + n as f64 / rate);
        if !json {
            eprintln!(
                "  run {}: {full:.0}/s verified and applied, {poco:.0}/s PoCo matchOrders work, {rate:.0}/s applied once verified",
                run + 1
            );
        }
        rates.push(rate);
        full_rates.push(full);
        poco_rates.push(poco);
    }
    let (full, poco, applied, lat) =
        (Stats::of(&full_rates), Stats::of(&poco_rates), Stats::of(&rates), Stats::of(&lat_us));
    let v = json!({
        "scenario": "core",
        "transactions": n,
        "runs": runs,
        "verifyAndApplyPerSecond": full.json(),
        "pocoMatchOrdersPerSecond": poco.json(),
        "applyVerifiedPerSecond": applied.json(),
        "applyVerifiedLatencyMicros": lat.json(),
        "recoveryMicros": recover_us,
        "target": 5000,
    });
    let human = format!(
        "core: signed matchOrders, one core, {runs} runs of {n} (per-second figures over runs)\n  \
         verify + apply (tx + 4 order signatures recovered, deal made)  {}\n  \
         PoCo's matchOrders work (4 order recoveries + apply)          {}\n  \
         apply once verified (the sequencer's share)                   {}\n  \
         its latency per transaction                                   {}\n  \
         one secp256k1 recovery                                        {recover_us:.1} µs\n  target ≥ 5000/s",
        full.human("/s", 0),
        poco.human("/s", 0),
        applied.human("/s", 0),
        lat.human("µs", 1),
    );
    emit(json, &v, &human);
    Ok(())
}
