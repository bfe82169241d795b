//! `veil bench latency` and `veil bench bag`: trivial apps on a local network of real processes
//! (node, scheduler, workers), from matchOrders to the task's finalize event; on Veil's embedded
//! ledger and, with `--chain anvil`, on iExec's PoCo on anvil in the same run (then with the gas
//! each task cost, from the blocks it took).

use crate::bench::Stats;
use crate::cli_io::emit;
use crate::dev_cmd::ChainKind;
use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use veil_core::book::BookQuery;
use veil_core::events::Event;
use veil_core::orders::OrderKind;
use veil_core::tx::AnyOrder;
use veil_core::*;
use veil_sdk::{Client, Ledger};

const PY: &str = "import os, json\no = os.environ['IEXEC_OUT']\nopen(o + '/r.txt', 'w').write('ok')\njson.dump({'deterministic-output-path': o + '/r.txt'}, open(o + '/computed.json', 'w'))\n";

struct Procs(Vec<Child>, PathBuf);

impl Drop for Procs {
    fn drop(&mut self) {
        // Newest first, politely: anvil (the first started) writes its state and exits last.
        for c in self.0.iter_mut().rev() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && !matches!(c.try_wait(), Ok(Some(_))) {
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

/// Starts `veil ARGS --json` (with `--listen 127.0.0.1:0` when `listen`); its ready line.
fn spawn(procs: &mut Procs, args: &[&str], listen: bool) -> Result<serde_json::Value> {
    let mut c = Command::new(std::env::current_exe()?);
    c.args(args).arg("--json").env("RUST_LOG", "error").stdout(Stdio::piped()).stderr(Stdio::null());
    // VEIL_BENCH_LOGS=DIR keeps each service's warnings (VEIL_BENCH_LOG_LEVEL: another level) in
    // DIR/<n>-<command>.log.
    if let Some(d) = std::env::var_os("VEIL_BENCH_LOGS") {
        let f = std::fs::File::create(Path::new(&d).join(format!("{}-{}.log", procs.0.len(), args[0])))?;
        let level = std::env::var("VEIL_BENCH_LOG_LEVEL").unwrap_or_else(|_| "warn".into());
        c.env("RUST_LOG", level).stderr(f);
    }
    if listen {
        c.args(["--listen", "127.0.0.1:0"]);
    }
    let mut child = c.spawn().context("cannot start a service")?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    procs.0.push(child);
    serde_json::from_str(&line).with_context(|| format!("veil {} did not start: {line}", args.join(" ")))
}

fn url_of(v: &serde_json::Value) -> String {
    v["url"].as_str().unwrap_or_default().to_string()
}

/// A running bench network: the ledger (to send and follow), the node's orderbook and storage,
/// the pool, and (on anvil) PoCo itself for the blocks' gas.
struct Net {
    /// Processes beyond `Procs` whose CPU counts (anvil, a grandchild).
    extra_pids: Vec<u32>,
    chain: ChainKind,
    ledger: Arc<dyn Ledger>,
    book: Client,
    pool: Address,
    evm: Option<veil_evm::EvmLedger>,
}

impl Net {
    fn key(&self, i: usize) -> PrivateKey {
        self.chain.dev_key(i)
    }
}

/// The ledger and the node serving it: `veil node --dev`, or `veil evm anvil` with `veil node
/// --rpc … --hub …` for its off-chain services.
async fn ledger_and_node(
    procs: &mut Procs,
    chain: ChainKind,
) -> Result<(String, Option<veil_evm::EvmLedger>, Vec<u32>)> {
    let d = procs.1.clone();
    let node_dir = d.join("node");
    let node_dir = node_dir.to_str().unwrap_or_default();
    match chain {
        ChainKind::Embedded => {
            let v = spawn(procs, &["node", "--dev", "--checkpoint-every", "0", "--data-dir", node_dir], true)?;
            Ok((url_of(&v), None, vec![]))
        }
        ChainKind::Anvil => {
            let anvil_dir = d.join("anvil");
            let a = spawn(
                procs,
                &["evm", "anvil", "--port", "0", "--data-dir", anvil_dir.to_str().unwrap_or_default()],
                false,
            )?;
            let (rpc, hub) = (a["rpc"].as_str().unwrap_or_default(), a["hub"].as_str().unwrap_or_default());
            let v = spawn(procs, &["node", "--dev", "--data-dir", node_dir, "--rpc", rpc, "--hub", hub], true)?;
            let evm = veil_evm::EvmLedger::connect(rpc, hub.parse().ok()).await?;
            let anvil_pid = a["pid"].as_u64().map(|p| p as u32);
            Ok((url_of(&v), Some(evm), anvil_pid.into_iter().collect()))
        }
    }
}

/// A node, a scheduler for a new pool and `workers` workers.
async fn network(procs: &mut Procs, chain: ChainKind, workers: usize, slots: u32) -> Result<Net> {
    let d = procs.1.clone();
    let (node, evm, extra_pids) = ledger_and_node(procs, chain).await?;
    let ledger: Arc<dyn Ledger> = match &evm {
        Some(e) => Arc::new(e.clone()),
        None => Arc::new(Client::new(&node)),
    };
    for i in [1, 3, 4, 5, 6, 7] {
        ledger.send(&chain.dev_key(i), Call::Deposit { amount: Nrlc::rlc(100_000) }).await?;
    }
    let r = ledger.send(&chain.dev_key(3), Call::CreateWorkerpool { description: "bench".into() }).await?;
    let pool = crate::local::created(&r.events)?;
    let ps = pool.to_string();
    let sched_dir = d.join("sched");
    let sched = spawn(
        procs,
        &[
            "scheduler",
            "--workerpool",
            &ps,
            "--dev-account",
            "3",
            "--node",
            &node,
            "--data-dir",
            sched_dir.to_str().unwrap_or_default(),
        ],
        true,
    )?;
    let sched = url_of(&sched);
    for w in 0..workers {
        let acc = (5 + w).to_string();
        let wd = d.join(format!("worker{w}"));
        spawn(
            procs,
            &[
                "worker",
                "--scheduler",
                &sched,
                "--node",
                &node,
                "--dev-account",
                &acc,
                "--slots",
                &slots.to_string(),
                "--work-dir",
                wd.to_str().unwrap_or_default(),
            ],
            false,
        )?;
    }
    Ok(Net { extra_pids, chain, ledger, book: Client::new(&node), pool, evm })
}

/// Deploys an app bundle made of `files`, publishes its order; returns its address.
async fn app(n: &Net, dir: &Path, manifest: &str, files: &[(&str, &[u8])], tag: B256) -> Result<Address> {
    let c = &n.book;
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("iapp.toml"), manifest)?;
    for (n, b) in files {
        std::fs::write(dir.join(n), b)?;
    }
    let b = veil_exec::Bundle::pack(dir)?;
    let blob = c.upload_bytes(b.bytes.clone()).await?;
    // PoCo's app addresses come from their content: the TEE copy gets a name of its own.
    let name = if tag == B256::ZERO { b.manifest.name.clone() } else { format!("{}-tee", b.manifest.name) };
    let call = Call::CreateApp {
        name,
        app_type: "VEIL".into(),
        multiaddr: blob.url,
        checksum: B256::from(b.checksum()),
        mrenclave: format!("{}", B256::from(b.measurement())),
    };
    let app = crate::local::created(&n.ledger.send(&n.key(1), call).await?.events)?;
    publish_app_order(n, app, tag).await?;
    Ok(app)
}

/// Publishes an order for `app` (volume 1,000,000, free) tagged `tag`.
async fn publish_app_order(n: &Net, app: Address, tag: B256) -> Result<()> {
    let c = &n.book;
    let z = Address::ZERO;
    let o = AnyOrder::App(AppOrder {
        app,
        appprice: U256::ZERO,
        volume: U256::from(1_000_000),
        tag,
        datasetrestrict: z,
        workerpoolrestrict: z,
        requesterrestrict: z,
        salt: veil_sdk::flows::salt(),
    });
    let d = n.ledger.chain().await?.domain;
    c.publish(o.clone(), Some(n.key(1).sign_hash(&o.typed_hash(&d)))).await?;
    Ok(())
}

async fn publish_pool(n: &Net, tag: B256) -> Result<()> {
    let z = Address::ZERO;
    let o = AnyOrder::Workerpool(WorkerpoolOrder {
        workerpool: n.pool,
        workerpoolprice: U256::ZERO,
        volume: U256::from(1_000_000),
        tag,
        category: U256::ZERO,
        trust: U256::from(1),
        apprestrict: z,
        datasetrestrict: z,
        requesterrestrict: z,
        salt: veil_sdk::flows::salt(),
    });
    let d = n.ledger.chain().await?.domain;
    n.book.publish(o.clone(), Some(n.key(3).sign_hash(&o.typed_hash(&d)))).await?;
    Ok(())
}

/// What one deal took: from matchOrders to the last task's finalize, and (on an EVM chain) the
/// gas of every transaction in between (the blocks' gas: anvil mines one transaction per block).
struct DealRun {
    time: Duration,
    gas: Option<u64>,
}

/// Matches a deal of `volume` tasks of `app` and waits for every task's finalize.
async fn deal(n: &Net, app: Address, volume: u64, salt: u64, tag: B256) -> Result<DealRun> {
    let c = &n.book;
    let d = n.ledger.chain().await?;
    let key = n.key(4);
    let aq = BookQuery { app: Some(app), ..Default::default() };
    let a = c.orderbook(OrderKind::App, &aq).await?.orders.into_iter().next().context("no app order")?;
    let w = c
        .orderbook(OrderKind::Workerpool, &BookQuery { min_tag: Some(tag), ..Default::default() })
        .await?
        .orders
        .into_iter()
        .next()
        .context("no pool order")?;
    let (AnyOrder::App(ao), AnyOrder::Workerpool(wo)) = (&a.order, &w.order) else {
        bail!("orderbook answered with other kinds")
    };
    let z = Address::ZERO;
    let r = RequestOrder {
        app,
        appmaxprice: U256::ZERO,
        dataset: z,
        datasetmaxprice: U256::ZERO,
        workerpool: z,
        workerpoolmaxprice: U256::ZERO,
        requester: key.address(),
        volume: U256::from(volume),
        tag,
        category: U256::ZERO,
        trust: U256::ZERO,
        beneficiary: key.address(),
        callback: z,
        params: "{}".into(),
        salt: B256::from(U256::from(salt)),
    };
    let call = Call::MatchOrders {
        app_order: Signed { order: ao.clone(), sign: a.sign },
        dataset_order: None,
        workerpool_order: Signed { order: wo.clone(), sign: w.sign },
        request_order: Signed::new(r, &key, &d.domain),
    };
    let mut events = n.ledger.follow(d.head + 1).await?;
    let t = Instant::now();
    let receipt = n.ledger.send(&key, call).await?;
    let dealid = crate::local::dealid(&receipt.events)?;
    let deal = n.ledger.deal(&dealid).await?.deal;
    let first: u64 = deal.bot_first.to();
    let mut pending: std::collections::HashSet<B256> =
        (first..first + volume).map(|i| veil_core::state::task_id(&dealid, U256::from(i))).collect();
    let mut last = d.head;
    while !pending.is_empty() {
        let b = tokio::time::timeout(Duration::from_secs(300), events.next())
            .await
            .context("tasks did not finish in 300 s")?
            .context("event stream ended")??;
        last = b.block;
        for e in &b.events {
            if let Event::TaskFinalize { taskid, .. } = e {
                pending.remove(taskid);
            }
        }
    }
    let time = t.elapsed();
    let gas = match &n.evm {
        Some(evm) => Some(blocks_gas(evm, d.head + 1, last).await?),
        None => None,
    };
    Ok(DealRun { time, gas })
}

/// Gas used by the blocks `from..=to`.
async fn blocks_gas(evm: &veil_evm::EvmLedger, from: u64, to: u64) -> Result<u64> {
    let mut total = 0;
    for b in from..=to {
        let v = evm.rpc.raw("eth_getBlockByNumber", json!([format!("{b:#x}"), false])).await?;
        let g = v["gasUsed"].as_str().and_then(|h| u64::from_str_radix(h.trim_start_matches("0x"), 16).ok());
        total += g.with_context(|| format!("block {b} has no gasUsed: {v}"))?;
    }
    Ok(total)
}

fn wasm_bytes() -> Result<Vec<u8>> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../veil-wasm/tests/fixtures/hello.wasm");
    std::fs::read(&p).with_context(|| format!("cannot read the trivial WASM app at {}", p.display()))
}

/// Deploys the trivial WASM app (with its order) from `dir/wasm`.
async fn wasm_app(n: &Net, dir: &Path, tag: B256) -> Result<Address> {
    let w = wasm_bytes()?;
    app(
        n,
        &dir.join("wasm"),
        "name = \"wasm\"\nruntime = \"wasm\"\nentrypoint = \"app.wasm\"\n",
        &[("app.wasm", &w)],
        tag,
    )
    .await
}

/// The static C app of the image benchmarks, compiled here (`cc -static`) into `dir`.
fn static_app(dir: &Path) -> Result<Vec<u8>> {
    std::fs::create_dir_all(dir)?;
    let (src, bin) = (dir.join("app.c"), dir.join("app"));
    std::fs::write(&src, include_str!("bench_app.c"))?;
    let st =
        std::process::Command::new("cc").args(["-static", "-O2", "-o"]).arg(&bin).arg(&src).status().context(
            "the image benchmark compiles a static C app: install gcc (Debian: apt-get install gcc libc6-dev)",
        )?;
    if !st.success() {
        bail!("cc -static failed: the image benchmark needs a C compiler with static glibc (libc6-dev)");
    }
    Ok(std::fs::read(&bin)?)
}

/// Deploys the static binary as an image app (`FROM scratch`, stored as an OCI archive in the
/// node's storage, type DOCKER) with its order.
async fn image_app(n: &Net, dir: &Path, tag: B256) -> Result<Address> {
    let bin = static_app(&dir.join("image-src"))?;
    let layout = dir.join(if tag == B256::ZERO { "image" } else { "image-tee" });
    let _ = std::fs::remove_dir_all(&layout);
    let files = [veil_oci::write::NewFile { path: "app", bytes: &bin, mode: 0o755 }];
    let img = veil_oci::write::image_from_files(&layout, &files, &["/app"], true)?;
    let mut archive = vec![];
    veil_oci::write::write_archive(&img, &mut archive)?;
    let blob = n.book.upload_bytes(archive).await?;
    let checksum = B256::from(img.checksum());
    let name = if tag == B256::ZERO { "image".to_string() } else { "image-tee".to_string() };
    let call = Call::CreateApp {
        name,
        app_type: "DOCKER".into(),
        multiaddr: blob.url,
        checksum,
        mrenclave: format!("{checksum}"),
    };
    let app = crate::local::created(&n.ledger.send(&n.key(1), call).await?.events)?;
    publish_app_order(n, app, tag).await?;
    Ok(app)
}

/// The ceiling under the image bag: the same app's containers run by the worker's own container
/// code (task folders, overlay layer, spec, OCI runtime) `parallel` at once, with no ledger,
/// scheduler or storage at all.
fn containers_alone(n: u64, parallel: usize) -> Result<(String, serde_json::Value)> {
    let dir = std::env::temp_dir().join(format!("veil-bench-containers-{}", std::process::id()));
    let r = (|| -> Result<(String, serde_json::Value)> {
        let bin = static_app(&dir.join("src"))?;
        let files = [veil_oci::write::NewFile { path: "app", bytes: &bin, mode: 0o755 }];
        let img = veil_oci::write::image_from_files(&dir.join("layout"), &files, &["/app"], true)?;
        let images =
            veil_pool::image::Images::open(&dir, u64::MAX, true, veil_sdk::http()).map_err(anyhow::Error::msg)?;
        let rt = images.runtime().map_err(anyhow::Error::msg)?;
        let lease = images.rootfs(&images.store().keep(&img)?).map_err(anyhow::Error::msg)?;
        let task = veil_pool::image::ImageTask::new(&img, &lease.path, rt);
        let next = std::sync::atomic::AtomicU64::new(0);
        let t0 = std::time::Instant::now();
        std::thread::scope(|s| -> Result<()> {
            let runs: Vec<_> = (0..parallel)
                .map(|_| {
                    s.spawn(|| -> Result<()> {
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            if i >= n {
                                return Ok(());
                            }
                            let dirs = veil_exec::TaskDirs::create(&dir.join("tasks").join(i.to_string()))?;
                            let info = veil_exec::contract::TaskInfo::default();
                            let job = task.job(&dirs, &["x".to_string()], &info, Duration::from_secs(30), 256 << 20)?;
                            rt.run(&job)?;
                            std::fs::remove_dir_all(&dirs.root)?;
                        }
                    })
                })
                .collect();
            for r in runs {
                r.join().map_err(|_| anyhow::anyhow!("a container thread panicked"))??;
            }
            Ok(())
        })?;
        let rate = n as f64 / t0.elapsed().as_secs_f64();
        let human = format!(
            "\n  the worker's containers alone ({}, {parallel} at once, no ledger or services): {rate:.0} containers/s",
            rt.describe()
        );
        Ok((
            human,
            json!({ "ledger": "none", "containersAlonePerSecond": rate, "parallel": parallel, "runner": rt.describe() }),
        ))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    r
}

/// `veil bench latency`: on each ledger of `chains`, side by side.
pub fn latency(runs: usize, chains: &[ChainKind], json: bool) -> Result<()> {
    let mut human = format!("latency: trivial app, matchOrders → task finalized, 1 worker, {runs} runs each");
    let mut out = serde_json::Map::new();
    for &chain in chains {
        let (h, v) = latency_on(chain, runs)?;
        human.push_str(&h);
        out.insert(chain_name(chain).into(), v);
    }
    human.push_str("\n  target   the TEE path adds < 20 ms at p50");
    human.push_str(
        "\n  targets  process p50 ≤ 100 ms, wasm p50 ≤ 50 ms (≤ 100 ms on PoCo), image (static binary FROM scratch) p50 ≤ 50 ms; iExec quotes ~30 s of scheduling",
    );
    if chains.contains(&ChainKind::Anvil) {
        human.push_str(&format!(
            "\n  PoCo's own gas (DESIGN §9): {POCO_GAS_STANDARD} for a trust-1 task, {POCO_GAS_TEE} for a TEE task"
        ));
    }
    // One ledger: the same JSON as before (`ms` at the top); several: one entry per ledger.
    let v = match (chains, out.get("embedded")) {
        ([ChainKind::Embedded], Some(e)) => json!({ "scenario": "latency", "runs": runs, "ms": e["ms"] }),
        _ => json!({ "scenario": "latency", "runs": runs, "ledgers": out }),
    };
    emit(json, &v, &human);
    Ok(())
}

/// iExec's figures for PoCo 6.1.0 on anvil (DESIGN.md §9): matchOrders 652 k + initialize 222 k +
/// contribute 365–390 k + reveal 93 k + finalize 284–323 k; TEE: contributeAndFinalize 490–610 k.
const POCO_GAS_STANDARD: &str =
    "1.6–1.85 M (match 652 k, initialize 222 k, contribute 365–390 k, reveal 93 k, finalize 284–323 k)";
const POCO_GAS_TEE: &str = "1.36–1.48 M (match 652 k, initialize 222 k, contributeAndFinalize 490–610 k)";

fn chain_name(c: ChainKind) -> &'static str {
    match c {
        ChainKind::Embedded => "embedded",
        ChainKind::Anvil => "anvil",
    }
}

fn latency_on(chain: ChainKind, runs: usize) -> Result<(String, serde_json::Value)> {
    let dir = std::env::temp_dir().join(format!("veil-bench-latency-{}-{}", std::process::id(), chain_name(chain)));
    let mut procs = Procs(vec![], dir.clone());
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let n = network(&mut procs, chain, 1, 1).await?;
        publish_pool(&n, B256::ZERO).await?;
        let py_manifest = "name = \"py\"\nruntime = \"process\"\nentrypoint = \"app.py\"\ninterpreter = \"python3\"\n";
        let py = app(&n, &dir.join("py"), py_manifest, &[("app.py", PY.as_bytes())], B256::ZERO).await?;
        let wasm = wasm_app(&n, &dir, B256::ZERO).await?;
        let image = image_app(&n, &dir, B256::ZERO).await?;
        // The same bundles as TEE apps (a TEE deal needs a TEE-tagged app order).
        let tee_dir = dir.join("tee");
        let tee_tag = B256::with_last_byte(1);
        let py_tee = app(&n, &tee_dir.join("py"), py_manifest, &[("app.py", PY.as_bytes())], tee_tag).await?;
        let wasm_tee = wasm_app(&n, &tee_dir, tee_tag).await?;
        let image_tee = image_app(&n, &tee_dir, tee_tag).await?;
        let (mut ms_out, mut gas_out) = (serde_json::Map::new(), serde_json::Map::new());
        let mut human = match chain {
            ChainKind::Embedded => "\n  Veil's embedded ledger:".to_string(),
            ChainKind::Anvil => "\n  iExec's PoCo 6.1.0 on anvil (one transaction per block):".to_string(),
        };
        // TEE runs: the same apps in `sim` enclaves (SMS session, enclave process, encrypted
        // channel), on a TEE-tagged pool order.
        publish_pool(&n, tee_tag).await?;
        let mut p50 = std::collections::BTreeMap::new();
        for (name, app, tag) in [
            ("process", py, B256::ZERO),
            ("wasm", wasm, B256::ZERO),
            ("image", image, B256::ZERO),
            ("process+tee", py_tee, tee_tag),
            ("wasm+tee", wasm_tee, tee_tag),
            ("image+tee", image_tee, tee_tag),
        ] {
            deal(&n, app, 1, 1_000_000, tag).await?; // warm-up: download, unpack, compile
            let (mut ms, mut gas) = (vec![], vec![]);
            for i in 0..runs {
                let r = deal(&n, app, 1, i as u64, tag).await?;
                ms.push(r.time.as_secs_f64() * 1000.0);
                gas.extend(r.gas.map(|g| g as f64));
            }
            let s = Stats::of(&ms);
            human.push_str(&format!("\n    {name:<12} {}", s.human("ms", 1)));
            if !gas.is_empty() {
                let g = Stats::of(&gas);
                human.push_str(&format!(
                    "\n    {:<12} gas per task {:.0} (min {:.0}, max {:.0})",
                    "", g.median, g.min, g.max
                ));
                gas_out.insert(name.into(), g.json());
            }
            p50.insert(name, s.median);
            ms_out.insert(name.into(), s.json());
        }
        for rt in ["process", "wasm", "image"] {
            let added = p50[format!("{rt}+tee").as_str()] - p50[rt];
            human.push_str(&format!("\n    TEE ({}) adds {added:.1} ms at p50 to {rt}", veil_tee::SIM_NOTICE));
            ms_out.insert(format!("{rt}TeeAddedP50"), json!(added));
        }
        let mut v = json!({ "ms": ms_out });
        if !gas_out.is_empty() {
            v["gasPerTask"] = json!(gas_out);
        }
        Ok((human, v))
    })
}

/// `veil bench bag`: one deal of `volume` trivial tasks with each worker count, on each ledger.
pub fn bag(
    volume: u64,
    slots: u32,
    runs: usize,
    workers: &[usize],
    chains: &[ChainKind],
    runtime: crate::bench::BagRuntime,
    json: bool,
) -> Result<()> {
    let mut rows = vec![];
    let what = match runtime {
        crate::bench::BagRuntime::Wasm => "WASM",
        crate::bench::BagRuntime::Image => "image (static binary FROM scratch)",
    };
    let mut human =
        format!("bag: one deal of {volume} trivial {what} tasks, {slots} slots per worker, {runs} deals each");
    for &chain in chains {
        human.push_str(match chain {
            ChainKind::Embedded => "\n  Veil's embedded ledger:",
            ChainKind::Anvil => "\n  iExec's PoCo 6.1.0 on anvil (one transaction per block):",
        });
        for &w in workers {
            let (h, row) = bag_on(chain, volume, slots, runs, w, runtime)?;
            human.push_str(&h);
            rows.push(row);
        }
    }
    if runtime == crate::bench::BagRuntime::Image {
        let parallel = 2 * slots as usize;
        let (h, v) = containers_alone(volume, parallel)?;
        human.push_str(&h);
        rows.push(v);
        human.push_str("\n  target  ≥ 100 image tasks/s with 2 workers on the embedded ledger");
    }
    human.push_str("\n  targets ≥ 200 tasks/s with 2 workers on the embedded ledger, ≥ 100 on PoCo (CPU per task is steadier than wall time on a shared VM)");
    emit(
        json,
        &json!({ "scenario": "bag", "runtime": what, "volume": volume, "slotsPerWorker": slots, "results": rows }),
        &human,
    );
    Ok(())
}

fn bag_on(
    chain: ChainKind,
    volume: u64,
    slots: u32,
    runs: usize,
    workers: usize,
    runtime: crate::bench::BagRuntime,
) -> Result<(String, serde_json::Value)> {
    let dir =
        std::env::temp_dir().join(format!("veil-bench-bag-{}-{}-{workers}", std::process::id(), chain_name(chain)));
    let mut procs = Procs(vec![], dir.clone());
    let rt = tokio::runtime::Runtime::new()?;
    let (rates, cpu, gas) = rt.block_on(async {
        let n = network(&mut procs, chain, workers, slots).await?;
        publish_pool(&n, B256::ZERO).await?;
        let wasm = match runtime {
            crate::bench::BagRuntime::Wasm => wasm_app(&n, &dir, B256::ZERO).await?,
            crate::bench::BagRuntime::Image => image_app(&n, &dir, B256::ZERO).await?,
        };
        deal(&n, wasm, workers as u64 * slots as u64 * 2, 999_999, B256::ZERO).await?; // warm every worker
        let pids: Vec<u32> = procs.0.iter().map(|c| c.id()).chain(n.extra_pids.iter().copied()).collect();
        let (mut rates, mut cpu, mut gas) = (vec![], vec![], vec![]);
        for run in 0..runs.max(1) {
            let before = cpu_seconds(&pids);
            let r = deal(&n, wasm, volume, run as u64, B256::ZERO).await?;
            rates.push(volume as f64 / r.time.as_secs_f64());
            cpu.push((cpu_seconds(&pids) - before) * 1000.0 / volume as f64);
            gas.extend(r.gas.map(|g| g as f64 / volume as f64));
        }
        Ok::<_, anyhow::Error>((rates, cpu, gas))
    })?;
    let (s, c) = (Stats::of(&rates), Stats::of(&cpu));
    let mut human = format!("\n    {workers} worker(s): {}", s.human("tasks/s", 0));
    human.push_str(&format!("\n                 CPU of all services (anvil included) per task: {}", c.human("ms", 2)));
    let mut row = json!({ "ledger": chain_name(chain), "workers": workers, "tasksPerSecond": s.json(), "cpuMsPerTask": c.json() });
    if !gas.is_empty() {
        let g = Stats::of(&gas);
        human.push_str(&format!("\n                 gas per task {:.0} (matchOrders shared by the deal)", g.median));
        row["gasPerTask"] = g.json();
    }
    Ok((human, row))
}

/// `veil bench memory`: resident memory of node, scheduler and workers (separate processes), idle
/// and while a deal of `volume` trivial WASM tasks runs on 2 workers; over `runs` fresh networks.
pub fn memory(volume: u64, runs: usize, json: bool) -> Result<()> {
    let roles = ["node", "scheduler", "worker"];
    let mut idle: Vec<Vec<f64>> = vec![vec![]; roles.len()];
    let mut loaded: Vec<Vec<f64>> = vec![vec![]; roles.len()];
    for run in 0..runs.max(1) {
        let dir = std::env::temp_dir().join(format!("veil-bench-memory-{}-{run}", std::process::id()));
        let mut procs = Procs(vec![], dir.clone());
        let rt = tokio::runtime::Runtime::new()?;
        let (i, l) = rt.block_on(async {
            let n = network(&mut procs, ChainKind::Embedded, 2, 8).await?;
            publish_pool(&n, B256::ZERO).await?;
            let wasm = wasm_app(&n, &dir, B256::ZERO).await?;
            // Idle: started, registered, nothing run yet.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let pids: Vec<u32> = procs.0.iter().map(|c| c.id()).collect();
            let idle = rss_by_role(&pids);
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let sampler = {
                let (stop, pids) = (stop.clone(), pids.clone());
                tokio::spawn(async move {
                    let mut peak = vec![0.0f64; 3];
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        for (p, now) in peak.iter_mut().zip(rss_by_role(&pids)) {
                            *p = p.max(now);
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    peak
                })
            };
            deal(&n, wasm, volume, run as u64, B256::ZERO).await?;
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            Ok::<_, anyhow::Error>((idle, sampler.await?))
        })?;
        for r in 0..roles.len() {
            idle[r].push(i[r]);
            loaded[r].push(l[r]);
        }
        drop(procs);
    }
    let mut human = format!(
        "memory: resident set (MB) of each process, idle and at its peak during a deal of {volume} WASM tasks on 2 workers × 8 slots, {runs} fresh networks"
    );
    let mut out = serde_json::Map::new();
    for (r, role) in roles.iter().enumerate() {
        let (i, l) = (Stats::of(&idle[r]), Stats::of(&loaded[r]));
        human.push_str(&format!(
            "\n  {role:<10} idle    {}\n  {:<10} loaded  {}",
            i.human("MB", 1),
            "",
            l.human("MB", 1)
        ));
        out.insert(role.to_string(), json!({ "idleMb": i.json(), "loadedPeakMb": l.json() }));
    }
    human.push_str("\n  (worker: the larger of the two workers; a wasm task runs inside the worker's process)");
    emit(json, &json!({ "scenario": "memory", "volume": volume, "runs": runs, "rssMb": out }), &human);
    Ok(())
}

/// RSS (MB) of node, scheduler, and the largest worker, from their pids in start order.
fn rss_by_role(pids: &[u32]) -> Vec<f64> {
    let rss = |p: &u32| crate::bench_ledger::rss_mb(*p).unwrap_or(0.0);
    let worker = pids.iter().skip(2).map(rss).fold(0.0, f64::max);
    vec![pids.first().map(rss).unwrap_or(0.0), pids.get(1).map(rss).unwrap_or(0.0), worker]
}

/// User + system CPU seconds the processes have used so far (from `/proc/PID/stat`).
fn cpu_seconds(pids: &[u32]) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .filter_map(|s| {
            // Fields after the command name (which may hold spaces) start at state (field 3).
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
        })
        .sum::<f64>()
        / tick
}
