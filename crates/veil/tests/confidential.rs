//! Confidential tasks end to end with the real binary: a protected dataset, requester and app
//! secrets and an encrypted result through node, SMS (dev mode, `sim` enclaves), scheduler, worker
//! and enclave processes; plaintext never outside the enclave's folder; SMS refusals by rule.

mod common;
use common::{Backend, Chain, Service, ok, spawn, veil};
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;

const MARKER: &str = "VEIL-PLAINTEXT-MARKER-5d1c";

const APP: &str = r#"import os, json
i, o = os.environ["IEXEC_IN"], os.environ["IEXEC_OUT"]
data = open(os.path.join(i, os.environ["IEXEC_DATASET_FILENAME"])).read()
text = "data=%s;secret=%s;dev=%s" % (data, os.environ.get("IEXEC_REQUESTER_SECRET_1"), os.environ.get("IEXEC_APP_DEVELOPER_SECRET"))
open(o + "/result.txt", "w").write(text)
json.dump({"deterministic-output-path": o + "/result.txt"}, open(o + "/computed.json", "w"))
"#;

fn addr(v: &Value) -> String {
    v["address"].as_str().unwrap().to_string()
}

struct Net {
    node: Chain,
    _scheduler: Service,
    _worker: Service,
    app: String,
    dataset: String,
}

fn network(b: Backend, d: &Path) -> Net {
    network_with(b, d, &[])
}

/// [`network`] with extra flags for its worker.
fn network_with(b: Backend, d: &Path, worker_flags: &[&str]) -> Net {
    let node = common::chain(b, &d.join("node"));
    let url = node.url.clone();
    for i in ["1", "2", "3", "4", "5"] {
        ok(&url, &["account", "deposit", "100 RLC", "--dev-account", i]);
    }
    let pool = addr(&ok(&url, &["workerpool", "deploy", "--name", "tee-pool", "--dev-account", "3"]));
    let sched_dir = d.join("sched").to_str().unwrap().to_string();
    let args = ["scheduler", "--workerpool", &pool, "--dev-account", "3", "--node", &url, "--data-dir", &sched_dir];
    let scheduler = spawn(&args, Stdio::null());
    let worker = common::spawn_worker_with(&scheduler.url, &url, "5", &d.join("worker"), worker_flags);
    std::fs::create_dir_all(d.join("app")).unwrap();
    std::fs::write(
        d.join("app/iapp.toml"),
        "name = \"t\"\nruntime = \"process\"\nentrypoint = \"app.py\"\ninterpreter = \"python3\"\n",
    )
    .unwrap();
    std::fs::write(d.join("app/app.py"), APP).unwrap();
    let app = addr(&ok(&url, &["app", "deploy", "--bundle", d.join("app").to_str().unwrap(), "--dev-account", "1"]));
    ok(&url, &["app", "publish", "--app", &app, "--tag", "tee", "--dev-account", "1"]);
    ok(&url, &["workerpool", "publish", "--workerpool", &pool, "--tag", "tee", "--dev-account", "3"]);
    std::fs::write(d.join("secret.txt"), MARKER).unwrap();
    let ds =
        ok(&url, &["data", "protect", d.join("secret.txt").to_str().unwrap(), "--name", "s", "--dev-account", "2"]);
    let dataset = addr(&ds);
    let requester = b.address(4);
    ok(
        &url,
        &[
            "data",
            "grant",
            "--dataset",
            &dataset,
            "--app",
            &app,
            "--requester",
            &requester,
            "--access-count",
            "5",
            "--dev-account",
            "2",
        ],
    );
    ok(&url, &["requester", "push-secret", "api-token", "--value", "tok-123", "--dev-account", "4"]);
    ok(&url, &["app", "push-secret", "--app", &app, "--value", "dev-456", "--dev-account", "1"]);
    Net { node, _scheduler: scheduler, _worker: worker, app, dataset }
}

fn http_get(url: &str) -> Vec<u8> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async { reqwest::get(url).await.unwrap().bytes().await.unwrap().to_vec() })
}

fn http_post(url: &str, body: &impl serde::Serialize) -> (u16, Value) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let r = reqwest::Client::new().post(url).json(body).send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    })
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_with(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = vec![];
    let Ok(entries) = std::fs::read_dir(dir) else { return hits };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            hits.extend(files_with(&p, needle));
        } else if std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle)) {
            hits.push(p.display().to_string());
        }
    }
    hits
}

fn a_confidential_task_keeps_data_and_result_sealed(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let n = network(b, d);
    let url = &n.node.url;
    let keys = d.join("keys");
    ok(url, &["result", "generate-keypair", "--bits", "2048", "--out", keys.to_str().unwrap()]);
    let public = keys.join("result-key.pub.pem");
    ok(url, &["result", "push-key", "--key-file", public.to_str().unwrap(), "--dev-account", "4"]);
    let r = ok(
        url,
        &[
            "run",
            &n.app,
            "--tee",
            "--dataset",
            &n.dataset,
            "--secret",
            "1=api-token",
            "--encrypt-result",
            "--dev-account",
            "4",
            "--timeout",
            "60",
        ],
    );
    let task = &r["tasks"][0];
    assert_eq!(task["status"], "COMPLETED", "{r}");
    let taskid = task["taskid"].as_str().unwrap();
    let shown = ok(url, &["task", "show", taskid]);
    assert_eq!(shown["enclave"]["notice"], "simulated enclave: no hardware protection", "{shown}");

    // The beneficiary's key opens the result; without a key, or with another one, it stays closed.
    let out = d.join("result");
    let private = keys.join("result-key.pem");
    ok(url, &["result", "get", taskid, "--out", out.to_str().unwrap(), "--key", private.to_str().unwrap()]);
    let text = std::fs::read_to_string(out.join("result.txt")).unwrap();
    assert_eq!(text, format!("data={MARKER};secret=tok-123;dev=dev-456"));
    let err = veil(url, &["result", "get", taskid, "--out", d.join("r2").to_str().unwrap()]).unwrap_err();
    assert!(err.contains("encrypted"), "{err}");
    let other = d.join("other");
    ok(url, &["result", "generate-keypair", "--bits", "2048", "--out", other.to_str().unwrap()]);
    let enc = d.join("encrypted.zip");
    let record: Value = serde_json::from_str(task["results"].as_str().unwrap()).unwrap();
    assert_eq!(record["storage"], "ipfs", "iExec's form: {record}");
    let url_of_result = record["url"].as_str().unwrap();
    // The same bytes through the IPFS gateway path the iExec SDK uses.
    let gateway = format!("{url}{}", record["location"].as_str().unwrap());
    assert_eq!(http_get(&gateway), http_get(url_of_result));
    std::fs::write(&enc, http_get(url_of_result)).unwrap();
    let other_key = other.join("result-key.pem");
    let err =
        veil(url, &["result", "decrypt", enc.to_str().unwrap(), "--key", other_key.to_str().unwrap()]).unwrap_err();
    assert!(err.contains("another beneficiary") || err.contains("cannot decrypt"), "{err}");

    // The plaintext (dataset and result) is nowhere on disk but in the test's own files, and the
    // enclave's working folder is gone.
    let hits: Vec<String> = files_with(d, MARKER.as_bytes())
        .into_iter()
        .filter(|p| !p.ends_with("secret.txt") && !p.starts_with(out.to_str().unwrap()))
        .collect();
    assert!(hits.is_empty(), "plaintext found in {hits:?}");
    let enclaves = d.join("worker/enclaves");
    assert_eq!(std::fs::read_dir(&enclaves).map(|e| e.count()).unwrap_or(0), 0, "enclave folders left behind");

    // DataProtector's processProtectedData: run, wait, download, decrypt, print.
    let p = ok(
        url,
        &[
            "data",
            "process",
            "--dataset",
            &n.dataset,
            "--app",
            &n.app,
            "--secret",
            "1=api-token",
            "--dev-account",
            "4",
            "--timeout",
            "60",
        ],
    );
    assert_eq!(p["result"], format!("data={MARKER};secret=tok-123;dev=dev-456"));
}

/// The deal's first task, once its replicate failed (as the scheduler tells it): (task id, task).
fn failed_first_task(n: &Net, dealid: &str) -> (String, Value) {
    let url = &n.node.url;
    let deal = ok(url, &["deal", "show", dealid]);
    let first: u64 = deal["botFirst"].as_str().unwrap().parse().unwrap();
    let taskid = format!("{:?}", veil_core::state::task_id(&dealid.parse().unwrap(), veil_core::U256::from(first)));
    let t0 = std::time::Instant::now();
    loop {
        let t = veil(url, &["task", "show", &taskid, "--scheduler", &n._scheduler.url]).unwrap_or_default();
        if t["replicates"][0]["status"] == "failed" {
            return (taskid, t);
        }
        assert!(t0.elapsed().as_secs() < 30, "no refusal: {t}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn requests_the_sms_refuses_name_their_rule(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let n = network(b, d);
    let url = &n.node.url;
    // Asking for a secret the requester never pushed: the enclave's session is refused by rule.
    let r = veil(
        url,
        &["run", &n.app, "--tee", "--dataset", &n.dataset, "--secret", "1=missing", "--no-watch", "--dev-account", "4"],
    )
    .unwrap();
    let (taskid, t) = failed_first_task(&n, r["dealid"].as_str().unwrap());
    let cause = t["replicates"][0]["cause"].as_str().unwrap().to_string();
    assert!(cause.contains("requester-secret") && cause.contains("missing"), "{cause}");
    assert!(!cause.contains("tok-123"), "{cause}");

    // A standalone SMS not in dev mode refuses `sim` evidence, by rule.
    let sms = spawn(&["sms", "--node", url, "--data-dir", d.join("sms2").to_str().unwrap()], Stdio::null());
    let (_, nonce) = http_post(&format!("{}/sms/challenge", sms.url), &serde_json::json!({}));
    let key = veil_tee::SessionKey::generate();
    let ev = veil_tee::SimEvidence::new(
        veil_core::B256::ZERO,
        key.public(),
        taskid.parse().unwrap(),
        nonce["challenge"].as_str().unwrap().parse().unwrap(),
    );
    let body = veil_tee::SessionRequest { evidence: veil_tee::Evidence::Sim(ev) };
    let (status, v) = http_post(&format!("{}/sms/sessions", sms.url), &body);
    assert_eq!(status, 403);
    assert!(v["error"].as_str().unwrap().contains("rule `evidence`"), "{v}");

    // A genuine TDX quote (dcap-qvl's sample) whose collateral expired in 2025: refused by rule `quote`.
    let samples = concat!(env!("CARGO_MANIFEST_DIR"), "/../veil-tee/tests/dcap/");
    let (_, nonce) = http_post(&format!("{}/sms/challenge", sms.url), &serde_json::json!({}));
    let ev = veil_tee::appraise::QuoteEvidence {
        quote: std::fs::read(format!("{samples}tdx_quote")).unwrap().into(),
        collateral: std::fs::read_to_string(format!("{samples}tdx_quote_collateral.json")).unwrap(),
        session_key: key.public().into(),
        taskid: taskid.parse().unwrap(),
        nonce: nonce["challenge"].as_str().unwrap().parse().unwrap(),
        event_log: vec![],
    };
    let body = veil_tee::SessionRequest { evidence: veil_tee::Evidence::Tdx(ev) };
    let (status, v) = http_post(&format!("{}/sms/sessions", sms.url), &body);
    assert_eq!(status, 403);
    assert!(v["error"].as_str().unwrap().contains("rule `quote`"), "{v}");

    // An SMS keeping its own collateral ignores the enclave's: with its PCCS unreachable and nothing
    // cached, the quote is refused by rule `collateral` (fail closed).
    let sms = spawn(
        &["sms", "--node", url, "--data-dir", d.join("sms3").to_str().unwrap(), "--pccs-url", "http://127.0.0.1:9"],
        Stdio::null(),
    );
    let policy: Value = serde_json::from_slice(&http_get(&format!("{}/sms/policy", sms.url))).unwrap();
    assert_eq!(policy["collateral"]["pccs"], "http://127.0.0.1:9", "{policy}");
    let (_, nonce) = http_post(&format!("{}/sms/challenge", sms.url), &serde_json::json!({}));
    let mut body = body;
    if let veil_tee::Evidence::Tdx(q) = &mut body.evidence {
        q.nonce = nonce["challenge"].as_str().unwrap().parse().unwrap();
    }
    let (status, v) = http_post(&format!("{}/sms/sessions", sms.url), &body);
    assert_eq!(status, 403);
    let e = v["error"].as_str().unwrap();
    assert!(e.contains("rule `collateral`") && e.contains("cannot reach"), "{v}");
}

/// A worker told to use TDX on a machine that is not a TD says so and refuses TEE tasks with the
/// cause, once (no retry can fix it).
fn a_worker_without_its_tee_platform_refuses_tee_tasks(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let missing = d.join("no-tsm");
    let n = network_with(b, d, &["--tee-platform", "tdx", "--tsm-dir", missing.to_str().unwrap()]);
    let url = &n.node.url;
    let r = veil(url, &["run", &n.app, "--tee", "--no-watch", "--dev-account", "4"]).unwrap();
    let (_, t) = failed_first_task(&n, r["dealid"].as_str().unwrap());
    let cause = t["replicates"][0]["cause"].as_str().unwrap();
    assert!(cause.contains("cannot run TEE tasks") && cause.contains("no configfs-tsm"), "{cause}");
    assert_eq!(t["replicates"][0]["attempts"], 1, "{t}");
}

fn grants_decide_who_gets_a_deal_on_protected_data(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let n = network(b, d);
    let url = &n.node.url;
    // Another TEE app that no grant names: no dataset order lets it use the data.
    let other = addr(&ok(
        url,
        &["app", "deploy", "--bundle", d.join("app").to_str().unwrap(), "--name", "other", "--dev-account", "1"],
    ));
    ok(url, &["app", "publish", "--app", &other, "--tag", "tee", "--dev-account", "1"]);
    let run = |app: &str| {
        veil(
            url,
            &[
                "run",
                app,
                "--tee",
                "--dataset",
                &n.dataset,
                "--secret",
                "1=api-token",
                "--no-watch",
                "--dev-account",
                "4",
            ],
        )
    };
    let err = run(&other).unwrap_err();
    assert!(err.contains("no dataset order") && err.contains("veil data grant"), "{err}");
    // A grant of one access: the first deal uses it up, the second finds none.
    let requester = b.address(4);
    ok(url, &["data", "revoke", "--dataset", &n.dataset, "--all", "--dev-account", "2"]);
    let err = run(&n.app).unwrap_err();
    assert!(err.contains("no dataset order"), "revoked: {err}");
    ok(
        url,
        &[
            "data",
            "grant",
            "--dataset",
            &n.dataset,
            "--app",
            &n.app,
            "--requester",
            &requester,
            "--access-count",
            "1",
            "--dev-account",
            "2",
        ],
    );
    run(&n.app).unwrap();
    let err = run(&n.app).unwrap_err();
    assert!(err.contains("no dataset order"), "exhausted: {err}");
    let access = ok(url, &["data", "access", "--dataset", &n.dataset]);
    assert_eq!(access.as_array().expect("a list of grants").len(), 0, "{access}");
}

on_both_ledgers!(
    a_confidential_task_keeps_data_and_result_sealed,
    requests_the_sms_refuses_name_their_rule,
    grants_decide_who_gets_a_deal_on_protected_data,
    a_worker_without_its_tee_platform_refuses_tee_tasks
);
