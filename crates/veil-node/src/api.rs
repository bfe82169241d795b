//! The HTTP API (JSON). Errors map to HTTP statuses only here; every error body is
//! `{"error": "...", "kind": "..."}` and says what was wrong.

use crate::node::Shared;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::Stream;
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc, oneshot};
use veil_core::block::{Block, Receipt};
use veil_core::book::{BookEntry, BookQuery};
use veil_core::orders::OrderKind;
use veil_core::tx::MAX_TX_BYTES;
use veil_core::{Address, B256, CoreError, verify_with};
use veil_sdk::*;

/// Largest request body accepted.
pub const MAX_BODY: usize = MAX_TX_BYTES;
/// Largest `POST /txs` body.
pub const MAX_BATCH_BODY: usize = 8 * 1024 * 1024;

pub(crate) struct ApiErr {
    pub(crate) status: StatusCode,
    kind: &'static str,
    pub(crate) message: String,
}

impl ApiErr {
    pub(crate) fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiErr {
        ApiErr { status, kind, message: message.into() }
    }

    pub(crate) fn bad(message: impl Into<String>) -> ApiErr {
        ApiErr::new(StatusCode::BAD_REQUEST, "malformed", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> ApiErr {
        ApiErr::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub(crate) fn internal(e: impl std::fmt::Display) -> ApiErr {
        ApiErr::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    }
}

impl ApiErr {
    fn into_item(self) -> BatchItem {
        BatchItem::Refused { status: self.status.as_u16(), error: self.message, kind: self.kind.to_string() }
    }
}

impl IntoResponse for ApiErr {
    fn into_response(self) -> Response {
        (self.status, Json(ApiError { error: self.message, kind: self.kind.to_string() })).into_response()
    }
}

impl From<CoreError> for ApiErr {
    fn from(e: CoreError) -> ApiErr {
        let (status, kind) = match &e {
            CoreError::TxSignature(_) | CoreError::WrongSigner { .. } => (StatusCode::UNAUTHORIZED, "bad_signature"),
            CoreError::BadNonce { .. } => (StatusCode::CONFLICT, "bad_nonce"),
            CoreError::WrongChain { .. } => (StatusCode::BAD_REQUEST, "wrong_chain"),
            _ => (StatusCode::UNPROCESSABLE_ENTITY, "rejected"),
        };
        ApiErr::new(status, kind, e.to_string())
    }
}

pub(crate) type ApiResult<T> = Result<Json<T>, ApiErr>;
type S = State<Arc<Shared>>;

pub(crate) fn body(b: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiErr> {
    b.map_err(|e| {
        let status = e.status();
        let kind = if status == StatusCode::PAYLOAD_TOO_LARGE { "too_large" } else { "malformed" };
        ApiErr::new(status, kind, format!("{} (bodies are limited to {MAX_BODY} bytes)", e.body_text()))
    })
}

pub(crate) fn address(s: &str) -> Result<Address, ApiErr> {
    s.parse().map_err(|_| ApiErr::bad(format!("`{s}` is not an address (0x + 40 hex characters)")))
}

pub(crate) fn hash32(s: &str) -> Result<B256, ApiErr> {
    s.parse().map_err(|_| ApiErr::bad(format!("`{s}` is not a 32-byte hash (0x + 64 hex characters)")))
}

pub(crate) fn json_body<T: serde::de::DeserializeOwned>(b: &Bytes) -> Result<T, ApiErr> {
    serde_json::from_slice(b).map_err(|e| ApiErr::bad(format!("invalid JSON body: {e}")))
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/chain", get(chain))
        .route("/openapi.json", get(|| async { Json(crate::openapi::document()) }))
        .route("/tx", post(submit))
        .route("/txs", post(submit_batch).layer(DefaultBodyLimit::max(MAX_BATCH_BODY)))
        .route("/tx/{hash}", get(receipt))
        .route("/blocks/latest", get(latest_block))
        .route("/blocks/{n}", get(block))
        .route("/accounts/{address}", get(account))
        .route("/apps", get(apps))
        .route("/apps/{address}", get(app))
        .route("/datasets", get(datasets))
        .route("/datasets/{address}", get(dataset))
        .route("/workerpools", get(workerpools))
        .route("/workerpools/{address}", get(workerpool))
        .route("/categories", get(categories))
        .route("/deals/{id}", get(deal))
        .route("/tasks/{id}", get(task))
        .route("/consumed/{hash}", get(consumed))
        .route("/orders", post(publish))
        .route("/orders/unpublish", post(unpublish))
        .route("/orders/{hash}", get(order::<Shared>))
        .route("/orderbook/{kind}", get(orderbook::<Shared>))
        .merge(crate::market::routes::<Shared>())
        .route("/events", get(events))
        .fallback(|| async { ApiErr::not_found("no such endpoint; see /openapi.json") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared)
}

async fn chain(State(s): S) -> ApiResult<ChainInfo> {
    let l = s.ledger.read().unwrap_or_else(|p| p.into_inner());
    Ok(Json(ChainInfo {
        chain_id: l.state.domain.chain_id,
        domain: l.state.domain,
        head: l.head.number,
        head_hash: l.head_hash,
        state_digest: l.head.state_digest,
        timestamp: l.head.timestamp,
        dev: s.dev,
        categories: l.state.categories.iter().map(|(k, v)| (*k, v.clone())).collect(),
        evm: None,
    }))
}

async fn submit(State(s): S, b: Result<Bytes, BytesRejection>) -> ApiResult<Receipt> {
    let b = body(b)?;
    let stx = veil_core::tx::decode(&b).map_err(|e| ApiErr::bad(e.to_string()))?;
    let vtx = verify_with(stx, &s.domain, &|h, sig| s.signers.recover(h, sig))?;
    let (reply, wait) = oneshot::channel();
    s.submit.send((vtx, reply)).await.map_err(|_| ApiErr::internal("the sequencer has stopped"))?;
    let r = wait.await.map_err(|_| ApiErr::internal("the sequencer has stopped"))??;
    Ok(Json(r))
}

/// Several signed transactions, sequenced in the given order (so one sender's consecutive nonces
/// can travel together); each gets its own receipt or refusal.
async fn submit_batch(State(s): S, b: Result<Bytes, BytesRejection>) -> ApiResult<Vec<BatchItem>> {
    let b = body(b)?;
    let raw: Vec<serde_json::Value> = json_body(&b)?;
    if raw.len() > MAX_BATCH_TXS {
        return Err(ApiErr::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("{} transactions in one batch, at most {MAX_BATCH_TXS}: split it", raw.len()),
        ));
    }
    let mut answers: Vec<Option<BatchItem>> = vec![None; raw.len()];
    let mut waiting = vec![];
    for (i, r) in raw.iter().enumerate() {
        let checked = veil_core::tx::decode(r.to_string().as_bytes())
            .map_err(|e| ApiErr::bad(e.to_string()))
            .and_then(|stx| verify_with(stx, &s.domain, &|h, sig| s.signers.recover(h, sig)).map_err(ApiErr::from));
        match checked {
            Ok(vtx) => {
                let (reply, wait) = oneshot::channel();
                s.submit.send((vtx, reply)).await.map_err(|_| ApiErr::internal("the sequencer has stopped"))?;
                waiting.push((i, wait));
            }
            Err(e) => answers[i] = Some(e.into_item()),
        }
    }
    for (i, wait) in waiting {
        let r = wait.await.map_err(|_| ApiErr::internal("the sequencer has stopped"))?;
        answers[i] = Some(match r {
            Ok(receipt) => BatchItem::Receipt(receipt),
            Err(e) => ApiErr::from(e).into_item(),
        });
    }
    Ok(Json(answers.into_iter().flatten().collect()))
}

async fn receipt(State(s): S, Path(h): Path<String>) -> ApiResult<Receipt> {
    let h = hash32(&h)?;
    let store = s.ledger.read().unwrap_or_else(|p| p.into_inner()).store.clone();
    let (n, i) = store
        .tx_location(&h)
        .map_err(ApiErr::internal)?
        .ok_or_else(|| ApiErr::not_found(format!("no transaction {h} in any block")))?;
    let block = store.block(n).map_err(ApiErr::internal)?.ok_or_else(|| ApiErr::internal("indexed block missing"))?;
    block.receipts.get(i as usize).cloned().map(Json).ok_or_else(|| ApiErr::internal("indexed receipt missing"))
}

async fn latest_block(State(s): S) -> ApiResult<Block> {
    let n = s.ledger.read().unwrap_or_else(|p| p.into_inner()).head.number;
    block_n(&s, n)
}

async fn block(State(s): S, Path(n): Path<String>) -> ApiResult<Block> {
    let n: u64 = n.parse().map_err(|_| ApiErr::bad(format!("`{n}` is not a block number")))?;
    block_n(&s, n)
}

fn block_n(s: &Shared, n: u64) -> ApiResult<Block> {
    let l = s.ledger.read().unwrap_or_else(|p| p.into_inner());
    if n == 0 {
        let header = l.genesis.clone();
        return Ok(Json(Block { hash: header.hash(), header, txs: vec![], receipts: vec![] }));
    }
    l.store
        .block(n)
        .map_err(ApiErr::internal)?
        .map(Json)
        .ok_or_else(|| ApiErr::not_found(format!("no block {n} (head is {})", l.head.number)))
}

async fn account(State(s): S, Path(a): Path<String>) -> ApiResult<AccountView> {
    let a = address(&a)?;
    let l = s.ledger.read().unwrap_or_else(|p| p.into_inner());
    Ok(Json(AccountView { address: a, account: l.state.account(&a) }))
}

#[derive(Deserialize)]
struct OwnerQuery {
    owner: Option<Address>,
}

fn owner_of(q: Result<Query<OwnerQuery>, QueryRejection>) -> Result<Address, ApiErr> {
    let Query(q) = q.map_err(|e| ApiErr::bad(e.body_text()))?;
    q.owner.ok_or_else(|| ApiErr::bad("pass ?owner=0x… (listing every asset is not offered)"))
}

macro_rules! asset_routes {
    ($one:ident, $list:ident, $table:ident, $ty:ty, $kind:literal) => {
        async fn $one(State(s): S, Path(a): Path<String>) -> ApiResult<AssetView<$ty>> {
            let a = address(&a)?;
            let l = s.ledger.read().unwrap_or_else(|p| p.into_inner());
            let asset =
                l.state.$table.get(&a).cloned().ok_or_else(|| ApiErr::not_found(format!("no {} {a}", $kind)))?;
            Ok(Json(AssetView { address: a, asset }))
        }

        async fn $list(State(s): S, q: Result<Query<OwnerQuery>, QueryRejection>) -> ApiResult<Vec<AssetView<$ty>>> {
            let owner = owner_of(q)?;
            let l = s.ledger.read().unwrap_or_else(|p| p.into_inner());
            let v = l
                .state
                .$table
                .iter()
                .filter(|(_, x)| x.owner == owner)
                .map(|(a, x)| AssetView { address: *a, asset: x.clone() });
            Ok(Json(v.collect()))
        }
    };
}

asset_routes!(app, apps, apps, veil_core::state::App, "app");
asset_routes!(dataset, datasets, datasets, veil_core::state::Dataset, "dataset");
asset_routes!(workerpool, workerpools, workerpools, veil_core::state::Workerpool, "workerpool");

fn categories_of(s: &Shared) -> Vec<(u64, veil_core::state::Category)> {
    let l = s.ledger.read().unwrap_or_else(|p| p.into_inner());
    l.state.categories.iter().map(|(k, v)| (*k, v.clone())).collect()
}

/// Veil's categories, or iExec's market answer when asked with a `chainId`.
async fn categories(State(s): S, Query(q): Query<std::collections::HashMap<String, String>>) -> Response {
    match crate::market_deals::wants_iexec(&q) {
        true => crate::market_deals::categories(s, &q).await.into_response(),
        false => Json(categories_of(&s)).into_response(),
    }
}

/// Veil's deal, or iExec's market answer when asked with a `chainId`.
async fn deal(
    State(s): S,
    Path(id): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    if crate::market_deals::wants_iexec(&q) {
        return crate::market_deals::deal(s, &id, &q).await.into_response();
    }
    let found = hash32(&id).and_then(|id| {
        let l = s.ledger.read().unwrap_or_else(|p| p.into_inner());
        let deal = l.state.deals.get(&id).cloned().ok_or_else(|| ApiErr::not_found(format!("no deal {id}")))?;
        Ok(DealView { dealid: id, deal })
    });
    found.map(Json).into_response()
}

/// Volume consumed of an order (its EIP-712 typed hash): 0 for an order never matched.
async fn consumed(State(s): S, Path(hash): Path<String>) -> ApiResult<ConsumedView> {
    let order_hash = hash32(&hash)?;
    let l = s.ledger.read().unwrap_or_else(|p| p.into_inner());
    Ok(Json(ConsumedView { order_hash, consumed: l.state.consumed(&order_hash) }))
}

async fn task(State(s): S, Path(id): Path<String>) -> ApiResult<TaskView> {
    let id = hash32(&id)?;
    let l = s.ledger.read().unwrap_or_else(|p| p.into_inner());
    let task = l
        .state
        .tasks
        .get(&id)
        .cloned()
        .ok_or_else(|| ApiErr::not_found(format!("no task {id} (not initialized yet?)")))?;
    Ok(Json(TaskView { taskid: id, task }))
}

async fn publish(State(s): S, b: Result<Bytes, BytesRejection>) -> ApiResult<BookEntry> {
    let req: PublishRequest = json_body(&body(b)?)?;
    let l = s.ledger.read().unwrap_or_else(|p| p.into_inner());
    let mut book = s.book.lock().unwrap_or_else(|p| p.into_inner());
    book.publish(&l.store, &l.state, req.order, req.sign).map(Json).map_err(book_err)
}

async fn unpublish(State(s): S, b: Result<Bytes, BytesRejection>) -> ApiResult<BookEntry> {
    let req: UnpublishRequest = json_body(&body(b)?)?;
    let who = unpublish_signer(&req);
    let l = s.ledger.read().unwrap_or_else(|p| p.into_inner());
    let mut book = s.book.lock().unwrap_or_else(|p| p.into_inner());
    book.unpublish(&l.store, &req.order_hash, req.published, who).map(Json).map_err(book_err)
}

pub(crate) fn book_err(e: crate::book::BookError) -> ApiErr {
    use crate::book::BookError::*;
    match e {
        Invalid(m) => ApiErr::new(StatusCode::UNPROCESSABLE_ENTITY, "rejected", m),
        NotFound(_) => ApiErr::not_found(e.to_string()),
        NotSigner(_) => ApiErr::new(StatusCode::UNAUTHORIZED, "bad_signature", e.to_string()),
        Store(e) => ApiErr::internal(e),
    }
}

/// A service holding an orderbook (the node with its ledger, or the node serving a chain).
pub(crate) trait HasBook: Send + Sync + 'static {
    fn book(&self) -> &std::sync::Mutex<crate::book::Book>;
}

impl HasBook for Shared {
    fn book(&self) -> &std::sync::Mutex<crate::book::Book> {
        &self.book
    }
}

impl crate::market::MarketHost for Shared {
    fn domain(&self) -> veil_core::Domain {
        self.domain
    }

    fn deals(self: Arc<Self>) -> futures_util::future::BoxFuture<'static, Result<Vec<DealView>, ApiErr>> {
        let l = self.ledger.read().unwrap_or_else(|p| p.into_inner());
        let all = l.state.deals.iter().map(|(id, d)| DealView { dealid: *id, deal: d.clone() }).collect();
        Box::pin(std::future::ready(Ok(all)))
    }

    fn categories(
        self: Arc<Self>,
    ) -> futures_util::future::BoxFuture<'static, Result<Vec<(u64, veil_core::state::Category)>, ApiErr>> {
        Box::pin(std::future::ready(Ok(categories_of(&self))))
    }

    fn workerpool_owner(
        self: Arc<Self>,
        pool: Address,
    ) -> futures_util::future::BoxFuture<'static, Result<Option<Address>, ApiErr>> {
        let l = self.ledger.read().unwrap_or_else(|p| p.into_inner());
        Box::pin(std::future::ready(Ok(l.state.workerpools.get(&pool).map(|w| w.owner))))
    }

    fn pool_apis(&self) -> &crate::compass::PoolApis {
        &self.pool_apis
    }

    fn challenges(&self) -> &crate::market::Challenges {
        &self.challenges
    }

    fn publish_signed(
        self: Arc<Self>,
        order: veil_core::tx::AnyOrder,
        sign: veil_core::Signature,
    ) -> futures_util::future::BoxFuture<'static, Result<BookEntry, ApiErr>> {
        let l = self.ledger.read().unwrap_or_else(|p| p.into_inner());
        let mut book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        let r = book.publish(&l.store, &l.state, order, Some(sign)).map_err(book_err);
        Box::pin(std::future::ready(r))
    }

    fn unpublish_by(&self, hash: &B256, signer: Address) -> Result<BookEntry, ApiErr> {
        let l = self.ledger.read().unwrap_or_else(|p| p.into_inner());
        let mut book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        book.unpublish_current(&l.store, hash, signer).map_err(book_err)
    }
}

pub(crate) async fn order<T: HasBook>(State(s): State<Arc<T>>, Path(h): Path<String>) -> ApiResult<BookEntry> {
    let h = hash32(&h)?;
    let book = s.book().lock().unwrap_or_else(|p| p.into_inner());
    book.get(&h).cloned().map(Json).ok_or_else(|| ApiErr::not_found(format!("order {h} is not in the book")))
}

pub(crate) async fn orderbook<T: HasBook>(
    State(s): State<Arc<T>>,
    Path(kind): Path<String>,
    q: Result<Query<BookQuery>, QueryRejection>,
) -> ApiResult<OrderbookPage> {
    let kind: OrderKind = kind.parse().map_err(ApiErr::bad)?;
    let Query(q) = q.map_err(|e| ApiErr::bad(e.body_text()))?;
    let book = s.book().lock().unwrap_or_else(|p| p.into_inner());
    Ok(Json(book.query(kind, &q)))
}

#[derive(Deserialize)]
struct FromQuery {
    from: Option<u64>,
}

/// Server-sent events: every block from `from` on as a [`StreamBlock`], then live blocks.
async fn events(
    State(s): S,
    q: Result<Query<FromQuery>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiErr> {
    let Query(q) = q.map_err(|e| ApiErr::bad(e.body_text()))?;
    let mut heads = s.heads.subscribe();
    let store = s.ledger.read().unwrap_or_else(|p| p.into_inner()).store.clone();
    let (tx, rx) = mpsc::channel::<SseEvent>(64);
    tokio::spawn(async move {
        let mut next = q.from.unwrap_or(1).max(1);
        loop {
            let head = store.last_block().ok().flatten().unwrap_or(0);
            while next <= head {
                let Ok(Some(b)) = store.block(next) else { return };
                let msg = StreamBlock {
                    number: b.header.number,
                    hash: b.hash,
                    timestamp: b.header.timestamp,
                    receipts: b.receipts,
                };
                let data = serde_json::to_string(&msg).unwrap_or_default();
                if tx.send(SseEvent::default().event("block").id(next.to_string()).data(data)).await.is_err() {
                    return;
                }
                next += 1;
            }
            match heads.recv().await {
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
