//! Every `veil bench` scenario runs and reports median, p99 and spread in its JSON (tiny sizes: the
//! figures themselves are measured in release builds, never asserted here).

use serde_json::Value;
use std::process::Command;

fn bench(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_veil")).arg("bench").args(args).arg("--json").output().unwrap();
    assert!(out.status.success(), "bench {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("bench {args:?}: {e}"))
}

/// A `Stats` object: ordered and positive.
fn check(s: &Value, what: &str) {
    let f = |k: &str| s[k].as_f64().unwrap_or_else(|| panic!("{what}: no `{k}` in {s}"));
    assert!(f("min") > 0.0, "{what}: {s}");
    assert!(f("min") <= f("median") && f("median") <= f("p99") && f("p99") <= f("max"), "{what}: {s}");
    assert!(s["n"].as_u64().unwrap() >= 1, "{what}: {s}");
}

#[test]
fn every_scenario_reports_median_p99_and_spread() {
    let v = bench(&["core", "--n", "50", "--runs", "2"]);
    for k in
        ["verifyAndApplyPerSecond", "pocoMatchOrdersPerSecond", "applyVerifiedPerSecond", "applyVerifiedLatencyMicros"]
    {
        check(&v[k], k);
    }
    let v = bench(&["ledger", "--n", "200", "--runs", "2", "--concurrency", "4", "--memory-deals", "0"]);
    check(&v["perSecond"], "ledger perSecond");
    check(&v["submitToReceiptMs"], "ledger latency");
    let v = bench(&["latency", "--runs", "2"]);
    for k in ["process", "wasm", "image", "process+tee", "wasm+tee", "image+tee"] {
        check(&v["ms"][k], k);
    }
    let v = bench(&["bag", "--volume", "20", "--runs", "1"]);
    for row in v["results"].as_array().unwrap() {
        check(&row["tasksPerSecond"], "bag");
        check(&row["cpuMsPerTask"], "bag cpu");
    }
    let v = bench(&["bag", "--volume", "20", "--runs", "1", "--runtime", "image"]);
    let rows = v["results"].as_array().unwrap();
    for row in rows.iter().filter(|r| r["ledger"] != "none") {
        check(&row["tasksPerSecond"], "image bag");
    }
    assert!(rows.iter().any(|r| r["containersAlonePerSecond"].as_f64().is_some_and(|x| x > 0.0)), "{v}");
    let v = bench(&["image", "--size-mb", "2", "--runs", "1"]);
    for k in ["pullMs", "unpackMs", "totalMs"] {
        check(&v[k], k);
    }
    let v = bench(&["memory", "--volume", "20", "--runs", "1"]);
    for role in ["node", "scheduler", "worker"] {
        check(&v["rssMb"][role]["idleMb"], role);
        check(&v["rssMb"][role]["loadedPeakMb"], role);
    }
    let v = bench(&["protect", "--size-mb", "4", "--runs", "1"]);
    check(&v["veilSeconds"], "protect veil");
    check(&v["opensslSha256sumSeconds"], "protect openssl");
}
