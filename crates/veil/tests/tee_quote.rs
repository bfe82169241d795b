//! `veil tee verify-quote` on real quotes (dcap-qvl's samples in `crates/veil-tee/tests/dcap`), as a
//! user runs it: the verdict, the measurements, and the exit status.

use serde_json::Value;
use std::process::Command;

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
    // TDX evidence with SGX collateral.
    let (ok, v) = verify_quote("tdx_quote", "sgx_quote_collateral.json", &["--at", AT]);
    assert!(!ok && v["error"].as_str().unwrap().contains("does not verify"), "{v}");
}
