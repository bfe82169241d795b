//! Dishonest parties against real processes: a worker that lies in a trust-3 deal (driven by this
//! test through the scheduler's API and the ledger, as an attacker would), and contributions,
//! enclave signatures, reveals and replays the node must refuse, each with its reason and no change.

mod common;
use common::{ok, spawn_worker};
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use veil_core::tx::{Tx, authorization_hash, enclave_message, result_hash, result_seal};
use veil_core::{Address, B256, Call, PrivateKey, U256, keccak256};
use veil_pool::api::{Assignment, Register, Report, ReportOutcome, Session, register_message};
use veil_sdk::Client;

const APP: &str = r#"import os, json
o = os.environ["IEXEC_OUT"]
open(o + "/result.txt", "w").write("the honest answer")
json.dump({"deterministic-output-path": o + "/result.txt"}, open(o + "/computed.json", "w"))
"#;

use common::{Backend, rt};
use veil_sdk::Ledger;

fn addr(v: &Value) -> String {
    v["address"].as_str().unwrap().to_string()
}

/// Everything an account holds: wallet + escrow (free and locked), in nRLC.
fn total(c: &Client, a: Address) -> u128 {
    let acc = rt().block_on(c.account(&a)).unwrap().account;
    (acc.wallet.0 + acc.balance.0 + acc.locked.0).to::<u128>()
}

/// A worker that follows the protocol's messages but contributes `lie` for its first assignment.
fn lie_once(scheduler: &str, ledger: &dyn Ledger, key: &PrivateKey, lie: B256) -> Assignment {
    let (a, token) = serve_once(scheduler, key);
    let me = key.address();
    rt().block_on(async {
        let call = Call::Contribute {
            taskid: a.taskid,
            result_hash: result_hash(&a.taskid, &lie),
            result_seal: result_seal(&me, &a.taskid, &lie),
            enclave_challenge: a.enclave_challenge,
            enclave_sign: None,
            authorization_sign: a.authorization,
        };
        ledger.send(key, call).await.expect("the lie itself is a well-formed contribution");
        let report = Report {
            taskid: a.taskid,
            outcome: ReportOutcome::Contributed { results: "made up".into(), enclave: None },
        };
        let url = format!("{scheduler}/workers/report");
        reqwest::Client::new().post(url).bearer_auth(&token).json(&report).send().await.unwrap();
    });
    a
}

fn a_lying_worker_loses_its_stake_and_the_honest_result_wins(b: Backend) {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let net = common::pool_network_on(b, d, &["1", "3", "4", "5", "6", "7", "8"], "100 RLC");
    let (url, pool, scheduler) = (net.url.clone(), net.pool.clone(), &net.scheduler);
    std::fs::create_dir_all(d.join("app")).unwrap();
    std::fs::write(
        d.join("app/iapp.toml"),
        "name = \"h\"\nruntime = \"process\"\nentrypoint = \"app.py\"\ninterpreter = \"python3\"\n",
    )
    .unwrap();
    std::fs::write(d.join("app/app.py"), APP).unwrap();
    let app = addr(&ok(&url, &["app", "deploy", "--bundle", d.join("app").to_str().unwrap(), "--dev-account", "1"]));
    ok(&url, &["app", "publish", "--app", &app, "--dev-account", "1"]);
    ok(
        &url,
        &["workerpool", "publish", "--workerpool", &pool, "--price", "1 RLC", "--trust", "3", "--dev-account", "3"],
    );

    let c = Client::new(&url);
    let dev_key = |i| b.dev_key(i);
    let (liar, honest) = (dev_key(7), [dev_key(5), dev_key(6), dev_key(8)]);
    let everyone: Vec<Address> = (0..10).map(|i| dev_key(i).address()).collect();
    let sum = |c: &Client| everyone.iter().map(|a| total(c, *a)).sum::<u128>();
    let (liar_before, all_before) = (total(&c, liar.address()), sum(&c));

    let deal = ok(&url, &["run", &app, "--trust", "3", "--no-watch", "--dev-account", "4"]);
    let dealid: B256 = deal["dealid"].as_str().unwrap().parse().unwrap();
    let lie = keccak256(b"a convenient lie");
    let (sched_url, ledger) = (scheduler.url.clone(), net.node.ledger());
    let lied = std::thread::spawn(move || lie_once(&sched_url, ledger.as_ref(), &liar, lie));
    // The liar gets the first replica; then the honest workers come. With fresh scores at trust 3,
    // two agreeing workers do not outweigh one liar (PoCo's consensus needs more): the scheduler
    // keeps adding replicas, and a third honest worker settles it.
    std::thread::sleep(Duration::from_millis(500));
    let _workers: Vec<_> =
        ["5", "6", "8"].iter().map(|acc| spawn_worker(&scheduler.url, &url, acc, &d.join(format!("w{acc}")))).collect();
    let a = lied.join().unwrap();
    assert_eq!(a.dealid, dealid);

    let mut task = Value::Null;
    for _ in 0..300 {
        task = common::veil(&url, &["task", "show", &format!("{:?}", a.taskid)]).unwrap_or_default();
        if task["task"]["status"] == "COMPLETED" || task["status"] == "COMPLETED" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let t = rt().block_on(c.task(&a.taskid)).unwrap().task;
    let replicates = common::veil(&url, &["task", "show", &format!("{:?}", a.taskid), "--scheduler", &scheduler.url]);
    assert_eq!(t.status.to_string(), "COMPLETED", "{task}\nreplicates: {replicates:?}");
    assert_ne!(t.result_digest, lie, "the lie did not win");
    assert!(t.contributors.contains(&dev_key(7).address()), "the liar did contribute: {task}");
    assert_eq!(result_hash(&a.taskid, &t.result_digest), t.consensus_value, "the consensus is the honest digest");
    let liar_after = total(&c, dev_key(7).address());
    assert!(liar_after < liar_before, "the liar lost its stake: {liar_before} → {liar_after}");
    for h in &honest {
        let score = rt().block_on(c.account(&h.address())).unwrap().account.score;
        assert!(score >= 1, "honest workers gain score");
    }
    assert_eq!(rt().block_on(c.account(&dev_key(7).address())).unwrap().account.score, 0);
    assert_eq!(sum(&c), all_before, "RLC moved between accounts, none created or lost");
}

/// A deal of one task on a bare node, initialized by the pool owner; returns the task id.
fn task_on_bare_node(b: Backend, url: &str, ledger: &dyn Ledger, tee: bool) -> B256 {
    // PoCo's asset addresses come from their content: each deal gets assets of its own.
    let tag = if tee { "tee" } else { "0x0" };
    let (name, pool_name) = (format!("a-{tag}"), format!("p-{tag}"));
    let app = addr(&ok(
        url,
        &["app", "deploy", "--name", &name, "--multiaddr", "http://nowhere/app.zip", "--dev-account", "1"],
    ));
    let pool = addr(&ok(url, &["workerpool", "deploy", "--name", &pool_name, "--dev-account", "3"]));
    ok(url, &["app", "publish", "--app", &app, "--tag", tag, "--dev-account", "1"]);
    ok(url, &["workerpool", "publish", "--workerpool", &pool, "--tag", tag, "--dev-account", "3"]);
    let run: Vec<&str> =
        ["run", &app, "--no-watch", "--dev-account", "4"].into_iter().chain(tee.then_some("--tee")).collect();
    let deal: B256 = ok(url, &run)["dealid"].as_str().unwrap().parse().unwrap();
    rt().block_on(ledger.send(&b.dev_key(3), Call::Initialize { dealid: deal, idx: U256::ZERO })).unwrap();
    veil_core::state::task_id(&deal, U256::ZERO)
}

fn forged_contributions_reveals_and_replays_are_refused_with_their_reason(b: Backend) {
    let tmp = tempfile::tempdir().unwrap();
    let node = common::chain(b, &tmp.path().join("node"));
    let url = node.url.clone();
    for i in ["1", "3", "4", "5", "6"] {
        ok(&url, &["account", "deposit", "100 RLC", "--dev-account", i]);
    }
    let ledger = node.ledger();
    let l = ledger.as_ref();
    let (owner, worker, other) = (b.dev_key(3), b.dev_key(5), b.dev_key(6));
    let me = worker.address();
    let digest = keccak256(b"result");
    let contribute = |task: B256, challenge: Address, enclave_sign, auth_by: &PrivateKey| Call::Contribute {
        taskid: task,
        result_hash: result_hash(&task, &digest),
        result_seal: result_seal(&me, &task, &digest),
        enclave_challenge: challenge,
        enclave_sign,
        authorization_sign: auth_by.sign_message_hash(&authorization_hash(&me, &task, &challenge)),
    };
    let refused = |call: Call| -> String {
        match rt().block_on(l.send(&worker, call)) {
            Ok(r) => panic!("accepted: {r:?}"),
            Err(e) => e.to_string(),
        }
    };
    // Veil names the rule; PoCo's task checks are bare `require`s, so the EVM backend says PoCo
    // refused the call and what PoCo checks for it.
    let says = |e: &str, veil_reason: &str| match b {
        Backend::Embedded => assert!(e.contains(veil_reason), "{e}"),
        Backend::Anvil => assert!(e.contains("PoCo refused"), "{e}"),
    };
    let unchanged = |task: &B256| {
        let t = rt().block_on(l.task(task)).unwrap().task;
        assert!(t.contributors.is_empty(), "a refused call changed the task: {t:?}");
    };

    let task = task_on_bare_node(b, &url, l, false);
    let e = refused(contribute(task, Address::ZERO, None, &other));
    says(&e, "worker authorization is not signed by the workerpool owner");
    unchanged(&task);

    let tee_task = task_on_bare_node(b, &url, l, true);
    let e = refused(contribute(tee_task, Address::ZERO, None, &owner));
    says(&e, "needs a non-zero enclave challenge");
    let challenge = PrivateKey::from_seed("the SMS's enclave challenge");
    let forger = PrivateKey::from_seed("not the enclave");
    let rh = result_hash(&tee_task, &digest);
    let rs = result_seal(&me, &tee_task, &digest);
    let forged = forger.sign_message_hash(&enclave_message(&rh, &rs));
    let e = refused(contribute(tee_task, challenge.address(), Some(forged), &owner));
    says(&e, "enclave signature missing or not made by the enclave challenge");
    let e = refused(contribute(tee_task, challenge.address(), None, &owner));
    says(&e, "enclave signature missing");
    unchanged(&tee_task);

    // An honest contribution (trust 1: consensus at once), then a reveal of another digest, then
    // the contribution again.
    rt().block_on(l.send(&worker, contribute(task, Address::ZERO, None, &owner))).unwrap();
    let e = refused(Call::Reveal { taskid: task, result_digest: keccak256(b"something else") });
    says(&e, "revealed digest does not match");
    let e = refused(contribute(task, Address::ZERO, None, &owner));
    says(&e, "is REVEALING, this needs it ACTIVE");
    if b == Backend::Embedded {
        // The same signed transaction replayed byte for byte: refused by its nonce.
        let c = Client::new(&url);
        let info = rt().block_on(c.chain()).unwrap();
        let nonce = rt().block_on(c.account(&me)).unwrap().account.nonce - 1;
        let call = contribute(task, Address::ZERO, None, &owner);
        let stx = Tx { chain_id: info.chain_id, from: me, nonce, call }.sign(&worker);
        let replay = rt().block_on(c.submit(&stx)).unwrap_err().to_string();
        assert!(replay.contains("replayed or out-of-order"), "{replay}");
    }
    let t = rt().block_on(l.task(&task)).unwrap().task;
    assert_eq!(t.contributors, vec![me], "one contribution, counted once");
    assert_eq!(t.reveal_counter, 0, "the wrong reveal left nothing");
}

/// A worker hands the requester a hostile archive (zip-slip and a link) as a trust-1 result;
/// `veil result get` refuses it and writes nothing outside its folder.
fn a_hostile_result_archive_is_refused_by_the_requester(b: Backend) {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let net = common::pool_network_on(b, d, &["1", "3", "4", "7"], "100 RLC");
    let ledger = net.node.ledger();
    let (url, pool, scheduler) = (net.url.clone(), net.pool.clone(), &net.scheduler);
    let app =
        addr(&ok(&url, &["app", "deploy", "--name", "a", "--multiaddr", "http://nowhere/a.zip", "--dev-account", "1"]));
    ok(&url, &["app", "publish", "--app", &app, "--dev-account", "1"]);
    ok(&url, &["workerpool", "publish", "--workerpool", &pool, "--dev-account", "3"]);
    let c = Client::new(&url);
    type Build = fn(&mut zip::ZipWriter<std::io::Cursor<Vec<u8>>>);
    let cases: [(&str, Build); 2] = [
        ("../escaped.txt", |z| {
            z.start_file("../escaped.txt", zip::write::SimpleFileOptions::default()).unwrap();
            std::io::Write::write_all(z, b"outside").unwrap();
        }),
        ("link", |z| {
            z.add_symlink("link", "/etc/passwd", zip::write::SimpleFileOptions::default()).unwrap();
        }),
    ];
    for (name, build) in cases {
        let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        build(&mut z);
        let bytes = z.finish().unwrap().into_inner();
        let blob = rt().block_on(c.upload_bytes(bytes)).unwrap();
        let deal = ok(&url, &["run", &app, "--no-watch", "--dev-account", "4"]);
        let key = b.dev_key(7);
        let (a, _) = serve_once(&scheduler.url, &key);
        assert_eq!(format!("{:?}", a.dealid), deal["dealid"].as_str().unwrap());
        let digest = keccak256(b"whatever");
        let call = Call::ContributeAndFinalize {
            taskid: a.taskid,
            result_digest: digest,
            results: blob.url.clone().into_bytes().into(),
            results_callback: Default::default(),
            enclave_challenge: Address::ZERO,
            enclave_sign: None,
            authorization_sign: a.authorization,
        };
        rt().block_on(ledger.send(&key, call)).unwrap();
        let out = d.join(format!("result-{}", name.replace('/', "_")));
        let e = common::veil(&url, &["result", "get", &format!("{:?}", a.taskid), "--out", out.to_str().unwrap()])
            .expect_err("a hostile archive must be refused");
        assert!(e.contains("refused"), "{name}: {e}");
        assert!(!d.join("escaped.txt").exists() && !out.join("link").exists(), "{name}: nothing written");
    }
}

/// Registers `key` with the scheduler and takes one assignment (with the session's token).
fn serve_once(scheduler: &str, key: &PrivateKey) -> (Assignment, String) {
    let http = reqwest::Client::new();
    rt().block_on(async {
        let ts = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let me = key.address();
        let reg = Register {
            worker: me,
            slots: 1,
            timestamp: ts,
            signature: key.sign_message_hash(&register_message(&me, 1, ts)),
        };
        let s: Session =
            http.post(format!("{scheduler}/workers/register")).json(&reg).send().await.unwrap().json().await.unwrap();
        for _ in 0..3 {
            let r = http.post(format!("{scheduler}/workers/poll")).bearer_auth(&s.token).send().await.unwrap();
            if r.status().as_u16() == 200 {
                return (r.json().await.unwrap(), s.token);
            }
        }
        panic!("the worker never got a replica");
    })
}

/// An app developer ships a bundle with a zip-slip entry and a link: the worker refuses to unpack
/// it, says why, and nothing lands outside its folder.
fn a_hostile_app_bundle_is_refused_by_the_worker(b: Backend) {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let net = common::pool_network_on(b, d, &["1", "3", "4", "5"], "100 RLC");
    let ledger = net.node.ledger();
    let (url, pool, scheduler) = (net.url.clone(), net.pool.clone(), &net.scheduler);
    let _worker = spawn_worker(&scheduler.url, &url, "5", &d.join("w5"));
    ok(&url, &["workerpool", "publish", "--workerpool", &pool, "--dev-account", "3"]);
    let c = Client::new(&url);
    for (name, evil) in [("zip-slip", "../../../evil.sh"), ("absolute", "/tmp/veil-evil.sh")] {
        let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let o = zip::write::SimpleFileOptions::default();
        z.start_file("iapp.toml", o).unwrap();
        std::io::Write::write_all(&mut z, b"name = \"evil\"\nruntime = \"process\"\nentrypoint = \"run.sh\"\n")
            .unwrap();
        z.start_file("run.sh", o).unwrap();
        std::io::Write::write_all(&mut z, b"#!/bin/sh\n").unwrap();
        z.start_file(evil, o).unwrap();
        std::io::Write::write_all(&mut z, b"#!/bin/sh\necho pwned\n").unwrap();
        let bytes = z.finish().unwrap().into_inner();
        let checksum = B256::from_slice(&<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        let blob = rt().block_on(c.upload_bytes(bytes)).unwrap();
        let call = Call::CreateApp {
            name: name.into(),
            app_type: "VEIL".into(),
            multiaddr: blob.url,
            checksum,
            mrenclave: String::new(),
        };
        let app = rt().block_on(ledger.send(&b.dev_key(1), call)).unwrap();
        let app = match &app.events[0] {
            veil_core::events::Event::AppCreated { app, .. } => format!("{app:?}"),
            e => panic!("{e:?}"),
        };
        ok(&url, &["app", "publish", "--app", &app, "--dev-account", "1"]);
        let deal = ok(&url, &["run", &app, "--no-watch", "--dev-account", "4"]);
        let task =
            format!("{:?}", veil_core::state::task_id(&deal["dealid"].as_str().unwrap().parse().unwrap(), U256::ZERO));
        let mut cause = String::new();
        for _ in 0..100 {
            // The task may not be initialized yet: only an answer with a cause ends the wait.
            let t = common::veil(&url, &["task", "show", &task, "--scheduler", &scheduler.url]).unwrap_or_default();
            if let Some(c) = t["replicates"][0]["cause"].as_str() {
                cause = c.to_string();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(cause.contains("unsafe archive entry"), "{name}: `{cause}`");
    }
    assert!(!std::path::Path::new("/tmp/veil-evil.sh").exists());
    let escaped: Vec<_> = walk_all(d).into_iter().filter(|p| p.ends_with("evil.sh")).collect();
    assert!(escaped.is_empty(), "{escaped:?}");
}

fn walk_all(d: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk_all(&p));
        }
        out.push(p);
    }
    out
}

on_both_ledgers!(
    a_lying_worker_loses_its_stake_and_the_honest_result_wins,
    forged_contributions_reveals_and_replays_are_refused_with_their_reason,
    a_hostile_result_archive_is_refused_by_the_requester,
    a_hostile_app_bundle_is_refused_by_the_worker,
);
