//! The web explorer at `/explorer`: deals, tasks, assets, accounts and blocks as HTML pages that read
//! without JavaScript, with the home page kept live by server-sent events. It reads the ledger only
//! through the ledger trait (the embedded node's own API, or PoCo), so it is the same for both
//! ledgers, and indexes what the ledger cannot answer directly ([`index`]) as blocks arrive. The
//! orderbook and the schedulers' API URLs come from the node hosting it. All assets are served by
//! the node; nothing is fetched from elsewhere by the browser.

mod html;
pub mod index;
mod pages;

use crate::market::MarketHost;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use futures_util::StreamExt;
use index::Index;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tokio::sync::broadcast;
use veil_core::OrderKind;
use veil_core::book::BookEntry;
use veil_core::events::Event;
use veil_core::tx::AnyOrder;
use veil_core::{Address, B256};
use veil_sdk::{BlockEvents, Ledger};

/// Longest search string accepted.
pub const MAX_QUERY: usize = 200;
/// Tasks of a deal shown per page.
pub const TASKS_PER_PAGE: u64 = 50;

/// What the node hosting the explorer knows beside the ledger.
pub(crate) trait ExplorerHost: Send + Sync + 'static {
    /// Orders in the orderbook for this app, dataset or workerpool.
    fn orders_of(&self, asset: &Address) -> Vec<BookEntry>;
    /// The API URL the workerpool's scheduler announced.
    fn pool_api(&self, pool: &Address) -> Option<String>;
}

impl<T: MarketHost> ExplorerHost for T {
    fn orders_of(&self, asset: &Address) -> Vec<BookEntry> {
        let book = self.book().lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<BookEntry> = [OrderKind::App, OrderKind::Dataset, OrderKind::Workerpool]
            .into_iter()
            .flat_map(|k| book.all(k).cloned().collect::<Vec<_>>())
            .filter(|e| match &e.order {
                AnyOrder::App(o) => o.app == *asset,
                AnyOrder::Dataset(o) => o.dataset == *asset,
                AnyOrder::Workerpool(o) => o.workerpool == *asset,
                AnyOrder::Request(_) => false,
            })
            .collect();
        out.truncate(100);
        out
    }

    fn pool_api(&self, pool: &Address) -> Option<String> {
        self.pool_apis().0.lock().unwrap_or_else(|p| p.into_inner()).get(pool).cloned()
    }
}

pub struct Explorer {
    pub(crate) ledger: Arc<dyn Ledger>,
    pub(crate) host: Arc<dyn ExplorerHost>,
    pub(crate) index: RwLock<Index>,
    /// Each applied block's number, for the live home page.
    updates: broadcast::Sender<u64>,
    pub(crate) http: reqwest::Client,
}

impl Explorer {
    pub(crate) fn new(ledger: Arc<dyn Ledger>, host: Arc<dyn ExplorerHost>) -> Arc<Explorer> {
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(2)).build().unwrap_or_default();
        Arc::new(Explorer {
            ledger,
            host,
            index: RwLock::new(Index::default()),
            updates: broadcast::channel(64).0,
            http,
        })
    }

    /// Follows the ledger from block `from` for as long as the node runs, indexing each block.
    pub(crate) fn follow(self: Arc<Self>, from: u64) {
        self.index.write().unwrap_or_else(|p| p.into_inner()).first = Some(from);
        tokio::spawn(async move {
            let mut next = from;
            let mut backoff = veil_sdk::Backoff::new();
            loop {
                match self.ledger.follow(next).await {
                    Ok(mut blocks) => {
                        while let Some(b) = blocks.next().await {
                            match b {
                                Ok(b) if b.block >= next => {
                                    self.apply(&b).await;
                                    next = b.block + 1;
                                    backoff.reset();
                                }
                                Ok(_) => {}
                                Err(e) => {
                                    tracing::debug!("explorer: following the ledger: {e}");
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) => tracing::debug!("explorer: cannot follow the ledger yet: {e}"),
                }
                backoff.wait().await;
            }
        });
    }

    /// Looks up what the block's events do not say (the deals it made, the deal of each task it
    /// started), then indexes it.
    async fn apply(&self, b: &BlockEvents) {
        let mut deals = HashMap::new();
        let mut task_deals = HashMap::new();
        for e in &b.events {
            match e {
                Event::OrdersMatched { dealid, .. } => {
                    if let Ok(d) = self.ledger.deal(dealid).await {
                        deals.insert(*dealid, d.deal);
                    }
                }
                Event::TaskInitialize { taskid, .. } => {
                    if let Ok(t) = self.ledger.task(taskid).await {
                        task_deals.insert(*taskid, t.task.dealid);
                    }
                }
                _ => {}
            }
        }
        self.index.write().unwrap_or_else(|p| p.into_inner()).apply(b, &deals, &task_deals);
        let _ = self.updates.send(b.block);
    }
}

type S = State<Arc<Explorer>>;

/// Starts an explorer following `ledger` from block `from`, with what `host` knows beside it; its routes.
pub(crate) fn start<T: MarketHost>(ledger: Arc<dyn Ledger>, host: Arc<T>, from: u64) -> axum::Router {
    let x = Explorer::new(ledger, host);
    x.clone().follow(from);
    routes(x)
}

/// The explorer's routes, and `/` leading to it.
pub(crate) fn routes(x: Arc<Explorer>) -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .route("/", get(|| async { Redirect::to("/explorer") }))
        .route("/explorer", get(home))
        .route("/explorer/", get(|| async { Redirect::to("/explorer") }))
        .route("/explorer/live", get(live))
        .route("/explorer/fragments/home", get(home_fragment))
        .route("/explorer/search", get(search))
        .route("/explorer/deals/{id}", get(deal))
        .route("/explorer/tasks/{id}", get(task))
        .route("/explorer/apps/{a}", get(app))
        .route("/explorer/datasets/{a}", get(dataset))
        .route("/explorer/workerpools/{a}", get(workerpool))
        .route("/explorer/accounts/{a}", get(account))
        .route("/explorer/blocks/{n}", get(block))
        .route("/explorer/tx/{hash}", get(transaction))
        .route("/explorer/assets/style.css", get(|| async { asset("text/css", include_str!("style.css")) }))
        .route("/explorer/assets/live.js", get(|| async { asset("text/javascript", include_str!("live.js")) }))
        .route("/explorer/{*rest}", get(not_found_route))
        .with_state(x)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "public, max-age=300")], body).into_response()
}

/// An HTML page with a status.
pub(crate) fn html(status: StatusCode, title: &str, body: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], Html(html::page(title, body))).into_response()
}

/// The "not found" page, saying what was looked for (escaped, clipped).
pub(crate) fn not_found(what: &str, looked_for: &str) -> Response {
    let body = format!(
        r#"<h1>Not found</h1><p>No {} <code>{}</code> on this ledger.</p><p>Search for an address (0x + 40 hex digits), a deal or task id or a transaction hash (0x + 64 hex digits), or go <a href="/explorer">home</a>.</p>"#,
        html::esc(what),
        html::esc(&html::clip(looked_for, 80))
    );
    html(StatusCode::NOT_FOUND, "Not found", &body)
}

async fn not_found_route(uri: axum::http::Uri) -> Response {
    not_found("page", uri.path())
}

fn page_number(q: &HashMap<String, String>) -> u64 {
    q.get("page").and_then(|p| p.parse::<u64>().ok()).unwrap_or(1).clamp(1, 1_000_000)
}

async fn home(State(x): S) -> Response {
    pages::home(&x).await
}

async fn home_fragment(State(x): S) -> Response {
    let body = pages::home_sections(&x).await;
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], body).into_response()
}

/// Server-sent events: `block` with the block number each time one is indexed.
async fn live(State(x): S) -> impl IntoResponse {
    let rx = x.updates.subscribe();
    let stream = tokio_stream_from(rx)
        .map(|n| Ok::<_, std::convert::Infallible>(SseEvent::default().event("block").data(n.to_string())));
    Sse::new(stream).keep_alive(KeepAlive::default())
}

fn tokio_stream_from(rx: broadcast::Receiver<u64>) -> impl futures_util::Stream<Item = u64> {
    futures_util::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(n) => return Some((n, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

async fn search(State(x): S, Query(q): Query<HashMap<String, String>>) -> Response {
    let text = q.get("q").map(|s| s.trim().to_string()).unwrap_or_default();
    if text.len() > MAX_QUERY {
        let body = format!(
            "<h1>Search too long</h1><p>A search is at most {MAX_QUERY} characters: an address, a deal or task id, or a transaction hash.</p>"
        );
        return html(StatusCode::BAD_REQUEST, "Search too long", &body);
    }
    if let Ok(a) = text.parse::<Address>()
        && text.len() == 42
    {
        return Redirect::to(&pages::address_page(&x, &a).await).into_response();
    }
    if let Ok(h) = text.parse::<B256>()
        && text.len() == 66
    {
        if x.ledger.deal(&h).await.is_ok() {
            return Redirect::to(&format!("/explorer/deals/{h}")).into_response();
        }
        if x.ledger.task(&h).await.is_ok() {
            return Redirect::to(&format!("/explorer/tasks/{h}")).into_response();
        }
        if let Ok(Some(_)) = x.ledger.transaction(&h).await {
            return Redirect::to(&format!("/explorer/tx/{h}")).into_response();
        }
    }
    if let Ok(n) = text.trim_start_matches('#').parse::<u64>() {
        return Redirect::to(&format!("/explorer/blocks/{n}")).into_response();
    }
    not_found("address, deal, task, transaction or block", &text)
}

async fn deal(State(x): S, Path(id): Path<String>, Query(q): Query<HashMap<String, String>>) -> Response {
    match id.parse::<B256>() {
        Ok(h) => pages::deal(&x, &h, page_number(&q)).await,
        Err(_) => not_found("deal", &id),
    }
}

async fn task(State(x): S, Path(id): Path<String>) -> Response {
    match id.parse::<B256>() {
        Ok(h) => pages::task(&x, &h).await,
        Err(_) => not_found("task", &id),
    }
}

async fn app(State(x): S, Path(a): Path<String>) -> Response {
    match a.parse::<Address>() {
        Ok(addr) => pages::app(&x, &addr).await,
        Err(_) => not_found("app", &a),
    }
}

async fn dataset(State(x): S, Path(a): Path<String>) -> Response {
    match a.parse::<Address>() {
        Ok(addr) => pages::dataset(&x, &addr).await,
        Err(_) => not_found("dataset", &a),
    }
}

async fn workerpool(State(x): S, Path(a): Path<String>) -> Response {
    match a.parse::<Address>() {
        Ok(addr) => pages::workerpool(&x, &addr).await,
        Err(_) => not_found("workerpool", &a),
    }
}

async fn account(State(x): S, Path(a): Path<String>, Query(q): Query<HashMap<String, String>>) -> Response {
    match a.parse::<Address>() {
        Ok(addr) => pages::account(&x, &addr, page_number(&q)).await,
        Err(_) => not_found("account", &a),
    }
}

async fn block(State(x): S, Path(n): Path<String>) -> Response {
    match n.parse::<u64>() {
        Ok(n) => pages::block(&x, n).await,
        Err(_) => not_found("block", &n),
    }
}

async fn transaction(State(x): S, Path(h): Path<String>) -> Response {
    match h.parse::<B256>() {
        Ok(hash) => pages::transaction(&x, &hash).await,
        Err(_) => not_found("transaction", &h),
    }
}
