//! Deals run end to end through the real binaries: node, scheduler, workers, `veil run`.

mod common;
use common::{Backend, Chain, Service, ok, spawn, spawn_worker, veil};
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;

const APP: &str = r#"import os, sys, json
o = os.environ["IEXEC_OUT"]
if sys.argv[1:] == ["forever"]:
    while True:
        pass
open(o + "/result.txt", "w").write("Hello, " + " ".join(sys.argv[1:]) + "!")
json.dump({"deterministic-output-path": o + "/result.txt"}, open(o + "/computed.json", "w"))
"#;

struct Pool {
    node: Chain,
    scheduler: Service,
    /// How the scheduler was started (to restart it).
    scheduler_args: Vec<String>,
    workers: Vec<Service>,
    app: String,
}

fn addr(v: &Value) -> String {
    v["address"].as_str().unwrap().to_string()
}

/// A dev node, a pool (dev account 3) with `workers` workers (dev accounts 5…), a Python app
/// (dev account 1) with its order, and the pool's order for `category` and `trust`.
fn pool(b: Backend, d: &Path, workers: usize, category: u64, trust: u64) -> Pool {
    pool_with(b, d, workers, category, trust, "", "10")
}

/// [`pool`] with code run before the app's own (`prelude`) and the scheduler's worker timeout (s).
fn pool_with(
    b: Backend,
    d: &Path,
    workers: usize,
    category: u64,
    trust: u64,
    prelude: &str,
    worker_timeout: &str,
) -> Pool {
    let node = common::chain(b, &d.join("node"));
    let url = node.url.clone();
    for i in ["1", "3", "4", "5", "6"] {
        ok(&url, &["account", "deposit", "100 RLC", "--dev-account", i]);
    }
    let pool = addr(&ok(&url, &["workerpool", "deploy", "--name", "pool", "--dev-account", "3"]));
    let scheduler_args: Vec<String> = [
        "scheduler",
        "--workerpool",
        &pool,
        "--dev-account",
        "3",
        "--node",
        &url,
        "--worker-timeout",
        worker_timeout,
        "--data-dir",
        d.join("sched").to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();
    let scheduler = spawn(&scheduler_args.iter().map(String::as_str).collect::<Vec<_>>(), Stdio::null());
    let workers = (0..workers)
        .map(|i| {
            let acc = (5 + i).to_string();
            let dir = d.join(format!("worker{i}"));
            spawn_worker(&scheduler.url, &url, &acc, &dir)
        })
        .collect();
    std::fs::create_dir_all(d.join("app")).unwrap();
    std::fs::write(
        d.join("app/iapp.toml"),
        "name = \"hello\"\nruntime = \"process\"\nentrypoint = \"app.py\"\ninterpreter = \"python3\"\n",
    )
    .unwrap();
    std::fs::write(d.join("app/app.py"), format!("{prelude}{APP}")).unwrap();
    let app = addr(&ok(&url, &["app", "deploy", "--bundle", d.join("app").to_str().unwrap(), "--dev-account", "1"]));
    ok(&url, &["app", "publish", "--app", &app, "--price", "1", "--dev-account", "1"]);
    let (c, t) = (category.to_string(), trust.to_string());
    ok(
        &url,
        &[
            "workerpool",
            "publish",
            "--workerpool",
            &pool,
            "--price",
            "100",
            "--category",
            &c,
            "--trust",
            &t,
            "--dev-account",
            "3",
        ],
    );
    Pool { node, scheduler, scheduler_args, workers, app }
}

fn one_worker_runs_a_python_app_and_the_result_comes_back(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = pool(b, d, 1, 0, 1);
    let url = &p.node.url;
    let r = ok(url, &["run", &p.app, "--args", "Veil world", "--dev-account", "4", "--timeout", "60"]);
    let task = &r["tasks"][0];
    assert_eq!(task["status"], "COMPLETED");
    let taskid = task["taskid"].as_str().unwrap();
    let out = d.join("result");
    ok(url, &["result", "get", taskid, "--out", out.to_str().unwrap()]);
    let text = std::fs::read_to_string(out.join("result.txt")).unwrap();
    assert_eq!(text, "Hello, Veil world!");
    // The digest on the ledger is the sha256 of the deterministic file.
    use sha2::Digest;
    let digest = format!("0x{}", hex::encode(sha2::Sha256::digest(text.as_bytes())));
    assert_eq!(task["resultDigest"], digest);
}

fn trust_3_replicates_on_two_workers_who_agree(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let p = pool(b, dir.path(), 2, 0, 3);
    let url = &p.node.url;
    let r = ok(url, &["run", &p.app, "--args", "twice", "--trust", "3", "--dev-account", "4", "--timeout", "60"]);
    let taskid = r["tasks"][0]["taskid"].as_str().unwrap().to_string();
    let t = ok(url, &["task", "show", &taskid]);
    assert_eq!(t["status"], "COMPLETED");
    assert_eq!(t["contributors"].as_array().unwrap().len(), 2, "two replicas");
    for acc in ["5", "6"] {
        assert_eq!(
            ok(url, &["account", "show", "--dev-account", acc])["score"],
            1,
            "each agreeing worker's score grows"
        );
    }
}

fn an_endless_app_is_killed_and_the_worker_lives_on(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    // Category 5 of a dev ledger: 5 s reference time, so the app is killed after 5 s.
    let p = pool(b, dir.path(), 1, 5, 1);
    let url = &p.node.url;
    let deal = ok(url, &["run", &p.app, "--args", "forever", "--category", "5", "--no-watch", "--dev-account", "4"]);
    let taskid = task_of(url, deal["dealid"].as_str().unwrap(), 0);
    // The worker reports the kill as the task's cause, and the task is not retried.
    let t0 = std::time::Instant::now();
    let show = ["task", "show", &taskid, "--scheduler", &p.scheduler.url];
    let t = wait_until(url, &show, 15, |t| t["replicates"][0]["status"] == "failed");
    let cause = t["replicates"][0]["cause"].as_str().unwrap();
    assert!(cause.contains("ran out of time"), "{cause}");
    assert!(t0.elapsed() >= std::time::Duration::from_secs(4), "killed at its 5 s limit, not before");
    assert_eq!(t["replicates"][0]["attempts"], 1);
    assert_eq!(t["status"], "ACTIVE");
    let r = ok(url, &["run", &p.app, "--args", "again", "--category", "5", "--dev-account", "4", "--timeout", "30"]);
    assert_eq!(r["tasks"][0]["status"], "COMPLETED", "the same worker took the next task");
}

fn a_wasm_app_runs_through_the_pool(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = pool(b, d, 1, 0, 1);
    let url = &p.node.url;
    let bundle = common::wasm_app_dir(&d.join("wapp"));
    let app = addr(&ok(url, &["app", "deploy", "--bundle", &bundle, "--dev-account", "1"]));
    ok(url, &["app", "publish", "--app", &app, "--dev-account", "1"]);
    let r = ok(url, &["run", &app, "--args", "Veil world", "--dev-account", "4", "--timeout", "60"]);
    assert_eq!(r["tasks"][0]["status"], "COMPLETED");
    // The same output as the Python app gives the same digest.
    use sha2::Digest;
    assert_eq!(
        r["tasks"][0]["resultDigest"],
        format!("0x{}", hex::encode(sha2::Sha256::digest(b"Hello, Veil world!")))
    );
}

fn a_silent_workers_task_goes_to_another_worker(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut p = pool_with(b, d, 1, 0, 1, "import time\ntime.sleep(1.5)\n", "2");
    let url = p.node.url.clone();
    let holdings = |i: usize| -> u128 {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let a = rt.block_on(veil_sdk::Client::new(&url).account(&b.dev_key(i).address())).unwrap().account;
        (a.wallet.0 + a.balance.0 + a.locked.0).to::<u128>()
    };
    let before: Vec<u128> = (0..10).map(holdings).collect();
    let deal = ok(&url, &["run", &p.app, "--args", "x", "--no-watch", "--dev-account", "4"]);
    let dealid = deal["dealid"].as_str().unwrap().to_string();
    // Let the first worker take the task, then kill it mid-run.
    std::thread::sleep(std::time::Duration::from_millis(800));
    p.workers.clear();
    let _second = spawn_worker(&p.scheduler.url, &url, "6", &d.join("w6"));
    let taskid = task_of(&url, &dealid, 0);
    let t = wait_until(&url, &["task", "show", &taskid], 30, |t| t["status"] == "COMPLETED");
    let contributors = t["contributors"].as_array().unwrap();
    assert_eq!(contributors.len(), 1);
    assert_eq!(
        contributors[0].as_str().unwrap().to_lowercase(),
        format!("{:?}", b.dev_key(6).address()).to_lowercase(),
        "the second worker finished it"
    );
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(t["finalDeadline"].as_u64().unwrap() > now, "completed before its deadline");
    // Paid exactly once: the requester paid the app (1) and the pool (100) once; the killed worker
    // neither earned nor lost; the second worker and the pool owner shared the pool's price.
    let after: Vec<u128> = (0..10).map(holdings).collect();
    assert_eq!(before[4] - after[4], 101, "the requester paid once");
    assert_eq!(after[1] - before[1], 1, "the app's owner was paid once");
    assert_eq!(after[5], before[5], "the killed worker got nothing and lost nothing");
    assert_eq!((after[6] - before[6]) + (after[3] - before[3]), 100, "the pool's price went out once");
    assert_eq!(after.iter().sum::<u128>(), before.iter().sum::<u128>());
}

/// Polls `veil ARGS` until `done` holds for its answer, for at most `limit` seconds.
fn wait_until(url: &str, args: &[&str], limit: u64, done: impl Fn(&Value) -> bool) -> Value {
    let t0 = std::time::Instant::now();
    loop {
        let v = veil(url, args).unwrap_or_default();
        if done(&v) {
            return v;
        }
        assert!(t0.elapsed() < std::time::Duration::from_secs(limit), "veil {args:?} still at: {v}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The id of task `n` of a deal, as the ledger numbers them.
fn task_of(url: &str, dealid: &str, n: u64) -> String {
    let deal = ok(url, &["deal", "show", dealid]);
    let first: u64 = deal["botFirst"].as_str().unwrap().parse().unwrap();
    let id = veil_core::state::task_id(&dealid.parse().unwrap(), veil_core::U256::from(first + n));
    format!("{id:?}")
}

fn a_restarted_scheduler_finishes_its_in_flight_tasks(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut p = pool_with(b, d, 1, 0, 1, "import time\ntime.sleep(0.4)\n", "10");
    let url = p.node.url.clone();
    let deal = ok(&url, &["run", &p.app, "--volume", "6", "--no-watch", "--dev-account", "4"]);
    let dealid = deal["dealid"].as_str().unwrap().to_string();
    let tasks: Vec<String> = (0..6).map(|n| task_of(&url, &dealid, n)).collect();
    // Kill the scheduler while the first tasks run, then start it again where workers expect it.
    std::thread::sleep(std::time::Duration::from_millis(700));
    let _ = p.scheduler.child.kill();
    let _ = p.scheduler.child.wait();
    let listen = p.scheduler.url.trim_start_matches("http://").to_string();
    let args: Vec<&str> = p.scheduler_args.iter().map(String::as_str).collect();
    p.scheduler = common::spawn_at(&args, Stdio::null(), "warn", &listen);
    for task in &tasks {
        let t = wait_until(&url, &["task", "show", task], 60, |t| t["status"] == "COMPLETED");
        assert_eq!(t["contributors"].as_array().unwrap().len(), 1, "{t}");
    }
}

fn a_kept_pool_order_is_topped_up_when_deals_use_it(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let p = pool(b, dir.path(), 1, 0, 1);
    let url = &p.node.url;
    let workerpool = &p.scheduler_args[2];
    // Category 5 has no order yet: the keeper offers one task at a time.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(["workerpool", "publish", "--workerpool", workerpool, "--category", "5", "--volume", "1", "--keep"])
        .args(["--dev-account", "3", "--json"])
        .env("VEIL_NODE", url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let _keeper = Service { child, url: String::new(), ready: Value::Null };
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    let mut hashes = vec![first["orderHash"].as_str().unwrap().to_string()];
    for i in 0..3 {
        let r = ok(url, &["run", &p.app, "--args", &i.to_string(), "--category", "5", "--dev-account", "4"]);
        assert_eq!(r["tasks"][0]["status"], "COMPLETED");
        // Each deal used the whole order: the keeper publishes the next one before the next run.
        let next: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        hashes.push(next["orderHash"].as_str().unwrap().to_string());
    }
    hashes.dedup();
    assert_eq!(hashes.len(), 4, "a fresh order after each deal: {hashes:?}");
}

fn a_busy_worker_keeps_its_task_past_the_silence_timeout(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    // The app runs 3 s; a worker is silent after 1 s without news. Its one slot is busy, so it
    // does not poll: only its heartbeats keep the task from going to someone else.
    let p = pool_with(b, dir.path(), 1, 0, 1, "import time\ntime.sleep(3)\n", "1");
    let url = &p.node.url;
    let deal = ok(url, &["run", &p.app, "--no-watch", "--dev-account", "4"]);
    let taskid = task_of(url, deal["dealid"].as_str().unwrap(), 0);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let t = ok(url, &["task", "show", &taskid, "--scheduler", &p.scheduler.url]);
    assert_eq!(t["replicates"].as_array().map(Vec::len), Some(1), "{t}");
    assert_eq!(t["replicates"][0]["status"], "running", "{t}");
    let t = wait_until(url, &["task", "show", &taskid], 20, |t| t["status"] == "COMPLETED");
    assert_eq!(t["contributors"].as_array().unwrap().len(), 1);
}

fn an_output_above_the_workers_limit_is_refused(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let big = "import os\nopen(os.environ['IEXEC_OUT'] + '/big.bin', 'wb').write(b'x' * 2_000_000)\n";
    let p = pool_with(b, d, 0, 0, 1, big, "10");
    let url = p.node.url.clone();
    let _w = common::spawn_worker_with(&p.scheduler.url, &url, "5", &d.join("w5"), &["--max-result-mb", "1"]);
    let deal = ok(&url, &["run", &p.app, "--no-watch", "--dev-account", "4"]);
    let taskid = task_of(&url, deal["dealid"].as_str().unwrap(), 0);
    let t = wait_until(&url, &["task", "show", &taskid, "--scheduler", &p.scheduler.url], 30, |t| {
        t["replicates"][0]["status"] == "failed"
    });
    let cause = t["replicates"][0]["cause"].as_str().unwrap();
    assert!(cause.contains("larger than this worker's limit of 1048576 bytes"), "{cause}");
    assert_eq!(t["status"], "ACTIVE", "nothing was contributed");
}

on_both_ledgers!(
    one_worker_runs_a_python_app_and_the_result_comes_back,
    trust_3_replicates_on_two_workers_who_agree,
    an_endless_app_is_killed_and_the_worker_lives_on,
    a_wasm_app_runs_through_the_pool,
    a_silent_workers_task_goes_to_another_worker,
    a_restarted_scheduler_finishes_its_in_flight_tasks,
    a_kept_pool_order_is_topped_up_when_deals_use_it,
    a_busy_worker_keeps_its_task_past_the_silence_timeout,
    an_output_above_the_workers_limit_is_refused,
);
