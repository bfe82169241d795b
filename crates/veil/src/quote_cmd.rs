//! `veil tee verify-quote` (an SGX or TDX DCAP quote checked against Intel's root, then a TCB policy)
//! and `veil tee policy` (what an SMS accepts).

use crate::chain_cmd::{Conn, runtime};
use crate::cli_io::emit;
use crate::tee_cmd::SmsConn;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::PathBuf;
use veil_tee::dcap::{self, Measurements, TcbPolicy, VerifiedQuote};

#[derive(Subcommand)]
pub enum TeeCmd {
    /// Verify an SGX (v3) or TDX (v4/v5) DCAP quote: signatures, Intel's certificate chain, the
    /// collateral's validity at the given time, then the TCB policy.
    VerifyQuote(VerifyQuoteArgs),
    /// Show what an SMS accepts: platforms, TCB policy.
    Policy {
        #[command(flatten)]
        sms: SmsConn,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Args)]
pub struct VerifyQuoteArgs {
    /// The quote: raw bytes, or hex text.
    quote: PathBuf,
    /// The collateral (TCB info, QE identity, CRLs and their chains) as dcap-qvl's JSON.
    #[arg(long, required_unless_present = "pccs", conflicts_with = "pccs")]
    collateral: Option<PathBuf>,
    /// Fetch the collateral from this PCCS or Intel PCS base URL (its v4 API) instead.
    #[arg(long)]
    pccs: Option<String>,
    /// With --pccs: also write the fetched collateral to this file (a worker's --tdx-collateral).
    #[arg(long, requires = "pccs")]
    save_collateral: Option<PathBuf>,
    /// Verify as of this time (unix seconds; default now). The collateral must be valid then.
    #[arg(long)]
    at: Option<u64>,
    /// The TCB policy (JSON: allowedStatuses, rejectedAdvisories, allowDynamicPlatform,
    /// allowCachedKeys, allowSmt); default strict: UpToDate only, no platform flags.
    #[arg(long)]
    policy: Option<PathBuf>,
}

pub fn run(c: TeeCmd, json: bool) -> Result<()> {
    match c {
        TeeCmd::VerifyQuote(a) => verify_quote(a, json),
        TeeCmd::Policy { sms, conn } => policy(&sms, &conn, json),
    }
}

/// A quote file: raw, or hex text (as `tdx-quote.hex` files are).
fn read_quote(path: &PathBuf) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read the quote {}", path.display()))?;
    let text = std::str::from_utf8(&bytes).ok().map(|t| t.trim().trim_start_matches("0x"));
    Ok(match text.and_then(|t| hex::decode(t).ok()) {
        Some(decoded) if !decoded.is_empty() => decoded,
        _ => bytes,
    })
}

/// The quote's collateral from a PCCS, optionally saved.
fn fetch_collateral(quote: &[u8], url: &str, save: Option<&std::path::Path>) -> Result<dcap::QuoteCollateralV3> {
    let key = dcap::collateral_key(quote)?;
    let pccs = veil_sms::collateral::Pccs::new(url).map_err(|e| anyhow::anyhow!("{e}"))?;
    let rt = tokio::runtime::Runtime::new()?;
    let collateral = rt.block_on(pccs.fetch(&key)).map_err(|e| anyhow::anyhow!("cannot fetch the collateral: {e}"))?;
    if let Some(path) = save {
        std::fs::write(path, serde_json::to_vec_pretty(&collateral)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(collateral)
}

fn verify_quote(a: VerifyQuoteArgs, json: bool) -> Result<()> {
    let quote = read_quote(&a.quote)?;
    let collateral = match (&a.collateral, &a.pccs) {
        (Some(path), _) => dcap::parse_collateral(
            &std::fs::read(path).with_context(|| format!("cannot read the collateral {}", path.display()))?,
        )?,
        (None, Some(url)) => fetch_collateral(&quote, url, a.save_collateral.as_deref())?,
        (None, None) => bail!("give --collateral FILE or --pccs URL"),
    };
    let policy: TcbPolicy = match &a.policy {
        Some(p) => serde_json::from_slice(&std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?)
            .with_context(|| format!("{} is not a TCB policy", p.display()))?,
        None => TcbPolicy::default(),
    };
    let now = a.at.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
    });
    let (verified, verdict) = dcap::inspect(&quote, &collateral, now, &policy)?;
    let accepted = verdict.is_ok();
    let why = verdict.err().map(|e| e.to_string());
    emit(
        json,
        &json!({ "verified": verified, "at": now, "policy": policy, "accepted": accepted, "refusedBecause": why }),
        &human(&verified, now, why.as_deref()),
    );
    if !accepted {
        if json {
            // The verdict above is the one JSON answer; the status says it is a refusal.
            std::process::exit(1);
        }
        bail!("the quote is genuine but refused by the TCB policy");
    }
    Ok(())
}

fn human(v: &VerifiedQuote, now: u64, refused: Option<&str>) -> String {
    let hex = |b: &[u8]| format!("0x{}", hex::encode(b));
    let mut out = format!(
        "quote verified against Intel's root at {now}: TCB {} (advisories: {})\n",
        v.tcb_status,
        if v.advisories.is_empty() { "none".to_string() } else { v.advisories.join(", ") }
    );
    match &v.measurements {
        Measurements::Sgx { mrenclave, mrsigner, isv_prod_id, isv_svn } => {
            out += &format!(
                "SGX  MRENCLAVE {}\n     MRSIGNER  {}\n     ISV prod {isv_prod_id} svn {isv_svn}\n",
                hex(mrenclave),
                hex(mrsigner)
            );
        }
        Measurements::Tdx { mrtd, rtmr } => {
            out += &format!("TDX  MRTD  {}\n", hex(mrtd));
            for (i, r) in rtmr.iter().enumerate() {
                out += &format!("     RTMR{i} {}\n", hex(r));
            }
        }
    }
    out += &format!("report_data {}\ncollateral valid until {}\n", hex(&v.report_data), v.collateral_expires);
    out += &match refused {
        None => "TCB policy: accepted".to_string(),
        Some(why) => format!("TCB policy: refused: {why}"),
    };
    out
}

fn policy(sms: &SmsConn, conn: &Conn, json: bool) -> Result<()> {
    let url = format!("{}/sms/policy", sms.sms.as_deref().unwrap_or(&conn.node).trim_end_matches('/'));
    let v: serde_json::Value = runtime()?.block_on(async {
        let r = veil_sdk::http().get(&url).send().await.with_context(|| format!("cannot reach the SMS at {url}"))?;
        if !r.status().is_success() {
            bail!("the SMS at {url} answered {}", r.status());
        }
        r.json().await.context("the SMS's policy is not JSON")
    })?;
    let text = serde_json::to_string_pretty(&v).unwrap_or_default();
    emit(json, &v, &format!("SMS at {url}:\n{text}"));
    Ok(())
}
