//! Storage and SMS as separate processes on loopback (the SMS asks the node over HTTP).

mod common;
use serde_json::Value;
use std::process::{Command, Stdio};

fn spawn(args: &[&str]) -> (common::Service, String) {
    let s = common::spawn(args, Stdio::null());
    let url = s.url.clone();
    (s, url)
}

#[test]
fn protect_through_separate_storage_and_sms() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (_node, node) = spawn(&["node", "--dev", "--no-services", "--data-dir", &format!("{d}/node")]);
    let (_storage, storage) = spawn(&["storage", "--data-dir", &format!("{d}/storage")]);
    let (_sms, sms) = spawn(&["sms", "--dev", "--node", &node, "--data-dir", &format!("{d}/sms")]);
    std::fs::write(dir.path().join("f"), b"standalone").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(["data", "protect", &format!("{d}/f"), "--name", "s", "--dev-account", "1", "--json"])
        .args(["--node", &node, "--storage", &storage, "--sms", &sms])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["multiaddr"].as_str().unwrap().starts_with(&storage));
    let dataset = v["address"].as_str().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let exists = rt.block_on(async {
        reqwest::get(format!("{sms}/sms/dataset-key/{dataset}")).await.unwrap().json::<Value>().await.unwrap()
    });
    assert_eq!(exists["exists"], true);
    // The node serves no storage or SMS of its own here.
    let status =
        rt.block_on(async { reqwest::get(format!("{node}/sms/dataset-key/{dataset}")).await.unwrap().status() });
    assert_eq!(status.as_u16(), 404);
}

/// The whole network as separate processes on loopback, as on separate machines: a ledger-only
/// node, storage, SMS, a scheduler and a worker; a confidential task goes through all of them.
#[test]
fn every_service_as_its_own_process_runs_a_confidential_task() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let p = |s: &str| d.join(s).to_str().unwrap().to_string();
    let (_node, node) = spawn(&["node", "--dev", "--no-services", "--data-dir", &p("node")]);
    let (_storage, storage) = spawn(&["storage", "--data-dir", &p("storage")]);
    let sms_args = ["sms", "--dev", "--node", &node, "--data-dir", &p("sms")];
    let (sms_service, sms) = spawn(&sms_args);
    let ok = |args: &[&str]| common::ok_in(d, &node, args);
    for i in ["1", "2", "3", "4", "5"] {
        ok(&["account", "deposit", "100 RLC", "--dev-account", i]);
    }
    let pool = ok(&["workerpool", "deploy", "--name", "loopback", "--dev-account", "3"]);
    let pool = pool["address"].as_str().unwrap().to_string();
    let sched_args = [
        "scheduler",
        "--workerpool",
        &pool,
        "--dev-account",
        "3",
        "--node",
        &node,
        "--sms",
        &sms,
        "--data-dir",
        &p("sched"),
    ];
    let (_scheduler, scheduler) = spawn(&sched_args);
    let _worker = common::Service {
        child: Command::new(env!("CARGO_BIN_EXE_veil"))
            .args(["worker", "--scheduler", &scheduler, "--node", &node, "--storage", &storage, "--sms", &sms])
            .args(["--dev-account", "5", "--work-dir", &p("worker")])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        url: String::new(),
        ready: Value::Null,
    };
    ok(&["workerpool", "publish", "--workerpool", &pool, "--tag", "tee", "--dev-account", "3"]);

    ok(&["app", "init", "greeter", "--template", "python"]);
    let app = ok(&["app", "deploy", "--bundle", &p("greeter"), "--storage", &storage, "--dev-account", "1"]);
    assert!(app["multiaddr"].as_str().unwrap().starts_with(&storage), "{app}");
    let app = app["address"].as_str().unwrap().to_string();
    ok(&["app", "publish", "--app", &app, "--tag", "tee", "--dev-account", "1"]);

    std::fs::write(d.join("person.json"), r#"{"name": "Grace"}"#).unwrap();
    let data = ["data", "protect", "--json", &p("person.json"), "--name", "g", "--storage", &storage, "--sms", &sms];
    let ds = ok(&[&data[..], &["--key-out", &p("dataset.key"), "--dev-account", "2"]].concat());
    let ds = ds["address"].as_str().unwrap().to_string();
    ok(&["data", "grant", "--dataset", &ds, "--app", &app, "--dev-account", "2"]);
    const SECRET: &str = "s3cr3t-value-4f9a1c";
    ok(&["requester", "push-secret", "token", "--value", SECRET, "--sms", &sms, "--dev-account", "4"]);
    ok(&["result", "generate-keypair", "--out", &p("keys"), "--bits", "2048"]);
    let key_file = p("keys/result-key.pub.pem");
    ok(&["result", "push-key", "--key-file", &key_file, "--sms", &sms, "--dev-account", "4"]);

    // kill -9 the SMS and start it again on the same address and folder: the secrets are still
    // there (the task below needs all of them), and on disk they are sealed.
    drop(sms_service);
    let listen = sms.trim_start_matches("http://").to_string();
    let _sms_again = common::spawn_at(&sms_args, Stdio::null(), "warn", &listen);
    let dataset_key = std::fs::read_to_string(d.join("dataset.key")).unwrap();
    for f in walk(&d.join("sms")) {
        let bytes = std::fs::read(&f).unwrap();
        for plain in [SECRET.as_bytes(), dataset_key.trim().as_bytes()] {
            assert!(!bytes.windows(plain.len()).any(|w| w == plain), "{} holds a secret in clear", f.display());
        }
    }

    let run = ok(&[
        "run",
        &app,
        "--tee",
        "--dataset",
        &ds,
        "--args",
        "loopback",
        "--secret",
        "1=token",
        "--encrypt-result",
        "--dev-account",
        "4",
        "--timeout",
        "120",
    ]);
    assert_eq!(run["tasks"][0]["status"], "COMPLETED", "{run}");
    let record: Value = serde_json::from_str(run["tasks"][0]["results"].as_str().unwrap()).unwrap();
    assert!(record["url"].as_str().unwrap().starts_with(&storage), "{run}");
    let task = run["tasks"][0]["taskid"].as_str().unwrap();
    ok(&["result", "get", task, "--key", &p("keys/result-key.pem"), "--out", &p("result")]);
    let text = std::fs::read_to_string(d.join("result/result.txt")).unwrap();
    assert_eq!(text, "Hello, loopback!\nprotected data: name=Grace\nrequester secret 1: 19 characters\n");
    let logs = ok(&["task", "debug", task, "--scheduler", &scheduler, "--dev-account", "4"]);
    assert!(logs["runs"][0]["stdout"].as_str().unwrap().contains("greeter starts"), "{logs}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}
