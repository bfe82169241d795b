//! `veil tee verify-quote` on real quotes (dcap-qvl's samples in `crates/veil-tee/tests/dcap`), as a
//! user runs it: the verdict, the measurements, and the exit status.

mod common;
use serde_json::Value;
use std::process::{Command, Stdio};

const AT: &str = "1750377600"; // 2025-06-20, inside the samples' collateral windows

fn verify_quote(quote: &str, collateral: &str, extra: &[&str]) -> (bool, Value) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../veil-tee/tests/dcap/");
    let out = Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(["tee", "verify-quote", &format!("{dir}{quote}"), "--collateral", &format!("{dir}{collateral}")])
        .args(extra)
        .arg("--json")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not one JSON answer ({e}): {text}"));
    (out.status.success(), v)
}

#[test]
fn verify_quote_shows_the_verdict_and_fails_when_refused() {
    let policy = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(policy.path(), r#"{"allowDynamicPlatform":true,"allowCachedKeys":true,"allowSmt":true}"#).unwrap();
    let p = policy.path().to_str().unwrap();
    let (ok, v) = verify_quote("tdx_quote", "tdx_quote_collateral.json", &["--at", AT, "--policy", p]);
    assert!(ok, "{v}");
    assert_eq!(v["accepted"], true);
    assert_eq!(v["verified"]["tcbStatus"], "UpToDate");
    assert_eq!(v["verified"]["measurements"]["tee"], "tdx");
    assert_eq!(v["verified"]["measurements"]["rtmr"].as_array().unwrap().len(), 4);

    let (ok, v) = verify_quote("tdx_quote", "tdx_quote_collateral.json", &["--at", AT]);
    assert!(!ok, "the strict default refuses a dynamic platform: {v}");
    assert_eq!(v["accepted"], false);
    assert!(v["refusedBecause"].as_str().unwrap().contains("ynamic platform"), "{v}");

    let (ok, v) = verify_quote("sgx_quote", "sgx_quote_collateral.json", &["--at", AT]);
    assert!(!ok);
    assert_eq!(v["verified"]["measurements"]["tee"], "sgx", "{v}");
    assert_eq!(v["verified"]["tcbStatus"], "ConfigurationAndSWHardeningNeeded");

    // Today, the June 2025 collateral has expired: not a verdict, an error.
    let (ok, v) = verify_quote("tdx_quote", "tdx_quote_collateral.json", &[]);
    assert!(!ok);
    assert!(v["error"].as_str().unwrap().contains("does not verify"), "{v}");
    // Collateral from a PCCS that cannot be reached: an error saying so.
    let out = Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(["tee", "verify-quote", concat!(env!("CARGO_MANIFEST_DIR"), "/../veil-tee/tests/dcap/tdx_quote")])
        .args(["--pccs", "http://127.0.0.1:9", "--json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!out.status.success());
    assert!(v["error"].as_str().unwrap().contains("cannot fetch the collateral: cannot reach"), "{v}");
    // TDX evidence with SGX collateral.
    let (ok, v) = verify_quote("tdx_quote", "sgx_quote_collateral.json", &["--at", AT]);
    assert!(!ok && v["error"].as_str().unwrap().contains("does not verify"), "{v}");
}

#[test]
fn an_sms_shows_the_tee_policy_its_operator_set() {
    let dir = tempfile::tempdir().unwrap();
    let node = common::dev_node(&dir.path().join("node"));
    // The node's embedded dev SMS: sim accepted, strict TCB policy, no TD image.
    let v = common::ok(&node.url, &["tee", "policy"]);
    assert!(v["platforms"]["sim"].as_str().unwrap().starts_with("accepted"), "{v}");
    assert_eq!(v["tcbPolicy"]["allowedStatuses"], serde_json::json!(["UpToDate"]));
    assert_eq!(v["tdImages"], serde_json::json!([]));

    let m = format!("0x{}", "ab".repeat(48));
    let policy = serde_json::json!({
        "tcbPolicy": { "allowedStatuses": ["UpToDate", "SWHardeningNeeded"], "rejectedAdvisories": ["INTEL-SA-00837"] },
        "tdImages": [{ "name": "worker-v1", "mrtd": m, "rtmr0": m, "rtmr1": m, "rtmr2": m }],
    });
    let file = dir.path().join("tee.json");
    std::fs::write(&file, policy.to_string()).unwrap();
    let (sms_dir, f) = (dir.path().join("sms"), file.to_str().unwrap().to_string());
    let sms = common::spawn(
        &["sms", "--data-dir", sms_dir.to_str().unwrap(), "--tee-policy", &f, "--node", &node.url],
        Stdio::null(),
    );
    let v = common::ok(&node.url, &["tee", "policy", "--sms", &sms.url]);
    assert!(v["platforms"]["sim"].as_str().unwrap().starts_with("refused"), "not in dev mode: {v}");
    assert_eq!(v["tcbPolicy"]["rejectedAdvisories"], serde_json::json!(["INTEL-SA-00837"]));
    assert_eq!(v["tdImages"][0]["name"], "worker-v1");
    drop(sms);

    // A policy with a malformed measurement, or one that tries to allow `sim`, is refused at start.
    for bad in [
        serde_json::json!({ "tdImages": [{ "name": "x", "mrtd": "0x12", "rtmr0": m, "rtmr1": m, "rtmr2": m }] }),
        serde_json::json!({ "allowSim": true }),
    ] {
        std::fs::write(&file, bad.to_string()).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_veil"))
            .args(["sms", "--data-dir", sms_dir.to_str().unwrap(), "--tee-policy", &f, "--node", &node.url, "--json"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("is not a TEE policy"), "{bad}: {text}");
    }
}
