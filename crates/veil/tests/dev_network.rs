//! `veil dev`: one process runs the whole network; an app deployed on it runs (standard and TEE),
//! and a restart keeps the state.

mod common;
use common::{Service, ok};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

fn dev(dir: &Path, fresh: bool) -> Service {
    let mut c = Command::new(env!("CARGO_BIN_EXE_veil"));
    c.args([
        "dev",
        "--json",
        "--workers",
        "1",
        "--listen",
        "127.0.0.1:0",
        "--scheduler-listen",
        "127.0.0.1:0",
        "--data-dir",
    ])
    .arg(dir)
    .env("RUST_LOG", "warn")
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    if fresh {
        c.arg("--fresh");
    }
    let mut child = c.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad ready line `{line}`: {e}"));
    Service { url: ready["url"].as_str().unwrap().to_string(), child, ready }
}

#[test]
fn one_process_runs_the_network_and_keeps_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let net = dev(&d.join("net"), false);
    let url = net.url.clone();
    assert_eq!(net.ready["devAccounts"].as_array().map(Vec::len), Some(10));
    std::fs::create_dir_all(d.join("app")).unwrap();
    std::fs::write(d.join("app/iapp.toml"), "name = \"w\"\nruntime = \"wasm\"\nentrypoint = \"hello.wasm\"\n").unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../veil-wasm/tests/fixtures/hello.wasm"),
        d.join("app/hello.wasm"),
    )
    .unwrap();
    let app = ok(&url, &["app", "deploy", "--bundle", d.join("app").to_str().unwrap(), "--dev-account", "1"]);
    let app = app["address"].as_str().unwrap().to_string();
    ok(&url, &["app", "publish", "--app", &app, "--dev-account", "1"]);
    ok(&url, &["app", "publish", "--app", &app, "--tag", "tee", "--dev-account", "1"]);
    // The pool's own orders are there: a standard and a TEE run both complete.
    let r = ok(&url, &["run", &app, "--args", "dev", "--dev-account", "4", "--timeout", "60"]);
    assert_eq!(r["tasks"][0]["status"], "COMPLETED", "{r}");
    let r = ok(&url, &["run", &app, "--args", "tee", "--tee", "--dev-account", "4", "--timeout", "60"]);
    assert_eq!(r["tasks"][0]["status"], "COMPLETED", "{r}");
    let dealid = r["dealid"].as_str().unwrap().to_string();
    let pool = net.ready["workerpool"].clone();
    drop(net);

    // Restarted: same pool, the deal is still there, and work still runs.
    let net = dev(&d.join("net"), false);
    assert_eq!(net.ready["workerpool"], pool);
    ok(&net.url, &["deal", "show", &dealid]);
    let r = ok(&net.url, &["run", &app, "--args", "again", "--dev-account", "4", "--timeout", "60"]);
    assert_eq!(r["tasks"][0]["status"], "COMPLETED", "{r}");
    drop(net);

    // --fresh starts over: the old deal is gone.
    let net = dev(&d.join("net"), true);
    assert!(common::veil(&net.url, &["deal", "show", &dealid]).is_err());
}
