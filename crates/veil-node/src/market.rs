//! iExec's market API — what iExec's SDK calls its `iexecGateway` — over Veil's one orderbook, at
//! the root of the node's address (the SDK drops URL paths): `GET /challenge` (EIP-712, single use),
//! `POST|PUT|GET /{apporders,datasetorders,workerpoolorders,requestorders}` and
//! `GET /{kind}orders/{hash}`, in iExec's shapes (`{ok, …}`, orders with their `sign`). Publishing
//! goes through the same checks as Veil's own `POST /orders` (signature, ownership, remaining volume).

use crate::api::{ApiErr, HasBook};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use veil_core::book::{BookEntry, BookQuery};
use veil_core::eip712::{Encoder, typed_hash_with};
use veil_core::orders::OrderKind;
use veil_core::tx::AnyOrder;
use veil_core::{Address, B256, Signature};

/// How long a challenge may wait for its signature, and how many may wait at once.
const CHALLENGE_TTL: Duration = Duration::from_secs(300);
const MAX_CHALLENGES: usize = 10_000;

/// Challenges handed out and not used yet: typed hash → (address, when).
#[derive(Default)]
pub struct Challenges(Mutex<HashMap<B256, (Address, Instant)>>);

/// What a service must offer to speak the market API.
pub(crate) trait MarketHost: HasBook {
    fn chain_id(&self) -> u64;
    fn challenges(&self) -> &Challenges;
    /// Publishes a signed order with the host's own checks.
    fn publish_signed(
        self: Arc<Self>,
        order: AnyOrder,
        sign: Signature,
    ) -> futures_util::future::BoxFuture<'static, Result<BookEntry, ApiErr>>;
    /// Removes an order the `signer` published.
    fn unpublish_by(&self, hash: &B256, signer: Address) -> Result<BookEntry, ApiErr>;
}

/// iExec's error shape (`{ok: false, error}`), which its SDK shows.
struct MarketErr(StatusCode, String);

impl IntoResponse for MarketErr {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "ok": false, "error": self.1 }))).into_response()
    }
}

impl From<ApiErr> for MarketErr {
    fn from(e: ApiErr) -> MarketErr {
        MarketErr(e.status, e.message)
    }
}

fn bad(m: impl Into<String>) -> MarketErr {
    MarketErr(StatusCode::BAD_REQUEST, m.into())
}

type MResult = Result<Json<Value>, MarketErr>;

fn domain_separator(chain_id: u64) -> B256 {
    Encoder::new("EIP712Domain(string name,string version,uint256 chainId)")
        .string("iExec Gateway")
        .string("1")
        .uint(veil_core::U256::from(chain_id))
        .finish()
}

fn challenge_hash(chain_id: u64, challenge: &str) -> B256 {
    typed_hash_with(
        &domain_separator(chain_id),
        &Encoder::new("Challenge(string challenge)").string(challenge).finish(),
    )
}

fn check_chain<T: MarketHost>(host: &T, q: &HashMap<String, String>) -> Result<(), MarketErr> {
    match q.get("chainId").map(|c| c.parse::<u64>()) {
        Some(Ok(c)) if c == host.chain_id() => Ok(()),
        Some(Ok(c)) => Err(bad(format!("this market serves chain {}, not {c}", host.chain_id()))),
        _ => Err(bad("give the chainId (a number)")),
    }
}

/// `GET /challenge?chainId&address`: EIP-712 typed data to sign, usable once within 5 minutes.
async fn challenge<T: MarketHost>(State(h): State<Arc<T>>, Query(q): Query<HashMap<String, String>>) -> MResult {
    check_chain(h.as_ref(), &q)?;
    let address: Address = q
        .get("address")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| bad("give the address that will sign the challenge"))?;
    let challenge = format!("0x{}", hex::encode(rand::random::<[u8; 32]>()));
    let hash = challenge_hash(h.chain_id(), &challenge);
    let mut m = h.challenges().0.lock().unwrap_or_else(|p| p.into_inner());
    m.retain(|_, (_, at)| at.elapsed() < CHALLENGE_TTL);
    if m.len() >= MAX_CHALLENGES {
        return Err(MarketErr(StatusCode::TOO_MANY_REQUESTS, "too many open challenges: try again later".into()));
    }
    m.insert(hash, (address, Instant::now()));
    Ok(Json(json!({ "ok": true, "data": {
        "types": {
            "EIP712Domain": [
                { "name": "name", "type": "string" },
                { "name": "version", "type": "string" },
                { "name": "chainId", "type": "uint256" },
            ],
            "Challenge": [{ "name": "challenge", "type": "string" }],
        },
        "domain": { "name": "iExec Gateway", "version": "1", "chainId": h.chain_id().to_string() },
        "primaryType": "Challenge",
        "message": { "challenge": challenge },
    }})))
}

/// The address an `authorization: <hash>_<signature>_<address>` header proves, spending its challenge.
fn authorized<T: MarketHost>(host: &T, headers: &HeaderMap) -> Result<Address, MarketErr> {
    let unauthorized = |m: &str| MarketErr(StatusCode::UNAUTHORIZED, m.to_string());
    let value = headers.get("authorization").and_then(|v| v.to_str().ok()).ok_or_else(|| {
        unauthorized("this call needs an authorization header (a signed challenge from GET /challenge)")
    })?;
    let parts: Vec<&str> = value.split('_').collect();
    let [hash, sign, address] = parts.as_slice() else {
        return Err(unauthorized("the authorization header is <challenge hash>_<signature>_<address>"));
    };
    let (hash, address): (B256, Address) = match (hash.parse(), address.parse()) {
        (Ok(h), Ok(a)) => (h, a),
        _ => return Err(unauthorized("the authorization header is <challenge hash>_<signature>_<address>")),
    };
    let sign: Signature =
        serde_json::from_value(json!(sign)).map_err(|_| unauthorized("the authorization's signature is malformed"))?;
    let signer = veil_core::crypto::recover(&hash, &sign)
        .map_err(|_| unauthorized("the authorization's signature is invalid"))?;
    if signer != address {
        return Err(unauthorized("the authorization is not signed by the address it names"));
    }
    let mut m = host.challenges().0.lock().unwrap_or_else(|p| p.into_inner());
    match m.remove(&hash) {
        Some((a, at)) if a == address && at.elapsed() < CHALLENGE_TTL => Ok(address),
        _ => Err(unauthorized("unknown, expired or already used challenge: get a new one from GET /challenge")),
    }
}

/// The order kind a market path is about (`/apporders…` → app).
fn kind_of(uri: &axum::http::Uri) -> Result<(OrderKind, String), MarketErr> {
    let first = uri.path().trim_start_matches('/').split('/').next().unwrap_or_default().to_string();
    let kind = first
        .trim_end_matches('s')
        .parse()
        .map_err(|_| MarketErr(StatusCode::NOT_FOUND, format!("no market endpoint /{first}")))?;
    Ok((kind, first))
}

/// Who an order is for: its asset, or the requester of a request order.
fn party(e: &BookEntry) -> Address {
    match &e.order {
        AnyOrder::Request(r) => r.requester,
        o => o.asset(),
    }
}

/// An entry in iExec's shape: the order with its `sign`, `remaining` and `signer`.
fn entry_json(e: &BookEntry, chain_id: u64) -> Value {
    let mut order = serde_json::to_value(&e.order).map(|v| v["order"].clone()).unwrap_or_default();
    if let (Some(o), Some(s)) = (order.as_object_mut(), &e.sign) {
        o.insert("sign".into(), json!(s));
    }
    let remaining: u64 = e.remaining.try_into().unwrap_or(u64::MAX);
    json!({
        "orderHash": e.order_hash,
        "chainId": chain_id,
        "order": order,
        "remaining": remaining,
        "status": "open",
        "signer": e.signer,
    })
}

fn order_of(kind: OrderKind, mut v: Value) -> Result<(AnyOrder, Signature), MarketErr> {
    let sign = v.as_object_mut().and_then(|o| o.remove("sign")).ok_or_else(|| bad("the order has no `sign`"))?;
    let sign: Signature = serde_json::from_value(sign).map_err(|e| bad(format!("the order's sign: {e}")))?;
    let name = match kind {
        OrderKind::App => "app",
        OrderKind::Dataset => "dataset",
        OrderKind::Workerpool => "workerpool",
        OrderKind::Request => "request",
    };
    let order: AnyOrder = serde_json::from_value(json!({ "kind": name, "order": v }))
        .map_err(|e| bad(format!("not an iExec {name}order: {e}")))?;
    Ok((order, sign))
}

/// What every write starts with: the order kind of the path, the chain, the authorized address
/// (its challenge spent), and the JSON body.
fn authorized_call<T: MarketHost>(
    host: &T,
    uri: &axum::http::Uri,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(OrderKind, Address, Value), MarketErr> {
    let (kind, _) = kind_of(uri)?;
    check_chain(host, q)?;
    let who = authorized(host, headers)?;
    let v: Value = serde_json::from_slice(body).map_err(|e| bad(format!("the body is not JSON: {e}")))?;
    Ok((kind, who, v))
}

/// `POST /{kind}orders?chainId` with `{order}` and an authorization.
async fn publish<T: MarketHost>(
    State(h): State<Arc<T>>,
    uri: axum::http::Uri,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> MResult {
    let (kind, who, v) = authorized_call(h.as_ref(), &uri, &q, &headers, &body)?;
    let (order, sign) = order_of(kind, v["order"].clone())?;
    let entry = h.clone().publish_signed(order, sign).await?;
    if entry.signer != who {
        let _ = h.unpublish_by(&entry.order_hash, entry.signer);
        return Err(MarketErr(StatusCode::FORBIDDEN, format!("the order is signed by {}, not by {who}", entry.signer)));
    }
    Ok(Json(json!({ "ok": true, "published": entry_json(&entry, h.chain_id()) })))
}

/// `PUT /{kind}orders?chainId` with `{target, orderHash | app | dataset | workerpool | requester}`.
async fn unpublish<T: MarketHost>(
    State(h): State<Arc<T>>,
    uri: axum::http::Uri,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> MResult {
    let (kind, who, v) = authorized_call(h.as_ref(), &uri, &q, &headers, &body)?;
    let target = v["target"].as_str().unwrap_or("unpublish_orderHash");
    let hashes: Vec<B256> = match target {
        "unpublish_orderHash" => vec![
            v["orderHash"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad("give the orderHash to unpublish"))?,
        ],
        "unpublish_last" | "unpublish_all" => {
            let field = ["app", "dataset", "workerpool", "requester"][kind as usize];
            let asset: Address =
                v[field].as_str().and_then(|s| s.parse().ok()).ok_or_else(|| bad(format!("give the {field}")))?;
            let book = h.book().lock().unwrap_or_else(|p| p.into_inner());
            let mut mine: Vec<&BookEntry> = book.all(kind).filter(|e| e.signer == who && party(e) == asset).collect();
            mine.sort_by_key(|e| std::cmp::Reverse(e.published));
            let take = if target == "unpublish_last" { 1 } else { mine.len() };
            mine.iter().take(take).map(|e| e.order_hash).collect()
        }
        other => {
            return Err(bad(format!("unknown target `{other}`: unpublish_orderHash, unpublish_last or unpublish_all")));
        }
    };
    if hashes.is_empty() {
        return Err(MarketErr(StatusCode::NOT_FOUND, "no published order of yours to unpublish".into()));
    }
    let mut done = vec![];
    for hash in hashes {
        h.unpublish_by(&hash, who)?;
        done.push(hash);
    }
    Ok(Json(json!({ "ok": true, "unpublished": done })))
}

/// `GET /{kind}orders/{hash}`.
async fn get_one<T: MarketHost>(State(h): State<Arc<T>>, uri: axum::http::Uri, Path(hash): Path<String>) -> MResult {
    let (kind, path) = kind_of(&uri)?;
    let hash: B256 = hash.parse().map_err(|_| bad(format!("`{hash}` is not an order hash")))?;
    let book = h.book().lock().unwrap_or_else(|p| p.into_inner());
    match book.get(&hash).filter(|e| e.kind == kind) {
        Some(e) => {
            let mut v = entry_json(e, h.chain_id());
            v["ok"] = json!(true);
            Ok(Json(v))
        }
        None => Err(MarketErr(StatusCode::NOT_FOUND, format!("{path} {hash} not found"))),
    }
}

fn flag(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k).is_some_and(|v| v == "true")
}

fn number(q: &HashMap<String, String>, k: &str) -> Result<Option<u64>, MarketErr> {
    q.get(k).map(|v| v.parse::<u64>().map_err(|_| bad(format!("{k} must be a number")))).transpose()
}

fn addr(q: &HashMap<String, String>, k: &str) -> Result<Option<Address>, MarketErr> {
    q.get(k).map(|v| v.parse::<Address>().map_err(|_| bad(format!("{k} must be an address")))).transpose()
}

/// `GET /{kind}orders?chainId&…` with iExec's filters and paging.
async fn list<T: MarketHost>(
    State(h): State<Arc<T>>,
    uri: axum::http::Uri,
    Query(q): Query<HashMap<String, String>>,
) -> MResult {
    let (kind, _) = kind_of(&uri)?;
    check_chain(h.as_ref(), &q)?;
    let tag = |k: &str| -> Result<Option<B256>, MarketErr> {
        q.get(k).map(|v| veil_core::tag::parse(v).map_err(|e| bad(format!("{k}: {e}")))).transpose()
    };
    let page_size = number(&q, "pageSize")?.unwrap_or(20);
    if !(10..=1000).contains(&page_size) {
        return Err(bad("pageSize is between 10 and 1000"));
    }
    let query = BookQuery {
        app: addr(&q, "app")?,
        dataset: addr(&q, "dataset")?,
        workerpool: addr(&q, "workerpool")?,
        requester: addr(&q, "requester")?,
        min_tag: tag("minTag")?,
        max_tag: tag("maxTag")?,
        category: number(&q, "category")?,
        min_trust: number(&q, "minTrust")?,
        max_trust: number(&q, "maxTrust")?,
        min_volume: number(&q, "minVolume")?,
        strict: flag(&q, "isDatasetStrict")
            || flag(&q, "isWorkerpoolStrict")
            || flag(&q, "isRequesterStrict")
            || flag(&q, "isAppStrict"),
        page: number(&q, "pageIndex")?,
        page_size: Some(page_size),
    };
    // iExec's owner filters: the signer of an asset's order is its owner.
    let owner = addr(&q, ["appOwner", "datasetOwner", "workerpoolOwner", "requester"][kind as usize])?;
    let book = h.book().lock().unwrap_or_else(|p| p.into_inner());
    let page = book.query(kind, &query);
    let orders: Vec<Value> = page
        .orders
        .iter()
        .filter(|e| owner.is_none_or(|o| e.signer == o))
        .map(|e| entry_json(e, h.chain_id()))
        .collect();
    let mut v = json!({ "ok": true, "count": page.count, "orders": orders });
    if let Some(n) = page.next_page {
        v["nextPage"] = json!(n);
    }
    Ok(Json(v))
}

/// The market routes for `host`, to merge at the root of its router.
pub(crate) fn routes<T: MarketHost>() -> axum::Router<Arc<T>> {
    use axum::routing::get;
    let mut r = axum::Router::new().route("/challenge", get(challenge::<T>));
    for kind in ["apporders", "datasetorders", "workerpoolorders", "requestorders"] {
        r = r
            .route(&format!("/{kind}"), get(list::<T>).post(publish::<T>).put(unpublish::<T>))
            .route(&format!("/{kind}/{{hash}}"), get(get_one::<T>));
    }
    r
}
