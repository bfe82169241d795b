//! A node without a ledger of its own: Veil's off-chain services for a chain whose ledger is PoCo on
//! an EVM chain (`veil node --rpc URL --hub ADDRESS`).
//!
//! It serves blob storage, the SMS (its lookups through the ledger trait), and the orderbook, whose
//! checks read the chain just before publishing (the signer owns the asset, `viewConsumed` leaves
//! volume) and which follows the chain's blocks to prune filled, cancelled and transferred orders.
//! The last block it processed is stored, so a restart resumes there. `GET /chain` is the chain's
//! own answer plus where its RPC and hub are, so clients given only this node's URL find the ledger;
//! reads (`/accounts`, `/deals`, `/tasks`, …) are answered from the chain. It never signs or relays
//! transactions: those go to the chain's RPC, signed by their senders.

use crate::api::{ApiErr, ApiResult, address, body, book_err, hash32, json_body, order, orderbook};
use crate::book::{Book, ChainFacts};
use crate::node::{NodeConfig, NodeError};
use crate::store::Store;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use veil_core::Domain;
use veil_core::book::BookEntry;
use veil_core::tx::AnyOrder;
use veil_sdk::{
    AccountView, AssetView, Backoff, BlockEvents, ChainInfo, ConsumedView, DealView, Ledger, PublishRequest, SdkError,
    TaskView, UnpublishRequest, unpublish_signer,
};

/// Meta key of the last block whose events the orderbook applied.
const FOLLOWED: &str = "followed_block";
/// Meta key of the chain this folder belongs to.
const DOMAIN: &str = "chain_domain";
/// The followed block is written at least this often even when no order changed.
const SAVE_EVERY_BLOCKS: u64 = 500;

pub struct ChainNode {
    ledger: Arc<dyn Ledger>,
    store: Store,
    book: Mutex<Book>,
    domain: Domain,
    followed: Mutex<(u64, u64)>,
    /// iExec's market API: challenges handed out, not used yet.
    challenges: crate::market::Challenges,
    /// iExec's compass: workerpools' API URLs.
    pool_apis: crate::compass::PoolApis,
}

fn service(what: &str, e: impl std::fmt::Display) -> NodeError {
    NodeError::Service(format!("{what}: {e}"))
}

impl ChainNode {
    /// Opens the orderbook in `data_dir` for this chain (refusing a folder made for another chain)
    /// and checks every stored order against the chain as it is now.
    pub async fn open(data_dir: &std::path::Path, ledger: Arc<dyn Ledger>) -> Result<Arc<ChainNode>, NodeError> {
        let info = ledger.chain().await.map_err(|e| service("the chain", e))?;
        std::fs::create_dir_all(data_dir).map_err(|e| service(&format!("cannot create {}", data_dir.display()), e))?;
        let store = Store::open(&data_dir.join("book.redb"))?;
        let domain_json = serde_json::to_vec(&info.domain).unwrap_or_default();
        match store.meta(DOMAIN)? {
            Some(d) if d != domain_json => {
                return Err(NodeError::Service(format!(
                    "{} holds the services of another chain ({}), not of {}: use another --data-dir",
                    data_dir.display(),
                    String::from_utf8_lossy(&d),
                    ledger.describe()
                )));
            }
            Some(_) => {}
            None => store.set_meta(DOMAIN, &domain_json)?,
        }
        let followed = match store.meta(FOLLOWED)? {
            Some(b) if b.len() == 8 => u64::from_be_bytes(b.try_into().unwrap_or_default()),
            _ => {
                // A new book holds no order: nothing before the head can concern it.
                store.set_meta(FOLLOWED, &info.head.to_be_bytes())?;
                info.head
            }
        };
        let stored: Vec<AnyOrder> = store.orders()?.into_iter().map(|e| e.order).collect();
        let facts = gather(ledger.as_ref(), info.domain, &stored).await.map_err(|e| service("the chain", e))?;
        let book = Book::load(&store, &facts)?;
        Ok(Arc::new(ChainNode {
            ledger,
            store,
            book: Mutex::new(book),
            domain: info.domain,
            followed: Mutex::new((followed, followed)),
            challenges: crate::market::challenges(info.domain.chain_id),
            pool_apis: Default::default(),
        }))
    }

    /// The last block whose events the orderbook applied.
    pub fn followed(&self) -> u64 {
        self.followed.lock().unwrap_or_else(|p| p.into_inner()).0
    }

    /// Applies the chain's blocks to the orderbook, forever: when the chain goes away it retries
    /// with a growing pause and resumes after the last block it applied.
    pub async fn follow(self: Arc<Self>) {
        let mut backoff = Backoff::new();
        loop {
            match self.ledger.follow(self.followed() + 1).await {
                Ok(mut stream) => {
                    while let Some(b) = stream.next().await {
                        let applied = match b {
                            Ok(b) => self.on_block(&b).await,
                            Err(e) => Err(e.to_string()),
                        };
                        if let Err(e) = applied {
                            let pause = backoff.next();
                            tracing::warn!("following {}: {e} (again in {pause:?})", self.ledger.describe());
                            break;
                        }
                        backoff.reset();
                    }
                }
                Err(e) => {
                    let pause = backoff.next();
                    tracing::warn!("cannot follow {}: {e} (again in {pause:?})", self.ledger.describe())
                }
            }
            backoff.wait().await;
        }
    }

    async fn on_block(&self, b: &BlockEvents) -> Result<(), String> {
        // Deals are indexed for iExec's market API (`GET /deals`): the chain has no list of them.
        let mut deals = vec![];
        for e in &b.events {
            if let veil_core::events::Event::OrdersMatched {
                dealid,
                app_hash,
                dataset_hash,
                workerpool_hash,
                request_hash,
                ..
            } = e
            {
                let mut v = self.ledger.deal(dealid).await.map_err(|e| e.to_string())?;
                // PoCo's viewDeal has no order hashes: the event names them.
                v.deal.app_order_hash = *app_hash;
                v.deal.dataset_order_hash = *dataset_hash;
                v.deal.workerpool_order_hash = *workerpool_hash;
                v.deal.request_order_hash = *request_hash;
                deals.push(v);
            }
        }
        if !deals.is_empty() {
            self.store.put_deals(&deals).map_err(|e| e.to_string())?;
        }
        let (hashes, orders) = {
            let book = self.book.lock().unwrap_or_else(|p| p.into_inner());
            let hashes = book.changed_by(b.events.iter());
            let orders = book.orders(&hashes);
            (hashes, orders)
        };
        if !hashes.is_empty() {
            let facts = gather(self.ledger.as_ref(), self.domain, &orders).await.map_err(|e| e.to_string())?;
            let mut book = self.book.lock().unwrap_or_else(|p| p.into_inner());
            book.refresh(&self.store, &facts, &hashes).map_err(|e| e.to_string())?;
        }
        let mut f = self.followed.lock().unwrap_or_else(|p| p.into_inner());
        f.0 = b.block;
        if !hashes.is_empty() || b.block >= f.1 + SAVE_EVERY_BLOCKS {
            self.store.set_meta(FOLLOWED, &b.block.to_be_bytes()).map_err(|e| e.to_string())?;
            f.1 = b.block;
        }
        Ok(())
    }
}

/// Reads from the chain what the orderbook checks these orders against: their assets' owners and
/// their consumed volume.
pub async fn gather(ledger: &dyn Ledger, domain: Domain, orders: &[AnyOrder]) -> Result<ChainFacts, SdkError> {
    let mut owners = HashMap::new();
    let mut consumed = HashMap::new();
    for o in orders {
        let asset = o.asset();
        if !matches!(o, AnyOrder::Request(_)) && !owners.contains_key(&asset) {
            let owner = match o {
                AnyOrder::App(_) => ledger.app(&asset).await.map(|v| v.asset.owner),
                AnyOrder::Dataset(_) => ledger.dataset(&asset).await.map(|v| v.asset.owner),
                _ => ledger.workerpool(&asset).await.map(|v| v.asset.owner),
            };
            match owner {
                Ok(owner) => {
                    owners.insert(asset, owner);
                }
                Err(e) if e.kind() == Some("not_found") => {}
                Err(e) => return Err(e),
            }
        }
        let hash = o.typed_hash(&domain);
        consumed.insert(hash, ledger.consumed(&hash).await?);
    }
    Ok(ChainFacts { domain, owners, consumed })
}

type C = State<Arc<ChainNode>>;

fn ledger_err(e: SdkError) -> ApiErr {
    match &e {
        SdkError::Api { status: 404, .. } => ApiErr::not_found(e.to_string()),
        _ if e.is_transient() => ApiErr::new(StatusCode::BAD_GATEWAY, "unreachable", e.to_string()),
        _ => ApiErr::new(StatusCode::BAD_GATEWAY, "ledger", e.to_string()),
    }
}

pub fn router(node: Arc<ChainNode>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/chain", get(chain))
        .route("/tx", post(no_transactions))
        .route("/txs", post(no_transactions))
        .route("/accounts/{address}", get(account))
        .route("/apps/{address}", get(app))
        .route("/datasets/{address}", get(dataset))
        .route("/workerpools/{address}", get(workerpool))
        .route("/categories", get(categories))
        .route("/deals/{id}", get(deal))
        .route("/tasks/{id}", get(task))
        .route("/consumed/{hash}", get(consumed))
        .route("/orders", post(publish))
        .route("/orders/unpublish", post(unpublish))
        .route("/orders/{hash}", get(order::<ChainNode>))
        .route("/orderbook/{kind}", get(orderbook::<ChainNode>))
        .merge(crate::market::routes::<ChainNode>())
        .fallback(|State(n): C| async move {
            ApiErr::not_found(format!(
                "no such endpoint on this node, which serves the off-chain services of {}",
                n.ledger.describe()
            ))
        })
        .layer(DefaultBodyLimit::max(crate::api::MAX_BODY))
        .with_state(node)
}

async fn chain(State(n): C) -> ApiResult<ChainInfo> {
    n.ledger.chain().await.map(Json).map_err(ledger_err)
}

async fn no_transactions(State(n): C) -> ApiErr {
    ApiErr::new(
        StatusCode::CONFLICT,
        "wrong_ledger",
        format!(
            "this node has no ledger of its own: send transactions to {} (GET /chain says where; the veil CLI finds it by itself)",
            n.ledger.describe()
        ),
    )
}

async fn account(State(n): C, Path(a): Path<String>) -> ApiResult<AccountView> {
    n.ledger.account(&address(&a)?).await.map(Json).map_err(ledger_err)
}

async fn app(State(n): C, Path(a): Path<String>) -> ApiResult<AssetView<veil_core::state::App>> {
    n.ledger.app(&address(&a)?).await.map(Json).map_err(ledger_err)
}

async fn dataset(State(n): C, Path(a): Path<String>) -> ApiResult<AssetView<veil_core::state::Dataset>> {
    n.ledger.dataset(&address(&a)?).await.map(Json).map_err(ledger_err)
}

async fn workerpool(State(n): C, Path(a): Path<String>) -> ApiResult<AssetView<veil_core::state::Workerpool>> {
    n.ledger.workerpool(&address(&a)?).await.map(Json).map_err(ledger_err)
}

/// Veil's categories, or iExec's market answer when asked with a `chainId`.
async fn categories(State(n): C, Query(q): Query<HashMap<String, String>>) -> Response {
    if crate::market_deals::wants_iexec(&q) {
        return crate::market_deals::categories(n, &q).await.into_response();
    }
    n.ledger.chain().await.map(|c| Json(c.categories)).map_err(ledger_err).into_response()
}

/// Veil's deal, or iExec's market answer when asked with a `chainId`.
async fn deal(State(n): C, Path(id): Path<String>, Query(q): Query<HashMap<String, String>>) -> Response {
    if crate::market_deals::wants_iexec(&q) {
        return crate::market_deals::deal(n, &id, &q).await.into_response();
    }
    match hash32(&id) {
        Ok(id) => n.ledger.deal(&id).await.map(Json).map_err(ledger_err).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn task(State(n): C, Path(id): Path<String>) -> ApiResult<TaskView> {
    n.ledger.task(&hash32(&id)?).await.map(Json).map_err(ledger_err)
}

async fn consumed(State(n): C, Path(h): Path<String>) -> ApiResult<ConsumedView> {
    let order_hash = hash32(&h)?;
    let consumed = n.ledger.consumed(&order_hash).await.map_err(ledger_err)?;
    Ok(Json(ConsumedView { order_hash, consumed }))
}

async fn publish(State(n): C, b: Result<axum::body::Bytes, BytesRejection>) -> ApiResult<BookEntry> {
    let req: PublishRequest = json_body(&body(b)?)?;
    if req.sign.is_none() {
        return Err(ApiErr::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "rejected",
            "on an EVM chain this orderbook takes signed orders only: sign the order (veil order sign)",
        ));
    }
    let facts = gather(n.ledger.as_ref(), n.domain, std::slice::from_ref(&req.order)).await.map_err(ledger_err)?;
    let mut book = n.book.lock().unwrap_or_else(|p| p.into_inner());
    book.publish(&n.store, &facts, req.order, req.sign).map(Json).map_err(book_err)
}

async fn unpublish(State(n): C, b: Result<axum::body::Bytes, BytesRejection>) -> ApiResult<BookEntry> {
    let req: UnpublishRequest = json_body(&body(b)?)?;
    let who = unpublish_signer(&req);
    let mut book = n.book.lock().unwrap_or_else(|p| p.into_inner());
    book.unpublish(&n.store, &req.order_hash, req.published, who).map(Json).map_err(book_err)
}

impl crate::api::HasBook for ChainNode {
    fn book(&self) -> &Mutex<Book> {
        &self.book
    }
}

impl crate::market::MarketHost for ChainNode {
    fn domain(&self) -> Domain {
        self.domain
    }

    fn deals(self: Arc<Self>) -> futures_util::future::BoxFuture<'static, Result<Vec<DealView>, ApiErr>> {
        Box::pin(std::future::ready(self.store.deals().map_err(ApiErr::internal)))
    }

    fn workerpool_owner(
        self: Arc<Self>,
        pool: veil_core::Address,
    ) -> futures_util::future::BoxFuture<'static, Result<Option<veil_core::Address>, ApiErr>> {
        Box::pin(async move {
            match self.ledger.workerpool(&pool).await {
                Ok(v) => Ok(Some(v.asset.owner)),
                Err(e) if e.kind() == Some("not_found") => Ok(None),
                Err(e) => Err(ledger_err(e)),
            }
        })
    }

    fn pool_apis(&self) -> &crate::compass::PoolApis {
        &self.pool_apis
    }

    fn categories(
        self: Arc<Self>,
    ) -> futures_util::future::BoxFuture<'static, Result<Vec<(u64, veil_core::state::Category)>, ApiErr>> {
        Box::pin(async move { self.ledger.chain().await.map(|c| c.categories).map_err(ledger_err) })
    }

    fn challenges(&self) -> &crate::market::Challenges {
        &self.challenges
    }

    fn publish_signed(
        self: Arc<Self>,
        order: AnyOrder,
        sign: veil_core::Signature,
    ) -> futures_util::future::BoxFuture<'static, Result<BookEntry, ApiErr>> {
        Box::pin(async move {
            let facts =
                gather(self.ledger.as_ref(), self.domain, std::slice::from_ref(&order)).await.map_err(ledger_err)?;
            let mut book = self.book.lock().unwrap_or_else(|p| p.into_inner());
            book.publish(&self.store, &facts, order, Some(sign)).map_err(book_err)
        })
    }

    fn unpublish_by(&self, hash: &veil_core::B256, signer: veil_core::Address) -> Result<BookEntry, ApiErr> {
        let mut book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        book.unpublish_current(&self.store, hash, signer).map_err(book_err)
    }
}

/// Starts the off-chain services for `ledger`'s chain (orderbook, storage, SMS) and serves them
/// until the process stops; the orderbook follows the chain meanwhile.
pub async fn serve(
    config: NodeConfig,
    ledger: Arc<dyn Ledger>,
    on_ready: impl FnOnce(SocketAddr, u64),
) -> Result<(), NodeError> {
    let (router, followed) = start(&config, ledger).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| NodeError::Bind { addr: config.listen, detail: e.to_string() })?;
    let addr = listener.local_addr().map_err(|e| NodeError::Bind { addr: config.listen, detail: e.to_string() })?;
    on_ready(addr, followed);
    axum::serve(crate::node::nodelay(listener), router)
        .await
        .map_err(|e| NodeError::Bind { addr, detail: e.to_string() })
}

/// Opens the services and starts following the chain; the router to serve and the block the
/// orderbook resumes after.
pub async fn start(config: &NodeConfig, ledger: Arc<dyn Ledger>) -> Result<(Router, u64), NodeError> {
    let node = ChainNode::open(&config.data_dir, ledger.clone()).await?;
    let followed = node.followed();
    tokio::spawn(node.clone().follow());
    // The explorer indexes from where the services started following this chain.
    let explorer = crate::explorer::start(ledger.clone(), node.clone(), followed);
    let lookup: Arc<dyn veil_sms::LedgerLookup> = Arc::new(veil_sms::ledger::Via(ledger));
    let router = router(node).merge(crate::node::services(config, lookup)?).merge(explorer);
    Ok((router, followed))
}
