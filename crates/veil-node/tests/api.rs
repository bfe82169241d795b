//! The node's HTTP API through the SDK: a whole market flow, the event stream, and bad requests that
//! must be refused with a reason and change nothing.

use futures_util::StreamExt;
use std::time::Duration;
use veil_core::book::BookQuery;
use veil_core::orders::OrderKind;
use veil_core::tx::AnyOrder;
use veil_core::*;
use veil_node::dev::{dev_genesis, dev_key};
use veil_node::{NodeConfig, start};
use veil_sdk::Client;

async fn spawn_node() -> (Client, tempfile::TempDir) {
    let (_, c, dir) = spawn_node_at().await;
    (c, dir)
}

async fn spawn_node_at() -> (String, Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = NodeConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        genesis: Some(dev_genesis()),
        dev: true,
        block_time: Duration::ZERO,
        checkpoint_every: 5,
        embedded_services: true,
        max_blob_size: 1 << 20,
    };
    let (shared, _) = start(&config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = veil_node::node::router(shared, &config, &url).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url.clone(), Client::new(&url), dir)
}

async fn created(c: &Client, key: &PrivateKey, call: Call) -> Address {
    let r = c.send(key, call).await.unwrap();
    r.events
        .iter()
        .find_map(|e| match e {
            Event::AppCreated { app, .. } => Some(*app),
            Event::DatasetCreated { dataset, .. } => Some(*dataset),
            Event::WorkerpoolCreated { workerpool, .. } => Some(*workerpool),
            _ => None,
        })
        .unwrap()
}

struct Market {
    app: AppOrder,
    dataset: DatasetOrder,
    pool: WorkerpoolOrder,
    request: RequestOrder,
}

/// The market's four orders matched, each signed by its owner (dev accounts 1–4).
fn match_all(m: &Market, d: &veil_core::Domain) -> Call {
    let (dev, owner, sched, req) = (dev_key(1), dev_key(2), dev_key(3), dev_key(4));
    Call::MatchOrders {
        app_order: Signed::new(m.app.clone(), &dev, d),
        dataset_order: Some(Signed::new(m.dataset.clone(), &owner, d)),
        workerpool_order: Signed::new(m.pool.clone(), &sched, d),
        request_order: Signed::new(m.request.clone(), &req, d),
    }
}

async fn market(c: &Client) -> Market {
    let (dev, owner, sched, req) = (dev_key(1), dev_key(2), dev_key(3), dev_key(4));
    for k in [&dev, &owner, &sched, &req] {
        c.send(k, Call::Deposit { amount: Nrlc::rlc(100) }).await.unwrap();
    }
    let app = created(
        c,
        &dev,
        Call::CreateApp {
            name: "a".into(),
            app_type: "VEIL".into(),
            multiaddr: "m".into(),
            checksum: B256::ZERO,
            mrenclave: String::new(),
        },
    )
    .await;
    let dataset =
        created(c, &owner, Call::CreateDataset { name: "d".into(), multiaddr: "m".into(), checksum: B256::ZERO }).await;
    let pool = created(c, &sched, Call::CreateWorkerpool { description: "p".into() }).await;
    let z = Address::ZERO;
    Market {
        app: AppOrder {
            app,
            appprice: U256::from(5),
            volume: U256::from(10),
            tag: B256::ZERO,
            datasetrestrict: z,
            workerpoolrestrict: z,
            requesterrestrict: z,
            salt: B256::repeat_byte(1),
        },
        dataset: DatasetOrder {
            dataset,
            datasetprice: U256::from(3),
            volume: U256::from(10),
            tag: B256::ZERO,
            apprestrict: app,
            workerpoolrestrict: z,
            requesterrestrict: z,
            salt: B256::repeat_byte(2),
        },
        pool: WorkerpoolOrder {
            workerpool: pool,
            workerpoolprice: U256::from(100),
            volume: U256::from(10),
            tag: B256::ZERO,
            category: U256::from(5),
            trust: U256::from(1),
            apprestrict: z,
            datasetrestrict: z,
            requesterrestrict: z,
            salt: B256::repeat_byte(3),
        },
        request: RequestOrder {
            app,
            appmaxprice: U256::from(5),
            dataset,
            datasetmaxprice: U256::from(3),
            workerpool: z,
            workerpoolmaxprice: U256::from(100),
            requester: req.address(),
            volume: U256::from(4),
            tag: B256::ZERO,
            category: U256::from(5),
            trust: U256::ZERO,
            beneficiary: req.address(),
            callback: z,
            params: "{}".into(),
            salt: B256::repeat_byte(4),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn market_flow_through_the_api() {
    let (c, _dir) = spawn_node().await;
    let info = c.chain().await.unwrap();
    assert!(info.dev);
    assert_eq!(info.categories.len(), 7, "iExec's five plus two short dev categories");
    let m = market(&c).await;
    let d = info.domain;
    let (dev, owner, sched, req) = (dev_key(1), dev_key(2), dev_key(3), dev_key(4));

    // Publish: signed, checked against owners and volume.
    let sign = |o: &AnyOrder, k: &PrivateKey| Some(k.sign_hash(&o.typed_hash(&d)));
    let app_o = AnyOrder::App(m.app.clone());
    let e = c.publish(app_o.clone(), sign(&app_o, &dev)).await.unwrap();
    assert_eq!(e.remaining, U256::from(10));
    let err = c.publish(app_o.clone(), sign(&app_o, &owner)).await.unwrap_err();
    assert_eq!(err.kind(), Some("rejected"), "{err}");
    let ds_o = AnyOrder::Dataset(m.dataset.clone());
    c.publish(ds_o.clone(), sign(&ds_o, &owner)).await.unwrap();
    // Two pool orders: the cheaper one comes first.
    let pool_o = AnyOrder::Workerpool(m.pool.clone());
    let mut dear = m.pool.clone();
    dear.workerpoolprice = U256::from(200);
    let dear_o = AnyOrder::Workerpool(dear);
    c.publish(dear_o.clone(), sign(&dear_o, &sched)).await.unwrap();
    c.publish(pool_o.clone(), sign(&pool_o, &sched)).await.unwrap();
    let page =
        c.orderbook(OrderKind::Workerpool, &BookQuery { category: Some(5), ..Default::default() }).await.unwrap();
    assert_eq!(page.count, 2);
    assert_eq!(page.orders[0].order.price(), U256::from(100), "cheapest first");
    let page =
        c.orderbook(OrderKind::Workerpool, &BookQuery { category: Some(1), ..Default::default() }).await.unwrap();
    assert_eq!(page.count, 0);
    let page =
        c.orderbook(OrderKind::Workerpool, &BookQuery { page_size: Some(1), ..Default::default() }).await.unwrap();
    assert_eq!((page.orders.len(), page.next_page), (1, Some(1)));
    // Restriction filters: the dataset order is restricted to the app.
    let other_app = BookQuery { app: Some(Address::repeat_byte(9)), ..Default::default() };
    assert_eq!(c.orderbook(OrderKind::Dataset, &other_app).await.unwrap().count, 0);
    let this_app = BookQuery { app: Some(m.app.app), strict: true, ..Default::default() };
    assert_eq!(c.orderbook(OrderKind::Dataset, &this_app).await.unwrap().count, 1);

    // Event stream from block 1: sees the deal when it happens.
    let mut events = Box::pin(c.events(1).await.unwrap());

    // Match: the book follows the consumed volume.
    let call = match_all(&m, &d);
    let r = c.send(&req, call).await.unwrap();
    let dealid = r
        .events
        .iter()
        .find_map(|e| match e {
            Event::OrdersMatched { dealid, .. } => Some(*dealid),
            _ => None,
        })
        .unwrap();
    let deal = c.deal(&dealid).await.unwrap();
    assert_eq!(deal.deal.bot_size, U256::from(4));
    let app_hash = app_o.typed_hash(&d);
    assert_eq!(c.order(&app_hash).await.unwrap().remaining, U256::from(6));
    assert_eq!(c.receipt(&r.tx_hash).await.unwrap(), r);
    let mut seen_deal = false;
    while let Some(b) = tokio::time::timeout(Duration::from_secs(5), events.next()).await.unwrap() {
        let b = b.unwrap();
        if b.receipts.iter().any(|x| x.tx_hash == r.tx_hash) {
            seen_deal = true;
            break;
        }
    }
    assert!(seen_deal, "the event stream delivered the deal's block");

    // Cancel on the ledger: the order leaves the book by itself.
    c.send(&dev, Call::CancelOrder { order: app_o.clone() }).await.unwrap();
    assert_eq!(c.order(&app_hash).await.unwrap_err().kind(), Some("not_found"));
    // Unpublish needs the signer.
    let dear_hash = dear_o.typed_hash(&d);
    assert_eq!(c.unpublish(&dear_hash, &dev).await.unwrap_err().kind(), Some("bad_signature"));
    c.unpublish(&dear_hash, &sched).await.unwrap();

    // Tasks: initialize, then read it back.
    c.send(&sched, Call::Initialize { dealid, idx: U256::ZERO }).await.unwrap();
    let t = c.task(&veil_core::state::task_id(&dealid, U256::ZERO)).await.unwrap();
    assert_eq!(t.task.status, veil_core::state::TaskStatus::Active);
    assert_eq!(c.apps_of(&dev.address()).await.unwrap().len(), 1);
    let latest = c.latest_block().await.unwrap();
    assert_eq!(c.block(latest.header.number).await.unwrap(), latest);
    assert_eq!(latest.header.parent_hash, c.block(latest.header.number - 1).await.unwrap().hash);
}

async fn raw_post(url: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("{url}/tx"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let v = r.json().await.unwrap_or(serde_json::Value::Null);
    (status, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_and_change_nothing() {
    let (c, _dir) = spawn_node().await;
    let m = market(&c).await;
    let before = c.chain().await.unwrap();
    let key = dev_key(5);
    let tx = |nonce: u64, call: Call| Tx { chain_id: before.chain_id, from: key.address(), nonce, call };
    let url = c.base().to_string();

    let check = |status: u16, v: &serde_json::Value, want_status: u16, needle: &str| {
        assert_eq!(status, want_status, "{v}");
        let msg = v["error"].as_str().unwrap_or_default().to_string();
        assert!(msg.contains(needle), "`{msg}` should mention `{needle}`");
    };
    let (s, v) = raw_post(&url, b"{not json".to_vec()).await;
    check(s, &v, 400, "invalid transaction");
    let (s, v) = raw_post(&url, br#"{"tx":{"chainId":"x"},"signature":"0x00"}"#.to_vec()).await;
    check(s, &v, 400, "chainId");
    let mut forged = tx(0, Call::Deposit { amount: Nrlc::new(1) }).sign(&key);
    forged.tx.from = dev_key(6).address();
    let (s, v) = raw_post(&url, serde_json::to_vec(&forged).unwrap()).await;
    check(s, &v, 401, "signed by");
    let (s, v) =
        raw_post(&url, serde_json::to_vec(&tx(7, Call::Deposit { amount: Nrlc::new(1) }).sign(&key)).unwrap()).await;
    check(s, &v, 409, "nonce");
    let mut unknown = m.app.clone();
    unknown.app = Address::repeat_byte(0x77);
    let mut request = m.request.clone();
    request.app = unknown.app;
    let d = before.domain;
    let call = Call::MatchOrders {
        app_order: Signed::new(unknown, &key, &d),
        dataset_order: None,
        workerpool_order: Signed::new(m.pool.clone(), &dev_key(3), &d),
        request_order: Signed::new(request, &key, &d),
    };
    let (s, v) = raw_post(&url, serde_json::to_vec(&tx(0, call).sign(&key)).unwrap()).await;
    check(s, &v, 422, "0x");
    let (s, v) = raw_post(&url, vec![b' '; veil_node::api::MAX_BODY + 10]).await;
    check(s, &v, 413, "limit");
    let (s, v) =
        raw_post(&url, serde_json::to_vec(&tx(0, Call::Withdraw { amount: Nrlc::rlc(5) }).sign(&key)).unwrap()).await;
    check(s, &v, 422, "free in escrow");

    let after = c.chain().await.unwrap();
    assert_eq!((after.head, after.state_digest), (before.head, before.state_digest), "nothing was committed");
    // A replay of an accepted transaction is refused.
    let ok = tx(0, Call::Deposit { amount: Nrlc::new(1) }).sign(&key);
    c.submit(&ok).await.unwrap();
    let err = c.submit(&ok).await.unwrap_err();
    assert_eq!(err.kind(), Some("bad_nonce"));
    assert!(c.openapi_ok().await);
}

trait OpenApi {
    async fn openapi_ok(&self) -> bool;
}

impl OpenApi for Client {
    async fn openapi_ok(&self) -> bool {
        let v: serde_json::Value =
            reqwest::get(format!("{}/openapi.json", self.base())).await.unwrap().json().await.unwrap();
        v["openapi"] == "3.0.3" && v["paths"]["/tx"]["post"].is_object()
    }
}

fn signed(c_chain: u64, key: &PrivateKey, nonce: u64, call: Call) -> SignedTx {
    Tx { chain_id: c_chain, from: key.address(), nonce, call }.sign(key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_sequenced_in_order_and_a_refusal_voids_the_nonces_after_it() {
    let (c, _dir) = spawn_node().await;
    let chain = c.chain().await.unwrap().chain_id;
    let k = dev_key(7);
    let dep = |n| Call::Deposit { amount: Nrlc::rlc(n) };
    let too_much = Call::Withdraw { amount: Nrlc::rlc(1_000_000_000) };
    // Nonces 0,1 fine; 2 refused (more than the balance) leaves nonce 2 unused, so 3 is out of order.
    let batch = vec![signed(chain, &k, 0, dep(1)), signed(chain, &k, 1, dep(2)), signed(chain, &k, 2, too_much), {
        signed(chain, &k, 3, dep(3))
    }];
    let answers = c.submit_batch(&batch).await.unwrap();
    let kinds: Vec<String> = answers
        .iter()
        .map(|a| match a {
            veil_sdk::BatchItem::Receipt(_) => "ok".to_string(),
            veil_sdk::BatchItem::Refused { kind, .. } => kind.clone(),
        })
        .collect();
    assert_eq!(kinds, ["ok", "ok", "rejected", "bad_nonce"]);
    let acc = c.account(&k.address()).await.unwrap().account;
    assert_eq!((acc.nonce, acc.balance), (2, Nrlc::rlc(3)));

    // Too many transactions in one batch: refused whole, nothing applied.
    let many: Vec<SignedTx> =
        (0..veil_sdk::MAX_BATCH_TXS as u64 + 1).map(|i| signed(chain, &k, 2 + i, dep(1))).collect();
    let err = c.submit_batch(&many).await.unwrap_err();
    assert_eq!(err.kind(), Some("too_large"), "{err}");
    assert_eq!(c.account(&k.address()).await.unwrap().account.nonce, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonce_sender_gathers_concurrent_calls_and_survives_refusals() {
    let (c, _dir) = spawn_node().await;
    let k = dev_key(8);
    let sender = std::sync::Arc::new(veil_sdk::NonceSender::new(c.clone(), k.clone()));
    // 200 concurrent calls, every tenth one refused: the others must all land, whatever their batch.
    let calls = (0..200u64).map(|i| {
        let s = sender.clone();
        tokio::spawn(async move {
            let call = if i % 10 == 9 {
                Call::Withdraw { amount: Nrlc::rlc(1_000_000_000) }
            } else {
                Call::Deposit { amount: Nrlc::rlc(1) }
            };
            s.send(call).await
        })
    });
    let results = futures_util::future::join_all(calls).await;
    let (mut ok, mut refused) = (0, 0);
    let mut blocks = std::collections::BTreeSet::new();
    for r in results {
        match r.unwrap() {
            Ok(receipt) => {
                ok += 1;
                blocks.insert(receipt.block);
            }
            Err(e) => {
                assert_eq!(e.kind(), Some("rejected"), "{e}");
                refused += 1;
            }
        }
    }
    assert_eq!((ok, refused), (180, 20));
    let acc = c.account(&k.address()).await.unwrap().account;
    assert_eq!((acc.nonce, acc.balance), (180, Nrlc::rlc(180)));
    assert!(blocks.len() < 180, "calls were gathered into shared blocks ({} blocks)", blocks.len());
    // Someone else moving the key's nonce: the sender notices and catches up.
    c.send(&k, Call::Deposit { amount: Nrlc::rlc(1) }).await.unwrap();
    sender.send(Call::Deposit { amount: Nrlc::rlc(1) }).await.unwrap();
    assert_eq!(c.account(&k.address()).await.unwrap().account.nonce, 182);
}

/// iExec's market API over the embedded ledger's orderbook (the SDK test drives it on PoCo).
struct IexecMarket {
    url: String,
    http: reqwest::Client,
}

impl IexecMarket {
    async fn call(&self, method: reqwest::Method, path: &str, auth: Option<&PrivateKey>, body: Value) -> (u16, Value) {
        let mut r = self.http.request(method, format!("{}{path}", self.url));
        if let Some(key) = auth {
            r = r.header("authorization", self.authorization(key).await);
        }
        let r = r.json(&body).send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None, Value::Null).await
    }

    /// A signed single-use challenge from `GET /challenge`.
    async fn authorization(&self, key: &PrivateKey) -> String {
        let q = format!("{}/challenge?chainId=65535&address={}", self.url, key.address());
        let v: Value = self.http.get(q).send().await.unwrap().json().await.unwrap();
        let challenge = v["data"]["message"]["challenge"].as_str().unwrap();
        let hash = veil_sdk::challenge::Challenges::new("iExec Gateway", 65535).typed_hash(challenge);
        format!("{hash}_{}_{}", key.sign_hash(&hash).to_hex(), key.address())
    }

    /// `POST /{kind}orders` of `order` signed by `signer`, authorized by `caller`.
    async fn publish(&self, order: &AnyOrder, signer: &PrivateKey, caller: &PrivateKey, d: &Domain) -> (u16, Value) {
        let v = serde_json::to_value(order).unwrap();
        let (kind, mut body) = (v["kind"].as_str().unwrap().to_string(), v["order"].clone());
        body["sign"] = serde_json::json!(signer.sign_hash(&order.typed_hash(d)));
        let path = format!("/{kind}orders?chainId=65535");
        self.call(reqwest::Method::POST, &path, Some(caller), serde_json::json!({ "order": body })).await
    }
}

use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iexecs_market_api_over_the_embedded_ledger() {
    let (url, c, _dir) = spawn_node_at().await;
    let d = c.chain().await.unwrap().domain;
    assert_eq!(d.chain_id, 65535, "the dev ledger's chain id, as the tests below assume");
    let m = market(&c).await;
    let (dev, owner, sched, req) = (dev_key(1), dev_key(2), dev_key(3), dev_key(4));
    let api = IexecMarket { url: url.clone(), http: reqwest::Client::new() };
    let (app_o, ds_o) = (AnyOrder::App(m.app.clone()), AnyOrder::Dataset(m.dataset.clone()));
    let (pool_o, req_o) = (AnyOrder::Workerpool(m.pool.clone()), AnyOrder::Request(m.request.clone()));

    // Publishing: by its signer only, once.
    let (status, v) = api.publish(&app_o, &dev, &dev, &d).await;
    assert_eq!(status, 200, "{v}");
    let app_hash = app_o.typed_hash(&d);
    assert_eq!(v["published"]["orderHash"], serde_json::json!(app_hash));
    assert!(v["published"]["publicationTimestamp"].as_str().unwrap().ends_with('Z'), "{v}");
    assert_eq!(
        api.publish(&app_o, &dev, &dev, &d).await,
        (403, serde_json::json!({ "ok": false, "error": "order already published" }))
    );
    let (status, v) = api.publish(&ds_o, &owner, &dev, &d).await;
    assert_eq!(status, 403, "signed by the owner, published by someone else: {v}");
    let (status, v) = api.publish(&ds_o, &dev, &dev, &d).await;
    assert_eq!(status, 403, "signed by someone who does not own the dataset: {v}");
    for (o, k) in [(&ds_o, &owner), (&pool_o, &sched), (&req_o, &req)] {
        assert_eq!(api.publish(o, k, k, &d).await.0, 200);
    }

    // Lists with iExec's filters: (query, orders it selects); 400 for a malformed query.
    let (a, ds, p, r) = (m.app.app, m.dataset.dataset, m.pool.workerpool, req.address());
    let other = Address::repeat_byte(9);
    let cases: Vec<(String, Result<u64, u16>)> = vec![
        (format!("apporders?app={a}"), Ok(1)),
        (format!("apporders?appOwner={}", dev.address()), Ok(1)),
        (format!("apporders?appOwner={}", owner.address()), Ok(0)),
        ("apporders?app=any".into(), Ok(1)),
        ("apporders".into(), Err(400)),
        (format!("apporders?app={a}&dataset={ds}"), Ok(1)),
        (format!("apporders?app={a}&dataset={ds}&isDatasetStrict=true"), Ok(0)),
        (format!("apporders?app={a}&minTag=0x1"), Ok(0)),
        // The dataset order is restricted to the app: a left-out app means unrestricted orders only.
        (format!("datasetorders?dataset={ds}"), Ok(0)),
        (format!("datasetorders?dataset={ds}&app={a}"), Ok(1)),
        (format!("datasetorders?dataset={ds}&app=any"), Ok(1)),
        (format!("datasetorders?dataset={ds}&app={other}"), Ok(0)),
        (format!("datasetorders?dataset={ds}&app={a}&isAppStrict=true"), Ok(1)),
        (format!("datasetorders?dataset={ds}&app={a}&bulkOnly=true"), Ok(0)),
        (format!("workerpoolorders?workerpool={p}&category=5"), Ok(1)),
        (format!("workerpoolorders?workerpool={p}&category=1"), Ok(0)),
        (format!("workerpoolorders?workerpool={p}&minTrust=1"), Ok(1)),
        (format!("workerpoolorders?workerpool={p}&minTrust=2"), Ok(0)),
        (format!("workerpoolorders?workerpoolOwner={}", sched.address()), Ok(1)),
        (format!("requestorders?requester={r}"), Ok(1)),
        (format!("requestorders?requester={r}&app={a}&dataset={ds}&beneficiary={r}"), Ok(1)),
        (format!("requestorders?requester={r}&beneficiary={other}"), Ok(0)),
        (format!("requestorders?requester={r}&workerpool={p}&isWorkerpoolStrict=true"), Ok(0)),
        ("requestorders?pageSize=5".into(), Err(400)),
        ("requestorders?isWorkerpoolStrict=maybe".into(), Err(400)),
        (format!("apporders?app={a}&minVolume=x"), Err(400)),
    ];
    for (query, want) in cases {
        let sep = if query.contains('?') { '&' } else { '?' };
        let (status, v) = api.get(&format!("/{query}{sep}chainId=65535")).await;
        match want {
            Ok(n) => assert_eq!((status, v["count"].as_u64()), (200, Some(n)), "{query}: {v}"),
            Err(code) => assert_eq!(status, code, "{query}: {v}"),
        }
    }
    assert_eq!(api.get(&format!("/apporders?app={a}&chainId=1")).await.0, 400, "another chain");
    let (status, one) = api.get(&format!("/apporders/{app_hash}?chainId=65535")).await;
    assert_eq!((status, one["remaining"].as_u64()), (200, Some(10)), "{one}");
    assert_eq!(api.get(&format!("/apporders/{}?chainId=65535", B256::repeat_byte(7))).await.0, 404);
    assert_eq!(api.get(&format!("/datasetorders/{app_hash}?chainId=65535")).await.0, 404, "not a dataset order");

    // A deal, as the market lists it (filters by order hash, requester, owner).
    let call = match_all(&m, &d);
    c.send(&req, call).await.unwrap();
    let (_, deals) = api.get(&format!("/deals?chainId=65535&apporderHash={app_hash}")).await;
    assert_eq!(deals["count"], 1, "{deals}");
    let dealid = deals["deals"][0]["dealid"].as_str().unwrap().to_string();
    assert_eq!(deals["deals"][0]["botSize"], "4", "{deals}");
    for q in [format!("requester={}", dev.address()), format!("appOwner={}", owner.address())] {
        assert_eq!(api.get(&format!("/deals?chainId=65535&{q}")).await.1["count"], 0, "{q}");
    }
    let (status, deal) = api.get(&format!("/deals/{dealid}?chainId=65535")).await;
    assert_eq!((status, deal["requester"].clone()), (200, serde_json::json!(r)), "{deal}");
    assert_eq!(c.deal(&dealid.parse().unwrap()).await.unwrap().deal.requester, r, "Veil's shape without chainId");
    assert_eq!(api.get(&format!("/apporders/{app_hash}?chainId=65535")).await.1["remaining"], 6);
    let (_, cats) = api.get("/categories?chainId=65535&maxWorkClockTimeRef=60").await;
    assert_eq!(cats["count"], 2, "the dev categories: {cats}");
    assert_eq!(api.get("/categories/5?chainId=65535").await.1["workClockTimeRef"], 5);
    assert_eq!(api.get("/categories/99?chainId=65535").await.0, 404);

    // Unpublishing: the last of an app's orders, by its signer; nothing left → 403.
    let put = |target: &str| serde_json::json!({ "target": target, "app": a });
    let path = "/apporders?chainId=65535";
    let (status, v) = api.call(reqwest::Method::PUT, path, Some(&owner), put("unpublish_last")).await;
    assert_eq!(status, 403, "not the signer's: {v}");
    let (status, v) = api.call(reqwest::Method::PUT, path, Some(&dev), put("unpublish_last")).await;
    assert_eq!((status, v["unpublished"].clone()), (200, serde_json::json!([app_hash])), "{v}");
    assert_eq!(api.call(reqwest::Method::PUT, path, Some(&dev), put("unpublish_all")).await.0, 403);
    assert_eq!(api.get(&format!("/apporders?app={a}&chainId=65535")).await.1["count"], 0);

    // Compass: the pool's owner announces its scheduler's API; nobody else can.
    let announce = |key: &PrivateKey, url: &str, timestamp: u64| {
        let message = veil_sdk::pool_api_message(&p, url, timestamp);
        serde_json::json!({ "url": url, "timestamp": timestamp, "signature": key.sign_message_hash(&message) })
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let path = format!("/workerpools/{p}/api");
    let post = |body| api.call(reqwest::Method::POST, &path, None, body);
    assert_eq!(post(announce(&dev, "http://evil:1", now)).await.0, 401, "not the pool's owner");
    assert_eq!(post(announce(&sched, "http://old:1", now - 3600)).await.0, 400, "stale");
    assert_eq!(post(announce(&sched, "ftp://x", now)).await.0, 400);
    assert_eq!(api.get(&format!("/65535/workerpools/{p}")).await.0, 404, "nothing announced yet");
    assert_eq!(post(announce(&sched, "http://sched:8648/", now)).await.0, 200);
    let (status, v) = api.get(&format!("/65535/workerpools/{p}")).await;
    assert_eq!((status, v), (200, serde_json::json!({ "apiUrl": "http://sched:8648" })));
    assert_eq!(api.get(&format!("/1/workerpools/{p}")).await.0, 404, "another chain");
}

/// GETs `url` without following redirects: status, `Location`, body.
async fn page(url: &str) -> (u16, String, String) {
    let c = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = c.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let location = r.headers().get("location").map(|l| l.to_str().unwrap().to_string()).unwrap_or_default();
    (status, location, r.text().await.unwrap())
}

/// The explorer over the embedded ledger, as plain HTTP (the browser test drives it in Chromium):
/// pages show what the ledger holds; hostile input is escaped and bounded, and unknown ids are a
/// "not found" page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explorer_pages_over_the_embedded_ledger() {
    let (url, c, _dir) = spawn_node_at().await;
    let d = c.chain().await.unwrap().domain;
    let m = market(&c).await;
    let (owner, sched, req) = (dev_key(2), dev_key(3), dev_key(4));
    let ds_o = AnyOrder::Dataset(m.dataset.clone());
    c.publish(ds_o.clone(), Some(owner.sign_hash(&ds_o.typed_hash(&d)))).await.unwrap();
    let call = match_all(&m, &d);
    let r = c.send(&req, call).await.unwrap();
    let dealid = r.events.iter().find_map(|e| match e {
        Event::OrdersMatched { dealid, .. } => Some(*dealid),
        _ => None,
    });
    let dealid = dealid.unwrap();
    // The explorer indexes as blocks arrive: wait for the deal on the home page.
    let started = std::time::Instant::now();
    while !page(&format!("{url}/explorer")).await.2.contains(&format!("/explorer/deals/{dealid}")) {
        assert!(started.elapsed() < Duration::from_secs(10), "the deal never reached the home page");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dataset = format!("{:?}", m.dataset.dataset);
    let long = "x".repeat(10_000);
    let cases: Vec<(String, u16, Vec<String>, Vec<&str>)> = vec![
        ("/".into(), 303, vec![], vec![]),
        ("/explorer".into(), 200, vec!["Latest deals".into(), format!("{}", r.block)], vec![]),
        (
            format!("/explorer/deals/{dealid}"),
            200,
            vec![dealid.to_string(), "not started".into(), "page 1 of 1".into()],
            vec![],
        ),
        (format!("/explorer/deals/{dealid}?page=99999999999999999999"), 200, vec!["page 1 of 1".into()], vec![]),
        (
            format!("/explorer/datasets/{dataset}"),
            200,
            vec!["Remaining uses".into(), ">6<".into(), "Deals that used it".into()],
            vec![],
        ),
        (format!("/explorer/apps/{:?}", m.app.app), 200, vec!["Used by".into(), "1 deal<".into()], vec![]),
        (format!("/explorer/workerpools/{:?}", m.pool.workerpool), 200, vec!["not announced".into()], vec![]),
        (
            format!("/explorer/accounts/{:?}", req.address()),
            200,
            vec!["deposit".into(), "lock".into(), "100 RLC".into()],
            vec![],
        ),
        (format!("/explorer/accounts/{:?}?page=-1", req.address()), 200, vec!["page 1 of".into()], vec![]),
        (format!("/explorer/blocks/{}", r.block), 200, vec!["OrdersMatched".into()], vec![]),
        (format!("/explorer/tx/{}", r.tx_hash), 200, vec!["OrdersMatched".into(), format!("#{}", r.block)], vec![]),
        ("/explorer/blocks/99999999".into(), 404, vec!["Not found".into()], vec![]),
        (format!("/explorer/tasks/{}", B256::repeat_byte(7)), 404, vec!["No task".into()], vec![]),
        (
            "/explorer/deals/%3Cscript%3Ealert(1)%3C%2Fscript%3E".into(),
            404,
            vec!["&lt;script&gt;alert(1)&lt;/script&gt;".into()],
            vec!["<script>alert"],
        ),
        (
            "/explorer/search?q=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E".into(),
            404,
            vec!["&lt;img src=x".into()],
            vec!["<img src"],
        ),
        (format!("/explorer/search?q={long}"), 400, vec!["Search too long".into()], vec![]),
        ("/explorer/nothing/here".into(), 404, vec!["Not found".into()], vec![]),
        ("/explorer/assets/style.css".into(), 200, vec!["prefers-color-scheme".into()], vec![]),
    ];
    for (path, status, want, never) in cases {
        let (got, _, body) = page(&format!("{url}{path}")).await;
        assert_eq!(got, status, "{path}: {body}");
        for w in &want {
            assert!(body.contains(w.as_str()), "{path} lacks `{w}`: {body}");
        }
        for n in never {
            assert!(!body.contains(n), "{path} contains `{n}` unescaped");
        }
        assert!(body.len() < 200_000, "{path}: a bounded page");
    }
    // A pool's owner announces a "scheduler" that answers 4 MB: the explorer reads at most 1 MB of
    // it and says the scheduler did not answer; a well-behaved one is listed.
    let huge = format!(
        r#"{{"workers":[{}]}}"#,
        vec![r#"{"worker":"0x0000000000000000000000000000000000000001","status":"alive"}"#; 55_000].join(",")
    );
    assert!(huge.len() > 4_000_000);
    let small = r#"{"workers":[{"worker":"0x00000000000000000000000000000000000000aa","status":"alive"}]}"#.to_string();
    for (answer, want) in [(huge, "The scheduler did not answer"), (small, "0x000000…00aa")] {
        let app = axum::Router::new().route(
            "/workers",
            axum::routing::get(move || {
                let a = answer.clone();
                async move { a }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let pool = m.pool.workerpool;
        let message = veil_sdk::pool_api_message(&pool, &api, now);
        let body = serde_json::json!({ "url": api, "timestamp": now, "signature": sched.sign_message_hash(&message) });
        let r =
            reqwest::Client::new().post(format!("{url}/workerpools/{pool:?}/api")).json(&body).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let (status, _, page_body) = page(&format!("{url}/explorer/workerpools/{pool:?}")).await;
        assert_eq!(status, 200);
        assert!(page_body.contains(want), "{want}: {}", &page_body[..page_body.len().min(3000)]);
        assert!(page_body.len() < 200_000);
    }

    // Search: each kind of id leads to its page.
    for (q, to) in [
        (dealid.to_string(), format!("/explorer/deals/{dealid}")),
        (r.tx_hash.to_string(), format!("/explorer/tx/{}", r.tx_hash)),
        (dataset.clone(), format!("/explorer/datasets/{dataset}")),
        (format!("{:?}", req.address()), format!("/explorer/accounts/{:?}", req.address())),
        (format!("#{}", r.block), format!("/explorer/blocks/{}", r.block)),
    ] {
        let (status, location, _) = page(&format!("{url}/explorer/search?q={}", q.replace('#', "%23"))).await;
        assert_eq!((status, location.as_str()), (303, to.as_str()), "search {q}");
    }
}
