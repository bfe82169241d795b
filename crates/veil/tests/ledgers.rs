//! One CLI body, two ledgers: the README's ledger commands run through the real `veil` binary on
//! Veil's embedded ledger (`veil node --dev`) and on iExec's PoCo on anvil (`veil evm anvil`, then
//! `--rpc/--hub`), and give the same results: balances, locked amounts, deal fields, refusals.

mod common;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// How the commands reach a ledger.
struct Backend {
    name: &'static str,
    args: Vec<String>,
    env: Vec<(String, String)>,
    key: fn(usize) -> String,
    _child: Option<Killed>,
    _node: Option<common::Service>,
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        // SIGTERM: anvil writes its state, then exits.
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

impl Backend {
    fn run(&self, args: &[&str]) -> Result<Value, String> {
        let out = Command::new(env!("CARGO_BIN_EXE_veil"))
            .args(&self.args)
            .args(args)
            .arg("--json")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("VEIL_RPC")
            .env_remove("VEIL_HUB")
            .output()
            .expect("run veil");
        let v: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("{args:?}: not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))?;
        if out.status.success() { Ok(v) } else { Err(v["error"].as_str().unwrap_or("").to_string()) }
    }

    fn ok(&self, args: &[&str]) -> Value {
        self.run(args).unwrap_or_else(|e| panic!("{}: veil {args:?} failed: {e}", self.name))
    }
}

fn node_backend(dir: &Path) -> Backend {
    let node = common::dev_node(&dir.join("node"));
    Backend {
        name: "embedded ledger",
        args: vec![],
        env: vec![("VEIL_NODE".into(), node.url.clone()), ("VEIL_HOME".into(), dir.display().to_string())],
        key: |i| hex::encode(veil_node::dev::dev_key(i).secret_bytes()),
        _child: None,
        _node: Some(node),
    }
}

fn anvil_backend(dir: &Path) -> Backend {
    let mut child = Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(["evm", "anvil", "--json", "--port", "0", "--data-dir"])
        .arg(dir.join("anvil"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start veil evm anvil");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("ready line");
    let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad ready line `{line}`: {e}"));
    let rpc = ready["rpc"].as_str().expect("rpc").to_string();
    let hub = ready["hub"].as_str().expect("hub").to_string();
    Backend {
        name: "PoCo on anvil",
        args: vec!["--rpc".into(), rpc, "--hub".into(), hub],
        env: vec![("VEIL_HOME".into(), dir.display().to_string()), ("VEIL_NODE".into(), "http://127.0.0.1:1".into())],
        key: |i| veil_evm::anvil::ANVIL_KEYS[i].to_string(),
        _child: Some(Killed(child)),
        _node: None,
    }
}

fn wallet(b: &Backend, dir: &Path, i: usize) -> String {
    let key = dir.join(format!("key{i}"));
    std::fs::write(&key, (b.key)(i)).unwrap();
    std::fs::write(dir.join("pw"), "pw\n").unwrap();
    let out = dir.join(format!("wallet{i}.json"));
    let (k, o, p) = (key.to_str().unwrap(), out.to_str().unwrap(), dir.join("pw"));
    b.ok(&["wallet", "import", "--private-key-file", k, "--password-file", p.to_str().unwrap(), "--light", "--out", o]);
    o.to_string()
}

/// Signs an order file with wallet `w`; returns the signed file's path.
fn signed(b: &Backend, dir: &Path, name: &str, kind: &str, order: Value, w: &str, domain: &[String]) -> String {
    let f = dir.join(format!("{name}.json"));
    std::fs::write(&f, order.to_string()).unwrap();
    let out = dir.join(format!("{name}.signed.json"));
    let pw = dir.join("pw");
    let mut args =
        vec!["order", "sign", kind, f.to_str().unwrap(), "--wallet", w, "--password-file", pw.to_str().unwrap()];
    args.extend(["--out", out.to_str().unwrap()]);
    args.extend(domain.iter().map(String::as_str));
    b.ok(&args);
    out.display().to_string()
}

const ZERO: &str = "0x0000000000000000000000000000000000000000";

/// The scripted session; returns what a user sees that must not depend on the ledger.
fn session(b: &Backend, dir: &Path) -> Vec<(String, Value)> {
    let mut seen = vec![];
    let mut note = |what: &str, v: Value| seen.push((what.to_string(), v));
    note("requester before", b.ok(&["account", "show", "--dev-account", "4"])["wallet"].clone());
    for who in ["3", "4"] {
        let v = b.ok(&["account", "deposit", "100 RLC", "--dev-account", who]);
        note("deposit", json!([v["account"]["balance"], v["account"]["locked"]]));
    }
    let app = b.ok(&[
        "app",
        "deploy",
        "--name",
        "hello",
        "--multiaddr",
        "registry.example/hello:1",
        "--app-type",
        "DOCKER",
        "--dev-account",
        "1",
    ]);
    let dataset = b.ok(&["dataset", "deploy", "--name", "data", "--multiaddr", "/ipfs/x", "--dev-account", "2"]);
    let pool = b.ok(&["workerpool", "deploy", "--name", "pool", "--dev-account", "3"]);
    let (app, dataset, pool) =
        (app["address"].as_str().unwrap(), dataset["address"].as_str().unwrap(), pool["address"].as_str().unwrap());
    // The orders, signed by their owners' wallets with the ledger's domain.
    let domain = b.args.clone();
    let w: Vec<String> = (0..5).map(|i| if i == 0 { String::new() } else { wallet(b, dir, i) }).collect();
    let requester = b.ok(&["account", "show", "--dev-account", "4"])["address"].as_str().unwrap().to_string();
    let salt = |n: u8| format!("0x{}", hex::encode([n; 32]));
    let app_o = signed(
        b,
        dir,
        "app",
        "app",
        json!({"app": app, "appprice": "3000", "volume": "5", "tag": "0x0", "datasetrestrict": ZERO, "workerpoolrestrict": ZERO, "requesterrestrict": ZERO, "salt": salt(1)}),
        &w[1],
        &domain,
    );
    let ds_o = signed(
        b,
        dir,
        "dataset",
        "dataset",
        json!({"dataset": dataset, "datasetprice": "2000", "volume": "5", "tag": "0x0", "apprestrict": app, "workerpoolrestrict": ZERO, "requesterrestrict": requester, "salt": salt(2)}),
        &w[2],
        &domain,
    );
    let pool_o = signed(
        b,
        dir,
        "pool",
        "workerpool",
        json!({"workerpool": pool, "workerpoolprice": "1000000000", "volume": "5", "tag": "0x0", "category": "0", "trust": "1", "apprestrict": ZERO, "datasetrestrict": ZERO, "requesterrestrict": ZERO, "salt": salt(3)}),
        &w[3],
        &domain,
    );
    let request = |n: u8, volume: &str| json!({"app": app, "appmaxprice": "3000", "dataset": dataset, "datasetmaxprice": "2000", "workerpool": ZERO, "workerpoolmaxprice": "1000000000", "requester": requester, "volume": volume, "tag": "0x0", "category": "0", "trust": "1", "beneficiary": requester, "callback": ZERO, "params": "{\"iexec_args\":\"hi\"}", "salt": salt(n)});
    let req_o = signed(b, dir, "request", "request", request(4, "2"), &w[4], &domain);
    let m = b.ok(&[
        "order",
        "match",
        "--app",
        &app_o,
        "--dataset",
        &ds_o,
        "--workerpool",
        &pool_o,
        "--request",
        &req_o,
        "--dev-account",
        "4",
    ]);
    let dealid = m["dealid"].as_str().unwrap().to_string();
    let deal = b.ok(&["deal", "show", &dealid]);
    for f in ["trust", "category", "tag", "params", "botFirst", "botSize", "workerStake", "schedulerRewardRatio"] {
        note(&format!("deal {f}"), deal[f].clone());
    }
    note("deal prices", json!([deal["app"]["price"], deal["dataset"]["price"], deal["workerpool"]["price"]]));
    let acc = b.ok(&["account", "show", "--dev-account", "4"]);
    note("requester after match", json!([acc["balance"], acc["locked"], acc["wallet"]]));
    let acc = b.ok(&["account", "show", "--dev-account", "3"]);
    note("pool owner after match", json!([acc["balance"], acc["locked"]]));
    // The same request again: its volume is used up (0x60) on both.
    let again = b.run(&[
        "order",
        "match",
        "--app",
        &app_o,
        "--dataset",
        &ds_o,
        "--workerpool",
        &pool_o,
        "--request",
        &req_o,
        "--dev-account",
        "4",
    ]);
    note("match again", json!(again.err().map(|e| e.contains("0x60"))));
    // Cancelled app order: no volume left either.
    b.ok(&["order", "cancel", "app", &app_o, "--dev-account", "1"]);
    let req2 = signed(b, dir, "request2", "request", request(5, "1"), &w[4], &domain);
    let cancelled = b.run(&[
        "order",
        "match",
        "--app",
        &app_o,
        "--dataset",
        &ds_o,
        "--workerpool",
        &pool_o,
        "--request",
        &req2,
        "--dev-account",
        "4",
    ]);
    note("match cancelled", json!(cancelled.err().map(|e| e.contains("0x60"))));
    // A task not initialized yet is not found; a wrong signer is refused with a reason.
    let taskid = format!("{:?}", veil_core::state::task_id(&dealid.parse().unwrap(), veil_core::U256::ZERO));
    note("task before init", json!(b.run(&["task", "show", &taskid]).is_err()));
    let err = b.run(&["account", "withdraw", "100000 RLC", "--dev-account", "4"]).expect_err("overdraw");
    note("overdraw refused", json!(!err.is_empty()));
    let v = b.ok(&["account", "withdraw", "10 RLC", "--dev-account", "4"]);
    note("withdraw", json!([v["account"]["balance"], v["account"]["locked"]]));
    let owned = |who: &str| b.ok(&["data", "list", "--dev-account", who]).as_array().map(Vec::len);
    note("datasets before transfer", json!([owned("2"), owned("4")]));
    let v = b.ok(&["data", "transfer", "--dataset", dataset, "--to", &requester, "--dev-account", "2"]);
    note("transfer", json!(v.is_object()));
    note("datasets after transfer", json!([owned("2"), owned("4")]));
    seen
}

#[test]
fn the_ledger_commands_give_the_same_results_on_both_ledgers() {
    let d1 = tempfile::tempdir().unwrap();
    let on_veil = session(&node_backend(d1.path()), d1.path());
    let d2 = tempfile::tempdir().unwrap();
    let on_poco = session(&anvil_backend(d2.path()), d2.path());
    assert_eq!(on_veil.len(), on_poco.len());
    for ((what, v), (_, p)) in on_veil.iter().zip(&on_poco) {
        assert_eq!(v, p, "{what}: embedded ledger {v} / PoCo {p}");
    }
    let seen = |what: &str| on_poco.iter().find(|(w, _)| w == what).map(|(_, v)| v.clone());
    assert_eq!(seen("datasets before transfer"), Some(json!([1, 0])));
    assert_eq!(seen("datasets after transfer"), Some(json!([0, 1])));
    assert_eq!(seen("match again"), Some(json!(true)));
}

/// `veil data protect` on PoCo: the blob in a standalone storage, the dataset registered on PoCo, its
/// key accepted by an SMS that checks the owner on PoCo (and refused from anyone else).
#[test]
fn data_protect_on_poco_with_an_sms_that_asks_poco() {
    let d = tempfile::tempdir().unwrap();
    let b = anvil_backend(d.path());
    let p = |s: &str| d.path().join(s).display().to_string();
    let storage = common::spawn(&["storage", "--data-dir", &p("storage")], Stdio::null());
    let mut sms_args: Vec<&str> = vec!["sms", "--dev", "--data-dir"];
    let sms_dir = p("sms");
    sms_args.push(&sms_dir);
    sms_args.extend(b.args.iter().map(String::as_str));
    let sms = common::spawn(&sms_args, Stdio::null());
    assert!(sms.ready["ledger"].as_str().unwrap().contains("PoCo hub"), "{}", sms.ready);
    std::fs::write(d.path().join("secret.txt"), "only for the enclave").unwrap();
    let f = p("secret.txt");
    let v = b.ok(&[
        "data",
        "protect",
        &f,
        "--name",
        "notes",
        "--dev-account",
        "2",
        "--storage",
        &storage.url,
        "--sms",
        &sms.url,
    ]);
    let dataset = v["dataset"].as_str().unwrap().to_string();
    assert!(v["multiaddr"].as_str().unwrap().starts_with(&storage.url));
    // PoCo has it, with the stored file's checksum.
    let listed = b.ok(&["data", "list", "--dev-account", "2"]);
    let entry = listed.as_array().unwrap().iter().find(|e| e["address"].as_str() == Some(dataset.as_str())).cloned();
    assert_eq!(entry.unwrap()["checksum"], v["checksum"]);
    // The SMS holds the key; a push for that dataset by another account is refused (owner per PoCo).
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let c = veil_sdk::Client::new(&sms.url);
    let addr: veil_core::Address = dataset.parse().unwrap();
    let kind = veil_sdk::SecretKind::DatasetKey;
    assert!(rt.block_on(c.sms_exists(kind, &addr, "")).unwrap(), "the key is in the SMS");
    let intruder = veil_core::PrivateKey::from_hex(veil_evm::anvil::ANVIL_KEYS[5]).unwrap();
    let refused = rt
        .block_on(c.sms_push(kind, &addr, "", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", &intruder))
        .expect_err("not the owner");
    assert!(refused.to_string().contains("owner"), "{refused}");
}
