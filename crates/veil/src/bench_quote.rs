//! `veil bench quote`: the cost of verifying a real DCAP quote (dcap-qvl's SGX and TDX samples,
//! built into this binary) against Intel's root and the TCB policy, as the SMS does per session.

use crate::cli_io::emit;
use anyhow::Result;
use serde_json::json;
use std::time::Instant;
use veil_tee::dcap::{self, TcbPolicy};

/// A time inside the samples' collateral windows (2025-06-20).
const AT: u64 = 1_750_377_600;

pub fn run(runs: usize, json: bool) -> Result<()> {
    if cfg!(debug_assertions) && !json {
        eprintln!("warning: debug build; run `cargo run --release -p veil -- bench quote` for real numbers");
    }
    let samples: [(&str, &[u8], &[u8]); 2] = [
        (
            "sgx",
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../veil-tee/tests/dcap/sgx_quote")),
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../veil-tee/tests/dcap/sgx_quote_collateral.json")),
        ),
        (
            "tdx",
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../veil-tee/tests/dcap/tdx_quote")),
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../veil-tee/tests/dcap/tdx_quote_collateral.json")),
        ),
    ];
    // The samples' platforms: SGX needs configuration and hardening, TDX is dynamic with cached
    // keys and SMT; the policy accepts exactly that, so each run goes through every check.
    let policy = TcbPolicy {
        allowed_statuses: vec!["UpToDate".into(), "ConfigurationAndSWHardeningNeeded".into()],
        allow_dynamic_platform: true,
        allow_cached_keys: true,
        allow_smt: true,
        ..Default::default()
    };
    let mut rows = vec![];
    let mut human = format!("DCAP quote verification (dcap-qvl 0.7.1, ring; its real samples), {runs} runs each:");
    for (tee, quote, collateral) in samples {
        let collateral = dcap::parse_collateral(collateral)?;
        dcap::verify(quote, &collateral, AT, &policy)?;
        let mut ms: Vec<f64> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                let ok = dcap::verify(quote, &collateral, AT, &policy).is_ok();
                (ok, t.elapsed().as_secs_f64() * 1e3)
            })
            .map(|(ok, ms)| if ok { ms } else { f64::NAN })
            .collect();
        ms.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
        human.push_str(&format!("\n  {tee}: p50 {:.3} ms, p99 {:.3} ms (target ≤ 2 ms)", pct(0.5), pct(0.99)));
        rows.push(json!({ "tee": tee, "runs": runs, "p50Ms": pct(0.5), "p99Ms": pct(0.99) }));
    }
    emit(json, &json!({ "quote": rows }), &human);
    Ok(())
}
