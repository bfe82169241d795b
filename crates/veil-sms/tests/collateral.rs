//! The SMS's collateral cache against a fake PCCS (an HTTP server answering the PCCS v4 API with
//! dcap-qvl's sample collateral split into its endpoints — the protocol only; the collateral and quotes
//! are Intel's real ones). Times are pinned inside and after the samples' windows.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use veil_sms::collateral::{CollateralError, CollateralStore, REFRESH_AFTER, RETRY_AFTER};
use veil_tee::dcap::{self, QuoteCollateralV3, TcbPolicy};

/// 2025-06-20: inside the June samples' windows; 2025-08-01: after them.
const JUNE_2025: u64 = 1_750_377_600;
const AUG_2025: u64 = 1_754_006_400;

fn sample(name: &str) -> (Vec<u8>, QuoteCollateralV3) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../veil-tee/tests/dcap");
    let quote = std::fs::read(dir.join(name)).unwrap();
    let collateral = std::fs::read(dir.join(format!("{name}_collateral.json"))).unwrap();
    (quote, dcap::parse_collateral(&collateral).unwrap())
}

#[derive(Default)]
struct Pccs {
    /// Collateral per (tee, fmspc), with its PCK CA.
    served: std::sync::Mutex<HashMap<(String, String), (String, QuoteCollateralV3)>>,
    requests: AtomicUsize,
    down: AtomicBool,
    tamper: AtomicBool,
}

fn encoded(pem: &str) -> String {
    pem.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// Collateral served for PCK CA `ca` (its PCK CRL is that CA's, the root CRL everyone's).
fn of_ca(p: &Pccs, ca: &str) -> Option<QuoteCollateralV3> {
    p.served.lock().unwrap().values().find(|(c, _)| c == ca).map(|(_, c)| c.clone())
}

async fn answer(
    State(p): State<Arc<Pccs>>,
    axum::extract::Path((tee, rest)): axum::extract::Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> axum::response::Response {
    p.requests.fetch_add(1, Ordering::SeqCst);
    if p.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let mut headers = HeaderMap::new();
    let signed =
        |field: &str, json: &str, sig: &[u8]| format!(r#"{{"{field}":{json},"signature":"{}"}}"#, hex::encode(sig));
    match rest.as_str() {
        "pckcrl" => {
            let Some(c) = of_ca(&p, q.get("ca").map_or("", |c| c.as_str())) else {
                return StatusCode::NOT_FOUND.into_response();
            };
            headers.insert("SGX-PCK-CRL-Issuer-Chain", encoded(&c.pck_crl_issuer_chain).parse().unwrap());
            (headers, c.pck_crl).into_response()
        }
        "rootcacrl" => {
            let c = p.served.lock().unwrap().values().next().map(|(_, c)| c.clone());
            hex::encode(c.map(|c| c.root_ca_crl).unwrap_or_default()).into_response()
        }
        "tcb" => {
            let fmspc = q.get("fmspc").cloned().unwrap_or_default();
            let Some((_, c)) = p.served.lock().unwrap().get(&(tee, fmspc)).cloned() else {
                return StatusCode::NOT_FOUND.into_response();
            };
            let mut info = c.tcb_info.clone();
            if p.tamper.load(Ordering::SeqCst) {
                info = info.replacen("\"tcbType\":0", "\"tcbType\":1", 1);
            }
            headers.insert("TCB-Info-Issuer-Chain", encoded(&c.tcb_info_issuer_chain).parse().unwrap());
            (headers, signed("tcbInfo", &info, &c.tcb_info_signature)).into_response()
        }
        "qe/identity" => {
            let c = p.served.lock().unwrap().iter().find(|((t, _), _)| *t == tee).map(|(_, (_, c))| c.clone());
            let Some(c) = c else { return StatusCode::NOT_FOUND.into_response() };
            headers.insert("SGX-Enclave-Identity-Issuer-Chain", encoded(&c.qe_identity_issuer_chain).parse().unwrap());
            (headers, signed("enclaveIdentity", &c.qe_identity, &c.qe_identity_signature)).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn start(p: Arc<Pccs>) -> String {
    let app = axum::Router::new().route("/{tee}/certification/v4/{*rest}", axum::routing::get(answer)).with_state(p);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn serve(p: &Pccs, quote: &[u8], c: &QuoteCollateralV3) {
    let key = dcap::collateral_key(quote).unwrap();
    let tee = if key.tdx { "tdx" } else { "sgx" };
    p.served.lock().unwrap().insert((tee.into(), key.fmspc), (key.ca, c.clone()));
}

fn err(r: Result<QuoteCollateralV3, CollateralError>) -> String {
    r.err().map(|e| e.to_string()).unwrap_or_else(|| "ok".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collateral_is_fetched_cached_refreshed_and_never_used_stale() {
    let (sgx_quote, sgx) = sample("sgx_quote");
    let (tdx_quote, tdx) = sample("tdx_quote");
    let pccs = Arc::new(Pccs::default());
    serve(&pccs, &sgx_quote, &sgx);
    serve(&pccs, &tdx_quote, &tdx);
    let url = start(pccs.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let asked = || pccs.requests.load(Ordering::SeqCst);

    // Cold cache: fetched from the PCCS (four requests), cached, and the quote verifies with it —
    // so the TCB info and QE identity kept are the exact bytes Intel signed.
    let store = CollateralStore::open(dir.path(), Some(url.clone())).unwrap();
    let got = store.for_quote(&sgx_quote, JUNE_2025).await.unwrap();
    assert_eq!(asked(), 4);
    let policy = TcbPolicy { allowed_statuses: vec!["ConfigurationAndSWHardeningNeeded".into()], ..Default::default() };
    dcap::verify(&sgx_quote, &got, JUNE_2025, &policy).unwrap();
    assert_eq!(got.tcb_info, sgx.tcb_info);
    let key = dcap::collateral_key(&sgx_quote).unwrap();
    let entry = store.read(&key).unwrap().expect("cached on disk");
    assert_eq!((entry.fetched_at, entry.source.as_str()), (JUNE_2025, url.as_str()));
    assert_eq!(entry.expires, dcap::collateral_expiry(&sgx).unwrap());

    // TDX collateral comes from the PCCS's tdx paths, for the quote's own FMSPC.
    let got = store.for_quote(&tdx_quote, JUNE_2025).await.unwrap();
    assert_eq!(asked(), 8);
    assert_eq!(got.tcb_info, tdx.tcb_info);

    // Fresh: no network at all, even with the PCCS down, and after a restart without any PCCS.
    pccs.down.store(true, Ordering::SeqCst);
    store.for_quote(&sgx_quote, JUNE_2025 + 3600).await.unwrap();
    let offline = CollateralStore::open(dir.path(), None).unwrap();
    offline.for_quote(&sgx_quote, JUNE_2025 + 3600).await.unwrap();
    assert_eq!(asked(), 8);

    // A day old: refreshed in passing; the PCCS down, the cached one is still used while fresh.
    let a_day_later = JUNE_2025 + REFRESH_AFTER.as_secs() + 1;
    store.for_quote(&sgx_quote, a_day_later).await.unwrap();
    assert_eq!(asked(), 9, "one failed request, then the cache");
    pccs.down.store(false, Ordering::SeqCst);
    store.for_quote(&sgx_quote, a_day_later + RETRY_AFTER.as_secs()).await.unwrap();
    assert_eq!(asked(), 13, "refreshed");
    assert_eq!(store.read(&key).unwrap().unwrap().fetched_at, a_day_later + RETRY_AFTER.as_secs());

    // Expired: refused whatever happens — the PCCS down, or serving nothing fresher — and the PCCS
    // is not asked again within a minute of a failure.
    pccs.down.store(true, Ordering::SeqCst);
    let e = err(store.for_quote(&sgx_quote, AUG_2025).await);
    assert!(e.contains("expired") && e.contains("refused") && e.contains("503"), "{e}");
    let e = err(store.for_quote(&sgx_quote, AUG_2025 + 1).await);
    assert!(e.contains("failed less than"), "{e}");
    let before = asked();
    pccs.down.store(false, Ordering::SeqCst);
    let e = err(store.for_quote(&sgx_quote, AUG_2025 + RETRY_AFTER.as_secs()).await);
    assert!(e.contains("nothing fresher") && e.contains("refused"), "{e}");
    assert_eq!(asked(), before + 4);
    let e = err(offline.for_quote(&sgx_quote, AUG_2025).await);
    assert!(e.contains("expired") && e.contains("no PCCS"), "{e}");

    // Altered collateral from the PCCS is not cached: the quote does not verify with it.
    let fresh_dir = tempfile::tempdir().unwrap();
    let store = CollateralStore::open(fresh_dir.path(), Some(url.clone())).unwrap();
    pccs.tamper.store(true, Ordering::SeqCst);
    let e = err(store.for_quote(&sgx_quote, JUNE_2025).await);
    assert!(e.contains("does not verify with the collateral"), "{e}");
    assert!(store.read(&key).unwrap().is_none(), "nothing cached");
    pccs.tamper.store(false, Ordering::SeqCst);

    // No cache, no PCCS: refused with what to do; an unknown FMSPC: the PCCS's 404.
    let none = CollateralStore::open(tempfile::tempdir().unwrap().path(), None).unwrap();
    let e = err(none.for_quote(&sgx_quote, JUNE_2025).await);
    assert!(e.contains("no collateral") && e.contains("--pccs-url"), "{e}");
    pccs.served.lock().unwrap().retain(|(t, _), _| t == "tdx");
    let e = err(CollateralStore::open(tempfile::tempdir().unwrap().path(), Some(url))
        .unwrap()
        .for_quote(&sgx_quote, JUNE_2025)
        .await);
    assert!(e.contains("404"), "{e}");
    assert!(err(store.for_quote(b"not a quote", JUNE_2025).await).contains("does not verify"));
}
