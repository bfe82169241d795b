//! Hostile requests to every service's HTTP API (node with its storage and SMS, and a scheduler):
//! malformed, oversized, unauthenticated and replayed. Each gets a 4xx with its reason in
//! `{"error": …}`, and nothing changes: the ledger's head and state digest, and the SMS's secrets.

mod common;
use common::{ok, spawn};
use serde_json::{Value, json};
use std::process::Stdio;
use veil_core::tx::Tx;
use veil_core::{Address, Call, Nrlc};
use veil_node::dev::dev_key;
use veil_sdk::{Client, SecretKind};

struct Req {
    method: &'static str,
    path: String,
    body: Option<Vec<u8>>,
    bearer: Option<&'static str>,
}

fn get(path: impl Into<String>) -> Req {
    Req { method: "GET", path: path.into(), body: None, bearer: None }
}

fn post(path: impl Into<String>, body: impl Into<Vec<u8>>) -> Req {
    Req { method: "POST", path: path.into(), body: Some(body.into()), bearer: None }
}

fn send(rt: &tokio::runtime::Runtime, base: &str, r: &Req) -> (u16, Value) {
    rt.block_on(async {
        let http = reqwest::Client::new();
        let url = format!("{base}{}", r.path);
        let mut b = if r.method == "GET" { http.get(&url) } else { http.post(&url) };
        if let Some(body) = &r.body {
            b = b.header("content-type", "application/json").body(body.clone());
        }
        if let Some(t) = r.bearer {
            b = b.bearer_auth(t);
        }
        let resp = b.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(json!({ "raw": text })))
    })
}

/// Each request gets `status` and an error naming `reason` (every mismatch is listed at once).
fn check(rt: &tokio::runtime::Runtime, base: &str, cases: &[(Req, u16, &str)]) {
    let mut wrong = vec![];
    for (r, status, reason) in cases {
        let (got, body) = send(rt, base, r);
        let error = body["error"].as_str().unwrap_or_default().to_string();
        if got != *status || error.is_empty() || !error.to_lowercase().contains(&reason.to_lowercase()) {
            wrong.push(format!("{} {} → {got} {body} (wanted {status} saying `{reason}`)", r.method, r.path));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn every_endpoint_refuses_hostile_requests_with_a_reason_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let node = spawn(
        &["node", "--dev", "--max-blob-size", "1024", "--data-dir", d.join("node").to_str().unwrap()],
        Stdio::null(),
    );
    let url = node.url.clone();
    ok(&url, &["account", "deposit", "10 RLC", "--dev-account", "3"]);
    let (_, scheduler) = common::pool_and_scheduler(&url, &d.join("sched"));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let c = Client::new(&url);

    // One valid transaction, kept to be replayed.
    let key = dev_key(1);
    let info = rt.block_on(c.chain()).unwrap();
    let nonce = rt.block_on(c.account(&key.address())).unwrap().account.nonce;
    let stx = Tx { chain_id: info.chain_id, from: key.address(), nonce, call: Call::Deposit { amount: Nrlc::rlc(1) } }
        .sign(&key);
    rt.block_on(c.submit(&stx)).unwrap();
    let valid = serde_json::to_vec(&stx).unwrap();
    let mut forged: Value = serde_json::from_slice(&valid).unwrap();
    forged["tx"]["nonce"] = json!(nonce + 1); // the signature no longer matches
    let other_chain =
        Tx { chain_id: 1, from: key.address(), nonce: nonce + 1, call: Call::Deposit { amount: Nrlc::rlc(1) } }
            .sign(&key);
    let before = rt.block_on(c.chain()).unwrap();

    let zero = format!("{:?}", veil_core::B256::ZERO);
    let me = format!("{:?}", key.address());
    // Just over the node's 512 KiB limit for one transaction: small enough that the whole body is
    // written before the server answers 413 and closes.
    let big = vec![b'x'; 600 * 1024];
    let node_cases = vec![
        (post("/tx", "not json"), 400, ""),
        (post("/tx", serde_json::to_vec(&forged).unwrap()), 401, "signed by"),
        (post("/tx", serde_json::to_vec(&other_chain).unwrap()), 400, "chain"),
        (post("/tx", valid.clone()), 409, "replayed"),
        (post("/tx", big), 413, ""),
        (post("/txs", serde_json::to_vec(&vec![&stx; 513]).unwrap()), 413, "at most 512"),
        (get("/tx/0x12"), 400, "hash"),
        (get(format!("/tx/{zero}")), 404, "no transaction"),
        (get("/accounts/not-an-address"), 400, "address"),
        (get("/blocks/99999999"), 404, ""),
        (get("/deals/0xzz"), 400, ""),
        (get(format!("/tasks/{zero}")), 404, ""),
        (get("/orderbook/nonsense"), 400, "kind"),
        (post("/orders", r#"{"order": {"app": "0x1"}}"#), 400, ""),
        (post("/orders/unpublish", r#"{"orderHash": "0x00"}"#), 400, ""),
        (get("/events?from=abc"), 400, ""),
    ];
    check(&rt, &url, &node_cases);
    check(&rt, &url, &service_cases(&me));
    sms_writes_are_single_use(&rt, &c, &key, &dev_key(2));
    scheduler_refuses(&rt, &scheduler.url, &dev_key(5), &dev_key(6));

    let after = rt.block_on(c.chain()).unwrap();
    assert_eq!(
        (after.head, after.state_digest),
        (before.head, before.state_digest),
        "no refused request changed the ledger"
    );
}

/// Storage (limit 1024 bytes) and SMS (dev mode) requests every node refuses, with or without a
/// ledger of its own.
fn service_cases(me: &str) -> Vec<(Req, u16, &'static str)> {
    let zero = format!("{:?}", veil_core::B256::ZERO);
    vec![
        // Storage: over its size limit, bad ids, unknown blobs.
        (post("/blobs", vec![0u8; 2048]), 413, ""),
        (get("/blobs/zzz"), 400, ""),
        (get(format!("/blobs/{}", "ab".repeat(32))), 404, ""),
        // The IPFS gateway path: a CIDv1 raw sha2-256 only; unknown blobs are 404.
        (get("/ipfs/QmbWqxBEKC3P8tqsKc98xmWNzrzDtRLMiMPL8wBuTGsMnR"), 400, "base32"),
        (get("/ipfs/bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"), 400, "raw sha2-256"),
        (get("/ipfs/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"), 404, ""),
        // SMS: bad kinds and targets, unsigned and replayed writes, garbage sessions.
        (post("/sms/nonsense/0x0000000000000000000000000000000000000001", "{}"), 400, "unknown secret kind"),
        (post(format!("/sms/requester-secret/{me}/name"), r#"{"value": "v"}"#), 400, "missing field `challenge`"),
        (post("/sms/sessions", "garbage"), 400, ""),
        (post(format!("/sms/enclave-challenge/{zero}"), "{}"), 403, ""),
    ]
}

/// An SMS write signed by someone else, then with a spent challenge, then right, then replayed.
fn sms_writes_are_single_use(
    rt: &tokio::runtime::Runtime,
    c: &Client,
    key: &veil_core::PrivateKey,
    other: &veil_core::PrivateKey,
) {
    let url = c.base();
    let me = format!("{:?}", key.address());
    let ch = rt.block_on(c.sms_challenge()).unwrap();
    let msg = veil_sdk::sms_message(SecretKind::RequesterSecret, &key.address(), "name", "v1", &ch.challenge);
    let write = json!({ "value": "v1", "challenge": ch.challenge, "signature": key.sign_message_hash(&msg) });
    let wrong_signer = json!({ "value": "v1", "challenge": ch.challenge, "signature": other.sign_message_hash(&msg) });
    let path = format!("/sms/requester-secret/{me}/name");
    let exists = || rt.block_on(c.sms_exists(SecretKind::RequesterSecret, &key.address(), "name")).unwrap();
    check(rt, url, &[(post(path.clone(), serde_json::to_vec(&wrong_signer).unwrap()), 403, "")]);
    assert!(!exists(), "a refused write left nothing");
    // A challenge is spent by any attempt, refused or not: the right write needs a fresh one.
    check(rt, url, &[(post(path.clone(), serde_json::to_vec(&write).unwrap()), 401, "challenge")]);
    let ch = rt.block_on(c.sms_challenge()).unwrap();
    let msg = veil_sdk::sms_message(SecretKind::RequesterSecret, &key.address(), "name", "v1", &ch.challenge);
    let write = json!({ "value": "v1", "challenge": ch.challenge, "signature": key.sign_message_hash(&msg) });
    let (status, body) = send(rt, url, &post(path.clone(), serde_json::to_vec(&write).unwrap()));
    assert_eq!(status, 200, "{body}");
    assert!(exists());
    // The same challenge again, over another value, properly signed: the challenge was single use.
    let msg2 = veil_sdk::sms_message(SecretKind::RequesterSecret, &key.address(), "name", "v2", &ch.challenge);
    let replay = json!({ "value": "v2", "challenge": ch.challenge, "signature": key.sign_message_hash(&msg2) });
    check(rt, url, &[(post(path, serde_json::to_vec(&replay).unwrap()), 401, "challenge")]);
}

/// A scheduler's refusals: forged and stale registrations, calls without a session, bad ids.
fn scheduler_refuses(
    rt: &tokio::runtime::Runtime,
    scheduler: &str,
    w: &veil_core::PrivateKey,
    other: &veil_core::PrivateKey,
) {
    let zero = format!("{:?}", veil_core::B256::ZERO);
    let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let reg = |worker: Address, timestamp: u64, by: &veil_core::PrivateKey| {
        let m = veil_pool::api::register_message(&worker, 1, timestamp);
        serde_json::to_vec(
            &json!({ "worker": worker, "slots": 1, "timestamp": timestamp, "signature": by.sign_message_hash(&m) }),
        )
        .unwrap()
    };
    let mut poll = post("/workers/poll", "{}");
    poll.bearer = Some("not-a-session");
    let sched_cases = vec![
        (post("/workers/register", reg(w.address(), ts, other)), 403, "signed by"),
        (post("/workers/register", reg(w.address(), ts - 3600, w)), 403, "timestamp"),
        (post("/workers/register", "garbage"), 400, "malformed request"),
        (post("/workers/poll", "{}"), 403, "register"),
        (poll, 403, "register"),
        (
            post("/workers/report", format!(r#"{{"taskid": "{zero}", "outcome": {{"kind": "revealed"}}}}"#)),
            403,
            "register",
        ),
        (
            post("/workers/logs", format!(r#"{{"taskid": "{zero}", "logs": {{"stdout": "", "stderr": ""}}}}"#)),
            403,
            "register",
        ),
        (post("/workers/heartbeat", "{}"), 403, "register"),
        (get("/tasks/xyz"), 400, "task id"),
        (get(format!("/tasks/{zero}/logs")), 401, "signed request"),
        (get(format!("/tasks/{zero}/logs?timestamp=abc&signature=0x00")), 400, "malformed request"),
    ];
    check(rt, scheduler, &sched_cases);
}

/// The same hostile requests to a node without a ledger of its own (PoCo on anvil's off-chain
/// services) and its scheduler, plus what only such a node refuses: transactions (they go to the
/// chain), unsigned orders, orders for unregistered assets or signed by someone else. Nothing
/// reaches the chain.
#[test]
fn a_node_serving_poco_refuses_hostile_requests_and_the_chain_does_not_move() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let b = common::Backend::Anvil;
    let anvil = common::spawn_anvil(&d.join("anvil"), "0");
    let hub = anvil.ready["hub"].as_str().unwrap().to_string();
    let data = d.join("node");
    let node = spawn(
        &[
            "node",
            "--dev",
            "--max-blob-size",
            "1024",
            "--data-dir",
            data.to_str().unwrap(),
            "--rpc",
            &anvil.url,
            "--hub",
            &hub,
        ],
        Stdio::null(),
    );
    let url = node.url.clone();
    let (_, scheduler) = common::pool_and_scheduler(&url, &d.join("sched"));
    let app: Address =
        ok(&url, &["app", "deploy", "--name", "a", "--multiaddr", "http://x/a.zip", "--dev-account", "1"])["address"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let c = Client::new(&url);
    let before = rt.block_on(c.chain()).unwrap();
    assert!(before.evm.is_some(), "the node says which chain it serves: {before:?}");

    let order = |app: Address| veil_core::AppOrder {
        app,
        appprice: veil_core::U256::ZERO,
        volume: veil_core::U256::from(1),
        tag: veil_core::B256::ZERO,
        datasetrestrict: Address::ZERO,
        workerpoolrestrict: Address::ZERO,
        requesterrestrict: Address::ZERO,
        salt: veil_core::B256::with_last_byte(7),
    };
    let publish = |o: veil_core::AppOrder, by: Option<&veil_core::PrivateKey>| {
        let any = veil_core::tx::AnyOrder::App(o);
        let sign = by.map(|k| k.sign_hash(&any.typed_hash(&before.domain)));
        post("/orders", serde_json::to_vec(&veil_sdk::PublishRequest { order: any, sign }).unwrap())
    };
    let stranger = Address::with_last_byte(0x42);
    let zero = format!("{:?}", veil_core::B256::ZERO);
    let node_cases = vec![
        (post("/tx", "{}"), 409, "no ledger of its own"),
        (post("/txs", "[]"), 409, "no ledger of its own"),
        (get("/accounts/not-an-address"), 400, "address"),
        (get("/deals/0xzz"), 400, ""),
        (get(format!("/deals/{zero}")), 404, "no deal"),
        (get(format!("/tasks/{zero}")), 404, "no task"),
        (get("/orderbook/nonsense"), 400, "kind"),
        (get("/nowhere"), 404, "off-chain services"),
        (post("/orders", r#"{"order": {"app": "0x1"}}"#), 400, ""),
        (publish(order(app), None), 422, "signed orders only"),
        (publish(order(stranger), Some(&b.dev_key(1))), 422, "not registered"),
        (publish(order(app), Some(&b.dev_key(2))), 422, "must be signed by"),
        (post("/orders/unpublish", r#"{"orderHash": "0x00"}"#), 400, ""),
    ];
    check(&rt, &url, &node_cases);
    check(&rt, &url, &service_cases(&b.address(1)));
    sms_writes_are_single_use(&rt, &c, &b.dev_key(1), &b.dev_key(2));
    scheduler_refuses(&rt, &scheduler.url, &b.dev_key(5), &b.dev_key(6));
    let page = rt.block_on(c.orderbook(veil_core::orders::OrderKind::App, &Default::default())).unwrap();
    assert_eq!(page.count, 0, "no refused order entered the book");
    let after = rt.block_on(c.chain()).unwrap();
    assert_eq!(after.head, before.head, "no refused request reached the chain");
}
