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
