//! A real chain, through real processes: anvil (PoCo) stopped mid-deal and started again on the
//! same port from its saved state — the node's orderbook, the scheduler and the worker wait for it
//! (retrying with backoff), resume from their last processed block, and every task completes, paid
//! exactly once; and a node serving PoCo keeps its orderbook as the chain says (cancelled and
//! transferred orders leave), across its own restart; a new wallet funded on anvil works through it.

mod common;
use common::{Backend, ok, spawn, spawn_worker};
use std::process::Stdio;
use std::time::{Duration, Instant};

const APP: &str = r#"import os, json, time
time.sleep(0.3)
o = os.environ["IEXEC_OUT"]
open(o + "/result.txt", "w").write("done")
json.dump({"deterministic-output-path": o + "/result.txt"}, open(o + "/computed.json", "w"))
"#;

fn free_port() -> String {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string()
}

#[test]
fn anvil_stopped_and_restarted_mid_deal_every_task_completes_once() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let b = Backend::Anvil;
    let port = free_port();
    let mut anvil = common::spawn_anvil(&d.join("anvil"), &port);
    let hub = anvil.ready["hub"].as_str().unwrap().to_string();
    let rpc = anvil.url.clone();
    let data = d.join("node");
    let node =
        spawn(&["node", "--dev", "--data-dir", data.to_str().unwrap(), "--rpc", &rpc, "--hub", &hub], Stdio::null());
    let url = node.url.clone();
    for i in ["1", "3", "4", "5"] {
        ok(&url, &["account", "deposit", "100 RLC", "--dev-account", i]);
    }
    let (pool, scheduler) = common::pool_and_scheduler(&url, &d.join("sched"));
    let _worker = spawn_worker(&scheduler.url, &url, "5", &d.join("worker"));
    std::fs::create_dir_all(d.join("app")).unwrap();
    std::fs::write(
        d.join("app/iapp.toml"),
        "name = \"slow\"\nruntime = \"process\"\nentrypoint = \"app.py\"\ninterpreter = \"python3\"\n",
    )
    .unwrap();
    std::fs::write(d.join("app/app.py"), APP).unwrap();
    let app = ok(&url, &["app", "deploy", "--bundle", d.join("app").to_str().unwrap(), "--dev-account", "1"]);
    let app = app["address"].as_str().unwrap().to_string();
    ok(&url, &["app", "publish", "--app", &app, "--price", "1", "--dev-account", "1"]);
    ok(&url, &["workerpool", "publish", "--workerpool", &pool, "--price", "100", "--dev-account", "3"]);

    let holdings = |c: &veil_sdk::Client| -> Vec<u128> {
        (0..10)
            .map(|i| {
                let a = common::rt().block_on(c.account(&b.dev_key(i).address())).unwrap().account;
                (a.wallet.0 + a.balance.0 + a.locked.0).to::<u128>()
            })
            .collect()
    };
    let c = veil_sdk::Client::new(&url);
    let before = holdings(&c);
    let deal = ok(&url, &["run", &app, "--volume", "6", "--no-watch", "--dev-account", "4"]);
    let dealid: veil_core::B256 = deal["dealid"].as_str().unwrap().parse().unwrap();

    // Stop the chain while the first tasks run (its state is saved as it stops), keep it down for
    // a while, then start it again where everyone expects it.
    std::thread::sleep(Duration::from_millis(700));
    let first: u64 = ok(&url, &["deal", "show", &format!("{dealid:?}")])["botFirst"].as_str().unwrap().parse().unwrap();
    let tasks: Vec<veil_core::B256> =
        (0..6).map(|n| veil_core::state::task_id(&dealid, veil_core::U256::from(first + n))).collect();
    let completed = tasks
        .iter()
        .filter(|t| {
            common::rt().block_on(c.task(t)).is_ok_and(|v| v.task.status == veil_core::state::TaskStatus::Completed)
        })
        .count();
    assert!(completed < 6, "the chain must go away mid-deal ({completed} of 6 tasks done already)");
    drop(anvil);
    std::thread::sleep(Duration::from_secs(3));
    anvil = common::spawn_anvil(&d.join("anvil"), &port);
    assert_eq!(anvil.url, rpc);

    let t0 = Instant::now();
    for (n, task) in tasks.iter().enumerate() {
        let task = format!("{task:?}");
        loop {
            let t = common::veil(&url, &["task", "show", &task]).unwrap_or_default();
            if t["status"] == "COMPLETED" {
                assert_eq!(t["contributors"].as_array().map(Vec::len), Some(1), "{t}");
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(120), "task {n} never completed after the restart: {t}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    // Paid exactly once per task: the requester paid 6 × (1 + 100) nRLC, the app's owner got 6,
    // the worker and the pool owner shared 600; RLC was neither created nor lost.
    let after = holdings(&c);
    assert_eq!(before[4] - after[4], 606, "the requester paid each task once");
    assert_eq!(after[1] - before[1], 6, "the app's owner was paid once per task");
    assert_eq!((after[5] - before[5]) + (after[3] - before[3]), 600, "the pool's price went out once per task");
    assert_eq!(after.iter().sum::<u128>(), before.iter().sum::<u128>());
}

/// The orderbook of a node serving PoCo follows the chain: a grant cancelled on PoCo (`veil data
/// revoke`, sent to the chain, not to the node) leaves the book, and when the dataset changes owner
/// on PoCo its remaining grants leave too; a node restarted after both keeps the book as the chain
/// says.
#[test]
fn a_node_serving_poco_prunes_cancelled_and_transferred_orders() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let b = Backend::Anvil;
    let anvil = common::spawn_anvil(&d.join("anvil"), "0");
    let hub = anvil.ready["hub"].as_str().unwrap().to_string();
    let data = d.join("node");
    let node_args = ["node", "--dev", "--data-dir", data.to_str().unwrap(), "--rpc", &anvil.url, "--hub", &hub];
    let node = spawn(&node_args, Stdio::null());
    let url = node.url.clone();
    std::fs::write(d.join("secret.txt"), "s").unwrap();
    let ds =
        ok(&url, &["data", "protect", d.join("secret.txt").to_str().unwrap(), "--name", "s", "--dev-account", "2"]);
    let ds = ds["address"].as_str().unwrap().to_string();
    let grant = |count: &str| {
        let g = ok(&url, &["data", "grant", "--dataset", &ds, "--access-count", count, "--dev-account", "2"]);
        g["orderHash"].as_str().unwrap().to_string()
    };
    let (first, _second, _third) = (grant("1"), grant("2"), grant("3"));
    let grants = |url: &str| ok(url, &["data", "access", "--dataset", &ds]).as_array().unwrap().len();
    let wait_for = |url: &str, n: usize, what: &str| {
        let t0 = Instant::now();
        while grants(url) != n {
            assert!(t0.elapsed() < Duration::from_secs(20), "{what}: still {} grants, want {n}", grants(url));
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    assert_eq!(grants(&url), 3);
    ok(&url, &["data", "revoke", "--dataset", &ds, "--order", &first, "--dev-account", "2"]);
    wait_for(&url, 2, "a grant cancelled on PoCo");
    ok(&url, &["data", "transfer", "--dataset", &ds, "--to", &b.address(6), "--dev-account", "2"]);
    wait_for(&url, 0, "the dataset changed owner on PoCo");
    // A restart reads the book back and checks it against the chain: still empty.
    drop(node);
    let node = spawn(&node_args, Stdio::null());
    assert_eq!(grants(&node.url), 0);
}

/// A brand-new wallet on `veil dev --chain anvil`'s chain: `veil evm fund` gives it gas and RLC
/// (found through the node), then it deposits and deploys like any account.
#[test]
fn a_new_wallet_is_funded_on_anvil_then_works_through_the_node() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let anvil = common::spawn_anvil(&d.join("anvil"), "0");
    let hub = anvil.ready["hub"].as_str().unwrap().to_string();
    let node = spawn(
        &["node", "--data-dir", d.join("node").to_str().unwrap(), "--rpc", &anvil.url, "--hub", &hub],
        Stdio::null(),
    );
    let url = node.url.clone();
    std::fs::write(d.join("pw"), "correct horse\n").unwrap();
    let (wallet, pw) = (d.join("w.json"), d.join("pw"));
    let made = ok(
        &url,
        &["wallet", "create", "--light", "--password-file", pw.to_str().unwrap(), "--out", wallet.to_str().unwrap()],
    );
    let address = made["address"].as_str().unwrap().to_string();
    let signer = ["--wallet", wallet.to_str().unwrap(), "--password-file", pw.to_str().unwrap()];
    let e = common::veil(&url, &[&["account", "deposit", "5 RLC"][..], &signer].concat()).unwrap_err();
    assert!(e.contains("holds that much RLC"), "an empty wallet: {e}");
    let f = ok(&url, &["evm", "fund", &address, "--eth", "1", "--rlc", "10"]);
    assert_eq!(f["wallet"], "10000000000", "{f}");
    ok(&url, &[&["account", "deposit", "5 RLC"][..], &signer].concat());
    let acc = ok(&url, &[&["account", "show"][..], &signer].concat());
    assert_eq!(acc["balance"], "5000000000", "{acc}");
    ok(&url, &[&["app", "deploy", "--name", "mine", "--multiaddr", "http://x/a.zip"][..], &signer].concat());
}
