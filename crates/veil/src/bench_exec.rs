//! `veil bench latency` and `veil bench bag`: trivial apps on a local network of real processes
//! (node, scheduler, workers), from matchOrders to the task's finalize event.

use crate::bench::Stats;
use crate::cli_io::emit;
use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use veil_core::book::BookQuery;
use veil_core::events::Event;
use veil_core::orders::OrderKind;
use veil_core::tx::AnyOrder;
use veil_core::*;
use veil_node::dev::dev_key;
use veil_sdk::Client;

const PY: &str = "import os, json\no = os.environ['IEXEC_OUT']\nopen(o + '/r.txt', 'w').write('ok')\njson.dump({'deterministic-output-path': o + '/r.txt'}, open(o + '/computed.json', 'w'))\n";

struct Procs(Vec<Child>, PathBuf);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn spawn(procs: &mut Procs, args: &[&str], listen: bool) -> Result<String> {
    let mut c = Command::new(std::env::current_exe()?);
    c.args(args).arg("--json").env("RUST_LOG", "error").stdout(Stdio::piped()).stderr(Stdio::null());
    // VEIL_BENCH_LOGS=DIR keeps each service's warnings in DIR/<n>-<command>.log.
    if let Some(d) = std::env::var_os("VEIL_BENCH_LOGS") {
        let f = std::fs::File::create(Path::new(&d).join(format!("{}-{}.log", procs.0.len(), args[0])))?;
        c.env("RUST_LOG", "warn").stderr(f);
    }
    if listen {
        c.args(["--listen", "127.0.0.1:0"]);
    }
    let mut child = c.spawn().context("cannot start a service")?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    procs.0.push(child);
    let v: serde_json::Value = serde_json::from_str(&line).with_context(|| format!("service did not start: {line}"))?;
    Ok(v["url"].as_str().unwrap_or_default().to_string())
}

/// A node, a scheduler for a new pool and `workers` workers; returns the client and the pool.
async fn network(procs: &mut Procs, workers: usize, slots: u32) -> Result<(Client, Address)> {
    let d = procs.1.clone();
    let node = spawn(
        procs,
        &["node", "--dev", "--checkpoint-every", "0", "--data-dir", d.join("node").to_str().unwrap_or_default()],
        true,
    )?;
    let c = Client::new(&node);
    for i in [1, 3, 4, 5, 6, 7] {
        c.send(&dev_key(i), Call::Deposit { amount: Nrlc::rlc(100_000) }).await?;
    }
    let r = c.send(&dev_key(3), Call::CreateWorkerpool { description: "bench".into() }).await?;
    let pool = crate::local::created(&r.events)?;
    let ps = pool.to_string();
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
            d.join("sched").to_str().unwrap_or_default(),
        ],
        true,
    )?;
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
    Ok((c, pool))
}

/// Deploys an app bundle made of `files`, publishes its order; returns its address.
async fn app(c: &Client, dir: &Path, manifest: &str, files: &[(&str, &[u8])], tag: B256) -> Result<Address> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("iapp.toml"), manifest)?;
    for (n, b) in files {
        std::fs::write(dir.join(n), b)?;
    }
    let b = veil_exec::Bundle::pack(dir)?;
    let blob = c.upload_bytes(b.bytes.clone()).await?;
    let call = Call::CreateApp {
        name: b.manifest.name.clone(),
        app_type: "VEIL".into(),
        multiaddr: blob.url,
        checksum: B256::from(b.checksum()),
        mrenclave: format!("{}", B256::from(b.measurement())),
    };
    let app = crate::local::created(&c.send(&dev_key(1), call).await?.events)?;
    let z = Address::ZERO;
    let o = AnyOrder::App(AppOrder {
        app,
        appprice: U256::ZERO,
        volume: U256::from(1_000_000),
        tag,
        datasetrestrict: z,
        workerpoolrestrict: z,
        requesterrestrict: z,
        salt: random_salt(),
    });
    let d = c.chain().await?.domain;
    c.publish(o.clone(), Some(dev_key(1).sign_hash(&o.typed_hash(&d)))).await?;
    Ok(app)
}

async fn publish_pool(c: &Client, pool: Address, tag: B256) -> Result<()> {
    let z = Address::ZERO;
    let o = AnyOrder::Workerpool(WorkerpoolOrder {
        workerpool: pool,
        workerpoolprice: U256::ZERO,
        volume: U256::from(1_000_000),
        tag,
        category: U256::ZERO,
        trust: U256::from(1),
        apprestrict: z,
        datasetrestrict: z,
        requesterrestrict: z,
        salt: random_salt(),
    });
    let d = c.chain().await?.domain;
    c.publish(o.clone(), Some(dev_key(3).sign_hash(&o.typed_hash(&d)))).await?;
    Ok(())
}

/// Matches a deal of `volume` tasks of `app` and waits for every task's finalize; returns the time.
async fn deal(c: &Client, app: Address, volume: u64, salt: u64, tag: B256) -> Result<Duration> {
    let d = c.chain().await?;
    let key = dev_key(4);
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
    let events = c.events(d.head + 1).await?;
    let t = Instant::now();
    let receipt = c.send(&key, call).await?;
    let dealid = crate::local::dealid(&receipt.events)?;
    let deal = c.deal(&dealid).await?.deal;
    let first: u64 = deal.bot_first.to();
    let mut pending: std::collections::HashSet<B256> =
        (first..first + volume).map(|i| veil_core::state::task_id(&dealid, U256::from(i))).collect();
    let mut events = Box::pin(events);
    while !pending.is_empty() {
        let b = tokio::time::timeout(Duration::from_secs(120), events.next())
            .await
            .context("tasks did not finish in 120 s")?
            .context("event stream ended")??;
        for e in b.receipts.iter().flat_map(|r| r.events.iter()) {
            if let Event::TaskFinalize { taskid, .. } = e {
                pending.remove(taskid);
            }
        }
    }
    Ok(t.elapsed())
}

fn random_salt() -> B256 {
    let mut s = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut s);
    B256::from(s)
}

fn wasm_bytes() -> Result<Vec<u8>> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../veil-wasm/tests/fixtures/hello.wasm");
    std::fs::read(&p).with_context(|| format!("cannot read the trivial WASM app at {}", p.display()))
}

/// Deploys the trivial WASM app (with its order) from `dir/wasm`.
async fn wasm_app(c: &Client, dir: &Path, tag: B256) -> Result<Address> {
    let w = wasm_bytes()?;
    app(
        c,
        &dir.join("wasm"),
        "name = \"wasm\"\nruntime = \"wasm\"\nentrypoint = \"app.wasm\"\n",
        &[("app.wasm", &w)],
        tag,
    )
    .await
}

pub fn latency(runs: usize, json: bool) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("veil-bench-latency-{}", std::process::id()));
    let mut procs = Procs(vec![], dir.clone());
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let (c, pool) = network(&mut procs, 1, 1).await?;
        publish_pool(&c, pool, B256::ZERO).await?;
        let py = app(
            &c,
            &dir.join("py"),
            "name = \"py\"\nruntime = \"process\"\nentrypoint = \"app.py\"\ninterpreter = \"python3\"\n",
            &[("app.py", PY.as_bytes())],
            B256::ZERO,
        )
        .await?;
        let wasm = wasm_app(&c, &dir, B256::ZERO).await?;
        // The same bundles as TEE apps (a TEE deal needs a TEE-tagged app order).
        let tee_dir = dir.join("tee");
        let py_tee = app(
            &c,
            &tee_dir.join("py"),
            "name = \"py\"\nruntime = \"process\"\nentrypoint = \"app.py\"\ninterpreter = \"python3\"\n",
            &[("app.py", PY.as_bytes())],
            B256::with_last_byte(1),
        )
        .await?;
        let wasm_tee = wasm_app(&c, &tee_dir, B256::with_last_byte(1)).await?;
        let mut out = serde_json::Map::new();
        let mut human = format!("latency: trivial app, matchOrders → task finalized, 1 worker, {runs} runs each");
        // TEE runs: the same apps in `sim` enclaves (SMS session, enclave process, encrypted
        // channel), on a TEE-tagged pool order.
        publish_pool(&c, pool, B256::with_last_byte(1)).await?;
        let mut p50 = std::collections::BTreeMap::new();
        let std_tag = B256::ZERO;
        let tee_tag = B256::with_last_byte(1);
        for (name, app, tag) in [
            ("process", py, std_tag),
            ("wasm", wasm, std_tag),
            ("process+tee", py_tee, tee_tag),
            ("wasm+tee", wasm_tee, tee_tag),
        ] {
            deal(&c, app, 1, 1_000_000, tag).await?; // warm-up: download, unpack, compile
            let mut ms = vec![];
            for i in 0..runs {
                ms.push(deal(&c, app, 1, i as u64, tag).await?.as_secs_f64() * 1000.0);
            }
            let s = Stats::of(&ms);
            human.push_str(&format!("\n  {name:<12} {}", s.human("ms", 1)));
            p50.insert(name, s.median);
            out.insert(name.into(), s.json());
        }
        for rt in ["process", "wasm"] {
            let added = p50[format!("{rt}+tee").as_str()] - p50[rt];
            human.push_str(&format!("\n  TEE ({}) adds {added:.1} ms at p50 to {rt}", veil_tee::SIM_NOTICE));
            out.insert(format!("{rt}TeeAddedP50"), json!(added));
        }
        human.push_str("\n  target   the TEE path adds < 20 ms at p50");
        human.push_str("\n  targets  process p50 ≤ 100 ms, wasm p50 ≤ 50 ms (iExec quotes ~30 s of scheduling)");
        emit(json, &json!({ "scenario": "latency", "runs": runs, "ms": out }), &human);
        Ok(())
    })
}

pub fn bag(volume: u64, slots: u32, runs: usize, workers: &[usize], json: bool) -> Result<()> {
    let mut rows = vec![];
    let mut human =
        format!("bag: one deal of {volume} trivial WASM tasks, {slots} slots per worker, {runs} deals each");
    for &n in workers {
        let dir = std::env::temp_dir().join(format!("veil-bench-bag-{}-{n}", std::process::id()));
        let mut procs = Procs(vec![], dir.clone());
        let rt = tokio::runtime::Runtime::new()?;
        let (rates, cpu) = rt.block_on(async {
            let (c, pool) = network(&mut procs, n, slots).await?;
            publish_pool(&c, pool, B256::ZERO).await?;
            let wasm = wasm_app(&c, &dir, B256::ZERO).await?;
            deal(&c, wasm, n as u64 * slots as u64 * 2, 999_999, B256::ZERO).await?; // warm every worker
            let pids: Vec<u32> = procs.0.iter().map(|c| c.id()).collect();
            let (mut rates, mut cpu) = (vec![], vec![]);
            for run in 0..runs.max(1) {
                let before = cpu_seconds(&pids);
                rates.push(volume as f64 / deal(&c, wasm, volume, run as u64, B256::ZERO).await?.as_secs_f64());
                cpu.push((cpu_seconds(&pids) - before) * 1000.0 / volume as f64);
            }
            Ok::<_, anyhow::Error>((rates, cpu))
        })?;
        let (s, c) = (Stats::of(&rates), Stats::of(&cpu));
        human.push_str(&format!("\n  {n} worker(s): {}", s.human("tasks/s", 0)));
        human.push_str(&format!("\n               CPU of all services per task: {}", c.human("ms", 2)));
        rows.push(json!({ "workers": n, "tasksPerSecond": s.json(), "cpuMsPerTask": c.json() }));
        drop(procs);
    }
    human.push_str("\n  target  ≥ 200 tasks/s with 2 workers (CPU per task is steadier than wall time on a shared VM)");
    emit(json, &json!({ "scenario": "bag", "volume": volume, "slotsPerWorker": slots, "results": rows }), &human);
    Ok(())
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
            let (c, pool) = network(&mut procs, 2, 8).await?;
            publish_pool(&c, pool, B256::ZERO).await?;
            let wasm = wasm_app(&c, &dir, B256::ZERO).await?;
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
            deal(&c, wasm, volume, run as u64, B256::ZERO).await?;
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
