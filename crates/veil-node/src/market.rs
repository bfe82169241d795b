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
use std::sync::Arc;
use veil_core::book::{BookEntry, BookQuery, Restrictions, Want};
use veil_core::orders::OrderKind;
use veil_core::tx::AnyOrder;
use veil_core::{Address, B256, Domain, Signature};
use veil_sdk::challenge::AuthError;

pub use veil_sdk::challenge::Challenges;

/// The EIP-712 domain name of the market's challenges.
pub const DOMAIN_NAME: &str = "iExec Gateway";

/// The market's challenge book for a chain.
pub fn challenges(chain_id: u64) -> Challenges {
    Challenges::new(DOMAIN_NAME, chain_id)
}

/// What a service must offer to speak the market API.
pub(crate) trait MarketHost: HasBook {
    fn domain(&self) -> Domain;
    fn challenges(&self) -> &Challenges;
    /// Publishes a signed order with the host's own checks.
    fn publish_signed(
        self: Arc<Self>,
        order: AnyOrder,
        sign: Signature,
    ) -> futures_util::future::BoxFuture<'static, Result<BookEntry, ApiErr>>;
    /// Removes an order the `signer` published.
    fn unpublish_by(&self, hash: &B256, signer: Address) -> Result<BookEntry, ApiErr>;
    /// Every deal the host knows of.
    fn deals(self: Arc<Self>) -> futures_util::future::BoxFuture<'static, Result<Vec<veil_sdk::DealView>, ApiErr>>;
    /// The owner of a workerpool (None: not registered).
    fn workerpool_owner(
        self: Arc<Self>,
        pool: Address,
    ) -> futures_util::future::BoxFuture<'static, Result<Option<Address>, ApiErr>>;
    /// Workerpools' API URLs their schedulers announced (iExec's compass).
    fn pool_apis(&self) -> &crate::compass::PoolApis;
    /// The ledger's categories.
    fn categories(
        self: Arc<Self>,
    ) -> futures_util::future::BoxFuture<'static, Result<Vec<(u64, veil_core::state::Category)>, ApiErr>>;
}

/// iExec's error shape (`{ok: false, error}`), which its SDK shows.
pub(crate) struct MarketErr(pub(crate) StatusCode, pub(crate) String);

impl IntoResponse for MarketErr {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "ok": false, "error": self.1 }))).into_response()
    }
}

/// A refusal of the host's checks is what iExec's market calls a business error (403); a
/// failure of the host itself stays a 5xx.
impl From<ApiErr> for MarketErr {
    fn from(e: ApiErr) -> MarketErr {
        match e.status.is_server_error() {
            true => MarketErr(e.status, e.message),
            false => refused(e.message),
        }
    }
}

pub(crate) fn bad(m: impl Into<String>) -> MarketErr {
    MarketErr(StatusCode::BAD_REQUEST, m.into())
}

fn refused(m: impl Into<String>) -> MarketErr {
    MarketErr(StatusCode::FORBIDDEN, m.into())
}

pub(crate) type MResult = Result<Json<Value>, MarketErr>;

pub(crate) fn check_chain<T: MarketHost>(host: &T, q: &HashMap<String, String>) -> Result<(), MarketErr> {
    let chain_id = host.domain().chain_id;
    match q.get("chainId").map(|c| c.parse::<u64>()) {
        Some(Ok(c)) if c == chain_id => Ok(()),
        Some(Ok(c)) => Err(bad(format!("this market serves chain {chain_id}, not {c}"))),
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
    match h.challenges().issue(address, rand::random()) {
        Ok(data) => Ok(Json(json!({ "ok": true, "data": data }))),
        Err(e) => Err(MarketErr(StatusCode::TOO_MANY_REQUESTS, e.to_string())),
    }
}

/// The address an `authorization: <hash>_<signature>_<address>` header proves, spending its
/// challenge. iExec's market answers 403 "invalid authorization" to every failure; Veil says why.
fn authorized<T: MarketHost>(host: &T, headers: &HeaderMap) -> Result<Address, MarketErr> {
    let header = headers.get("authorization").and_then(|v| v.to_str().ok());
    host.challenges()
        .redeem(header, "/challenge")
        .map_err(|e: AuthError| refused(format!("invalid authorization: {e}")))
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

/// An entry in iExec's shape: the order with its `sign`, `remaining`, `signer` and publication time.
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
        "publicationTimestamp": veil_sdk::iso8601_ms(e.published_at_ms),
    })
}

fn order_of(kind: OrderKind, mut v: Value) -> Result<(AnyOrder, Signature), MarketErr> {
    let sign = v.as_object_mut().and_then(|o| o.remove("sign")).ok_or_else(|| bad("the order has no `sign`"))?;
    let sign: Signature = serde_json::from_value(sign).map_err(|e| bad(format!("the order's sign: {e}")))?;
    let name = kind_name(kind);
    let order: AnyOrder = serde_json::from_value(json!({ "kind": name, "order": v }))
        .map_err(|e| bad(format!("not an iExec {name}order: {e}")))?;
    Ok((order, sign))
}

fn kind_name(kind: OrderKind) -> &'static str {
    match kind {
        OrderKind::App => "app",
        OrderKind::Dataset => "dataset",
        OrderKind::Workerpool => "workerpool",
        OrderKind::Request => "request",
    }
}

/// What every write starts with: the order kind of the path, the chain, the JSON body, and the
/// authorized address (its challenge spent).
fn authorized_call<T: MarketHost>(
    host: &T,
    uri: &axum::http::Uri,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(OrderKind, Address, Value), MarketErr> {
    let (kind, _) = kind_of(uri)?;
    check_chain(host, q)?;
    let v: Value = serde_json::from_slice(body).map_err(|e| bad(format!("the body is not JSON: {e}")))?;
    let who = authorized(host, headers)?;
    Ok((kind, who, v))
}

/// `POST /{kind}orders?chainId` with `{order}` and an authorization. As iExec's market: an order
/// already published, or signed by someone else than the caller, is refused (403) before the
/// orderbook's own checks (owner of the asset, volume left), whose refusals are 403 too.
async fn publish<T: MarketHost>(
    State(h): State<Arc<T>>,
    uri: axum::http::Uri,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> MResult {
    let (kind, who, v) = authorized_call(h.as_ref(), &uri, &q, &headers, &body)?;
    let (order, sign) = order_of(kind, v["order"].clone())?;
    if order.kind() != kind {
        return Err(bad(format!("this is the {}orders endpoint", kind_name(kind))));
    }
    let domain = h.domain();
    let hash = order.typed_hash(&domain);
    if h.book().lock().unwrap_or_else(|p| p.into_inner()).get(&hash).is_some() {
        return Err(refused("order already published"));
    }
    match veil_core::crypto::recover(&hash, &sign) {
        Ok(signer) if signer == who => {}
        Ok(signer) => return Err(refused(format!("only order signer {signer} can publish an order"))),
        Err(_) => return Err(refused("invalid sign")),
    }
    let entry = h.clone().publish_signed(order, sign).await?;
    Ok(Json(json!({ "ok": true, "published": entry_json(&entry, domain.chain_id) })))
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
    let name = kind_name(kind);
    let target = v["target"].as_str().unwrap_or("unpublish_orderHash");
    let hashes: Vec<B256> = match target {
        "unpublish_orderHash" => {
            let hash: B256 = v["orderHash"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad("give the orderHash to unpublish"))?;
            let book = h.book().lock().unwrap_or_else(|p| p.into_inner());
            match book.get(&hash).filter(|e| e.kind == kind) {
                None => return Err(refused(format!("{name}order with orderHash {hash} is not published"))),
                Some(e) if e.signer != who => {
                    return Err(refused(format!("only order signer {} can unpublish an order", e.signer)));
                }
                Some(_) => vec![hash],
            }
        }
        "unpublish_last" | "unpublish_all" => {
            let field = ["app", "dataset", "workerpool", "requester"][kind as usize];
            let asset: Address =
                v[field].as_str().and_then(|s| s.parse().ok()).ok_or_else(|| bad(format!("give the {field}")))?;
            let book = h.book().lock().unwrap_or_else(|p| p.into_inner());
            let mut mine: Vec<&BookEntry> = book.all(kind).filter(|e| e.signer == who && party(e) == asset).collect();
            mine.sort_by_key(|e| std::cmp::Reverse(e.published));
            let take = if target == "unpublish_last" { 1 } else { mine.len() };
            let hashes: Vec<B256> = mine.iter().take(take).map(|e| e.order_hash).collect();
            if hashes.is_empty() {
                return Err(refused(format!("no open {name}order published by signer {who} for {field} {asset}")));
            }
            hashes
        }
        other => {
            return Err(bad(format!("unknown target `{other}`: unpublish_orderHash, unpublish_last or unpublish_all")));
        }
    };
    let mut done = vec![];
    for hash in hashes {
        h.unpublish_by(&hash, who)?;
        done.push(hash);
    }
    Ok(Json(json!({ "ok": true, "unpublished": done })))
}

/// `GET /{kind}orders/{hash}?chainId`.
async fn get_one<T: MarketHost>(
    State(h): State<Arc<T>>,
    uri: axum::http::Uri,
    Path(hash): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> MResult {
    let (kind, _) = kind_of(&uri)?;
    check_chain(h.as_ref(), &q)?;
    let hash: B256 = hash.parse().map_err(|_| bad(format!("`{hash}` is not an order hash")))?;
    let book = h.book().lock().unwrap_or_else(|p| p.into_inner());
    match book.get(&hash).filter(|e| e.kind == kind) {
        Some(e) => {
            let mut v = entry_json(e, h.domain().chain_id);
            v["ok"] = json!(true);
            Ok(Json(v))
        }
        None => Err(MarketErr(StatusCode::NOT_FOUND, format!("{}order not found", kind_name(kind)))),
    }
}

pub(crate) fn flag(q: &HashMap<String, String>, k: &str) -> Result<bool, MarketErr> {
    match q.get(k).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(bad(format!("{k} must be true or false"))),
    }
}

pub(crate) fn number(q: &HashMap<String, String>, k: &str) -> Result<Option<u64>, MarketErr> {
    q.get(k).map(|v| v.parse::<u64>().map_err(|_| bad(format!("{k} must be a number")))).transpose()
}

pub(crate) fn addr(q: &HashMap<String, String>, k: &str) -> Result<Option<Address>, MarketErr> {
    q.get(k).map(|v| v.parse::<Address>().map_err(|_| bad(format!("{k} must be an address")))).transpose()
}

/// An address filter that also takes `any` (no filter).
fn addr_or_any(q: &HashMap<String, String>, k: &str) -> Result<Option<Address>, MarketErr> {
    match q.get(k).map(String::as_str) {
        None | Some("any") => Ok(None),
        Some(_) => addr(q, k),
    }
}

/// iExec's restriction filter: left out → unrestricted orders only; `any` → any restriction; an
/// address → orders usable by it (restricted to it, or unrestricted unless `strict`).
fn restriction(q: &HashMap<String, String>, k: &str, strict: &str) -> Result<Want, MarketErr> {
    let strict = flag(q, strict)?;
    Ok(match q.get(k).map(String::as_str) {
        None => Want::Unrestricted,
        Some("any") => Want::Any,
        Some(_) => {
            let a = addr(q, k)?.unwrap_or_default();
            if strict { Want::Exactly(a) } else { Want::Usable(a) }
        }
    })
}

/// `(pageIndex, pageSize)`: iExec's paging (pageSize 10 to 1000, 20 by default).
pub(crate) fn paging(q: &HashMap<String, String>) -> Result<(u64, u64), MarketErr> {
    let size = number(q, "pageSize")?.unwrap_or(20);
    if !(10..=1000).contains(&size) {
        return Err(bad("pageSize is between 10 and 1000"));
    }
    Ok((number(q, "pageIndex")?.unwrap_or(0), size))
}

/// The book query of a `GET /{kind}orders` with iExec's filters.
fn market_query(kind: OrderKind, q: &HashMap<String, String>) -> Result<BookQuery, MarketErr> {
    let tag = |k: &str| -> Result<Option<B256>, MarketErr> {
        q.get(k).map(|v| veil_core::tag::parse(v).map_err(|e| bad(format!("{k}: {e}")))).transpose()
    };
    let (page, page_size) = paging(q)?;
    let mut query = BookQuery {
        min_tag: tag("minTag")?,
        max_tag: tag("maxTag")?,
        min_volume: number(q, "minVolume")?,
        page: Some(page),
        page_size: Some(page_size),
        ..Default::default()
    };
    let any = Want::Any;
    match kind {
        OrderKind::App => {
            query.app = addr_or_any(q, "app")?;
            query.signer = addr(q, "appOwner")?;
            if !q.contains_key("app") && query.signer.is_none() {
                return Err(bad("app or appOwner is required"));
            }
            query.restrictions = Some(Restrictions {
                app: any,
                dataset: restriction(q, "dataset", "isDatasetStrict")?,
                workerpool: restriction(q, "workerpool", "isWorkerpoolStrict")?,
                requester: restriction(q, "requester", "isRequesterStrict")?,
            });
        }
        OrderKind::Dataset => {
            query.dataset = addr_or_any(q, "dataset")?;
            query.signer = addr(q, "datasetOwner")?;
            if !q.contains_key("dataset") && query.signer.is_none() {
                return Err(bad("dataset or datasetOwner is required"));
            }
            query.bulk_only = flag(q, "bulkOnly")?;
            query.restrictions = Some(Restrictions {
                app: restriction(q, "app", "isAppStrict")?,
                dataset: any,
                workerpool: restriction(q, "workerpool", "isWorkerpoolStrict")?,
                requester: restriction(q, "requester", "isRequesterStrict")?,
            });
        }
        OrderKind::Workerpool => {
            query.workerpool = addr_or_any(q, "workerpool")?;
            query.signer = addr(q, "workerpoolOwner")?;
            query.category = number(q, "category")?;
            // Trust 0 and 1 mean the same: iExec's market ignores a minimum of 1 or less.
            query.min_trust = number(q, "minTrust")?.filter(|t| *t > 1);
            query.restrictions = Some(Restrictions {
                app: restriction(q, "app", "isAppStrict")?,
                dataset: restriction(q, "dataset", "isDatasetStrict")?,
                workerpool: any,
                requester: restriction(q, "requester", "isRequesterStrict")?,
            });
        }
        OrderKind::Request => {
            query.app = addr_or_any(q, "app")?;
            query.dataset = addr_or_any(q, "dataset")?;
            query.requester = addr_or_any(q, "requester")?;
            query.beneficiary = addr_or_any(q, "beneficiary")?;
            query.category = number(q, "category")?;
            query.max_trust = number(q, "maxTrust")?;
            query.restrictions = Some(Restrictions {
                workerpool: restriction(q, "workerpool", "isWorkerpoolStrict")?,
                ..Default::default()
            });
        }
    }
    Ok(query)
}

/// `GET /{kind}orders?chainId&…` with iExec's filters and paging.
async fn list<T: MarketHost>(
    State(h): State<Arc<T>>,
    uri: axum::http::Uri,
    Query(q): Query<HashMap<String, String>>,
) -> MResult {
    let (kind, _) = kind_of(&uri)?;
    check_chain(h.as_ref(), &q)?;
    let query = market_query(kind, &q)?;
    let book = h.book().lock().unwrap_or_else(|p| p.into_inner());
    let page = book.query(kind, &query);
    let chain_id = h.domain().chain_id;
    let orders: Vec<Value> = page.orders.iter().map(|e| entry_json(e, chain_id)).collect();
    let mut v = json!({ "ok": true, "count": page.count, "orders": orders });
    if let Some(n) = page.next_page {
        v["nextPage"] = json!(n);
    }
    Ok(Json(v))
}

/// The market routes for `host`, to merge at the root of its router. (`/deals/{id}` and
/// `/categories`, which Veil's API has too, are answered in iExec's shape when asked with a
/// `chainId`: see [`crate::market_deals`].)
pub(crate) fn routes<T: MarketHost>() -> axum::Router<Arc<T>> {
    use axum::routing::get;
    let mut r = crate::compass::routes::<T>()
        .route("/challenge", get(challenge::<T>))
        .route("/deals", get(crate::market_deals::deals::<T>))
        .route("/categories/{catid}", get(crate::market_deals::category::<T>));
    for kind in ["apporders", "datasetorders", "workerpoolorders", "requestorders"] {
        r = r
            .route(&format!("/{kind}"), get(list::<T>).post(publish::<T>).put(unpublish::<T>))
            .route(&format!("/{kind}/{{hash}}"), get(get_one::<T>));
    }
    r
}
