//! A typed async client over the node's HTTP API.

use crate::types::*;
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;
use veil_core::block::{Block, Receipt};

use veil_core::book::{BookEntry, BookQuery};
use veil_core::orders::OrderKind;
use veil_core::state::{App, Dataset, Workerpool};
use veil_core::tx::AnyOrder;
use veil_core::{Address, B256, Call, PrivateKey, Signature, SignedTx, Tx};

#[derive(Debug, Clone, thiserror::Error)]
pub enum SdkError {
    #[error(
        "cannot reach the node at {url}: {reason} (is `veil node` running? set --node, VEIL_NODE or `node` in veil.toml)"
    )]
    Unreachable { url: String, reason: String },
    #[error("{message}")]
    Api { status: u16, kind: String, message: String },
    #[error("unexpected answer from the node: {0}")]
    Decode(String),
    /// The EVM backend: PoCo reverted, the RPC refused or could not be reached (the message says which).
    #[error("{message}")]
    Chain { kind: String, message: String },
}

impl SdkError {
    /// The API's error kind (`not_found`, `rejected`, …), when the node answered with an error.
    pub fn kind(&self) -> Option<&str> {
        match self {
            SdkError::Api { kind, .. } | SdkError::Chain { kind, .. } => Some(kind),
            _ => None,
        }
    }

    /// The ledger could not be asked (down, unreachable, overloaded, timed out): asking again later
    /// can help, unlike a refusal.
    pub fn is_transient(&self) -> bool {
        match self {
            SdkError::Unreachable { .. } => true,
            SdkError::Api { status, .. } => *status >= 500,
            SdkError::Chain { kind, .. } => matches!(kind.as_str(), "unreachable" | "timeout"),
            SdkError::Decode(_) => false,
        }
    }
}

/// The process's HTTP client (connection pool shared by every [`Client`] and service). Built once:
/// building one sets up TLS, which reads the system's whole CA bundle (tens of milliseconds).
pub fn http() -> reqwest::Client {
    static HTTP: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    HTTP.get_or_init(|| {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(64)
            .build()
            .unwrap_or_default()
    })
    .clone()
}

#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    /// One nonce sender per key that sent through this client (and its clones), so concurrent
    /// sends of one key share nonces instead of racing for them.
    senders: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<Address, std::sync::Arc<NonceSender>>>>,
}

impl std::fmt::Debug for NonceSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NonceSender({})", self.key.address())
    }
}

impl Client {
    /// A client of the node at `base` (e.g. `http://127.0.0.1:8645`).
    pub fn new(base: &str) -> Client {
        let http = http();
        Client { base: base.trim_end_matches('/').to_string(), http, senders: Default::default() }
    }

    /// The nonce sender of `key` on this client (made on first use; its own client does not keep
    /// senders, so nothing points back here).
    pub fn sender(&self, key: &PrivateKey) -> std::sync::Arc<NonceSender> {
        let mut senders = self.senders.lock().unwrap_or_else(|p| p.into_inner());
        senders
            .entry(key.address())
            .or_insert_with(|| {
                let plain = Client { base: self.base.clone(), http: self.http.clone(), senders: Default::default() };
                std::sync::Arc::new(NonceSender::new(plain, key.clone()))
            })
            .clone()
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn read<T: DeserializeOwned>(&self, resp: Result<reqwest::Response, reqwest::Error>) -> Result<T, SdkError> {
        let resp = resp.map_err(|e| SdkError::Unreachable { url: self.base.clone(), reason: e.to_string() })?;
        let status = resp.status();
        let bytes =
            resp.bytes().await.map_err(|e| SdkError::Unreachable { url: self.base.clone(), reason: e.to_string() })?;
        if !status.is_success() {
            let (kind, message) = match serde_json::from_slice::<ApiError>(&bytes) {
                Ok(e) => (e.kind, e.error),
                Err(_) => ("http".into(), format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes))),
            };
            return Err(SdkError::Api { status: status.as_u16(), kind, message });
        }
        serde_json::from_slice(&bytes).map_err(|e| SdkError::Decode(e.to_string()))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, SdkError> {
        let r = self.http.get(self.url(path)).send().await;
        self.read(r).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, SdkError> {
        let r = self.http.post(self.url(path)).json(body).send().await;
        self.read(r).await
    }

    pub async fn chain(&self) -> Result<ChainInfo, SdkError> {
        self.get("/chain").await
    }

    /// Submits a signed transaction and waits until it is in a persisted block.
    pub async fn submit(&self, stx: &SignedTx) -> Result<Receipt, SdkError> {
        self.post("/tx", stx).await
    }

    /// Submits signed transactions to be sequenced in this order; one answer per transaction, once
    /// all are persisted.
    pub async fn submit_batch(&self, stxs: &[SignedTx]) -> Result<Vec<BatchItem>, SdkError> {
        self.post("/txs", &stxs).await
    }

    /// Signs `call` from `key` with its next nonce (asked from the node) and submits it.
    pub async fn send(&self, key: &PrivateKey, call: Call) -> Result<Receipt, SdkError> {
        let info = self.chain().await?;
        let nonce = self.account(&key.address()).await?.account.nonce;
        let stx = Tx { chain_id: info.chain_id, from: key.address(), nonce, call }.sign(key);
        self.submit(&stx).await
    }

    pub async fn receipt(&self, tx_hash: &B256) -> Result<Receipt, SdkError> {
        self.get(&format!("/tx/{tx_hash}")).await
    }

    pub async fn block(&self, number: u64) -> Result<Block, SdkError> {
        self.get(&format!("/blocks/{number}")).await
    }

    pub async fn latest_block(&self) -> Result<Block, SdkError> {
        self.get("/blocks/latest").await
    }

    pub async fn account(&self, a: &Address) -> Result<AccountView, SdkError> {
        self.get(&format!("/accounts/{a}")).await
    }

    pub async fn app(&self, a: &Address) -> Result<AssetView<App>, SdkError> {
        self.get(&format!("/apps/{a}")).await
    }

    pub async fn dataset(&self, a: &Address) -> Result<AssetView<Dataset>, SdkError> {
        self.get(&format!("/datasets/{a}")).await
    }

    pub async fn workerpool(&self, a: &Address) -> Result<AssetView<Workerpool>, SdkError> {
        self.get(&format!("/workerpools/{a}")).await
    }

    pub async fn apps_of(&self, owner: &Address) -> Result<Vec<AssetView<App>>, SdkError> {
        self.get(&format!("/apps?owner={owner}")).await
    }

    pub async fn datasets_of(&self, owner: &Address) -> Result<Vec<AssetView<Dataset>>, SdkError> {
        self.get(&format!("/datasets?owner={owner}")).await
    }

    pub async fn workerpools_of(&self, owner: &Address) -> Result<Vec<AssetView<Workerpool>>, SdkError> {
        self.get(&format!("/workerpools?owner={owner}")).await
    }

    pub async fn deal(&self, id: &B256) -> Result<DealView, SdkError> {
        self.get(&format!("/deals/{id}")).await
    }

    pub async fn task(&self, id: &B256) -> Result<TaskView, SdkError> {
        self.get(&format!("/tasks/{id}")).await
    }

    pub async fn consumed(&self, order_hash: &B256) -> Result<ConsumedView, SdkError> {
        self.get(&format!("/consumed/{order_hash}")).await
    }

    pub async fn publish(&self, order: AnyOrder, sign: Option<Signature>) -> Result<BookEntry, SdkError> {
        self.post("/orders", &PublishRequest { order, sign }).await
    }

    /// Removes an order from the book; `key` must be the order's signer.
    pub async fn unpublish(&self, order_hash: &B256, key: &PrivateKey) -> Result<BookEntry, SdkError> {
        let published = self.order(order_hash).await?.published;
        let signature = key.sign_message_hash(&unpublish_message(order_hash, published));
        self.post("/orders/unpublish", &UnpublishRequest { order_hash: *order_hash, published, signature }).await
    }

    pub async fn order(&self, hash: &B256) -> Result<BookEntry, SdkError> {
        self.get(&format!("/orders/{hash}")).await
    }

    pub async fn orderbook(&self, kind: OrderKind, q: &BookQuery) -> Result<OrderbookPage, SdkError> {
        let r = self.http.get(self.url(&format!("/orderbook/{kind}"))).query(&query_pairs(q)).send().await;
        self.read(r).await
    }

    /// Blocks from `from` on, then live blocks as they are made (server-sent events).
    pub async fn events(&self, from: u64) -> Result<impl Stream<Item = Result<StreamBlock, SdkError>>, SdkError> {
        self.clone().into_events(from).await
    }

    /// [`Client::events`] owning the client, so the stream outlives the caller's borrow.
    pub async fn into_events(
        self,
        from: u64,
    ) -> Result<impl Stream<Item = Result<StreamBlock, SdkError>> + Send + 'static, SdkError> {
        let resp = self
            .http
            .get(self.url(&format!("/events?from={from}")))
            .send()
            .await
            .map_err(|e| SdkError::Unreachable { url: self.base.clone(), reason: e.to_string() })?;
        if !resp.status().is_success() {
            return Err(self
                .read::<()>(Ok(resp))
                .await
                .err()
                .unwrap_or(SdkError::Decode("event stream refused".into())));
        }
        let bytes = resp.bytes_stream();
        let mut buf = String::new();
        let stream = bytes
            .map(move |chunk| {
                let chunk = chunk.map_err(|e| SdkError::Decode(e.to_string()))?;
                buf.push_str(&String::from_utf8_lossy(&chunk));
                let mut out = vec![];
                while let Some(end) = buf.find("\n\n") {
                    let msg: String = buf.drain(..end + 2).collect();
                    let data: String =
                        msg.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim_start).collect();
                    if !data.is_empty() {
                        out.push(
                            serde_json::from_str::<StreamBlock>(&data).map_err(|e| SdkError::Decode(e.to_string())),
                        );
                    }
                }
                Ok::<_, SdkError>(out)
            })
            .flat_map(|r| {
                let items: Vec<Result<StreamBlock, SdkError>> = match r {
                    Ok(v) => v,
                    Err(e) => vec![Err(e)],
                };
                futures_util::stream::iter(items)
            });
        Ok(stream)
    }
}

/// The query string of an orderbook query (only the filters that are set).
pub fn query_pairs(q: &BookQuery) -> Vec<(&'static str, String)> {
    let mut v = vec![];
    let mut add = |k: &'static str, s: Option<String>| {
        if let Some(s) = s {
            v.push((k, s));
        }
    };
    add("app", q.app.map(|a| a.to_string()));
    add("dataset", q.dataset.map(|a| a.to_string()));
    add("workerpool", q.workerpool.map(|a| a.to_string()));
    add("requester", q.requester.map(|a| a.to_string()));
    add("minTag", q.min_tag.map(|t| t.to_string()));
    add("maxTag", q.max_tag.map(|t| t.to_string()));
    add("category", q.category.map(|c| c.to_string()));
    add("minTrust", q.min_trust.map(|c| c.to_string()));
    add("maxTrust", q.max_trust.map(|c| c.to_string()));
    add("minVolume", q.min_volume.map(|c| c.to_string()));
    add("strict", q.strict.then(|| "true".to_string()));
    add("page", q.page.map(|c| c.to_string()));
    add("pageSize", q.page_size.map(|c| c.to_string()));
    v
}

/// SMS paths: `/sms/{kind}/{target}` (with `/{name}` for requester secrets).
fn sms_path(kind: SecretKind, target: &Address, name: &str) -> String {
    match kind {
        SecretKind::RequesterSecret => format!("/sms/{}/{target}/{name}", kind.as_str()),
        _ => format!("/sms/{}/{target}", kind.as_str()),
    }
}

impl Client {
    pub async fn sms_challenge(&self) -> Result<SmsChallenge, SdkError> {
        self.post("/sms/challenge", &serde_json::json!({})).await
    }

    /// Stores a secret in the SMS, signed by `key` against a fresh challenge.
    pub async fn sms_push(
        &self,
        kind: SecretKind,
        target: &Address,
        name: &str,
        value: &str,
        key: &PrivateKey,
    ) -> Result<SmsExists, SdkError> {
        let c = self.sms_challenge().await?;
        let signature = key.sign_message_hash(&sms_message(kind, target, name, value, &c.challenge));
        let body = SmsWrite { value: value.to_string(), challenge: c.challenge, signature };
        self.post(&sms_path(kind, target, name), &body).await
    }

    pub async fn sms_exists(&self, kind: SecretKind, target: &Address, name: &str) -> Result<bool, SdkError> {
        self.get::<SmsExists>(&sms_path(kind, target, name)).await.map(|e| e.exists)
    }

    /// Uploads a blob from a file, streamed; returns its id (sha256 hex) and size.
    pub async fn upload_file(&self, path: &std::path::Path) -> Result<BlobRef, SdkError> {
        let f = tokio::fs::File::open(path)
            .await
            .map_err(|e| SdkError::Decode(format!("cannot open {}: {e}", path.display())))?;
        let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
        let stream = futures_util::stream::unfold(f, |mut f| async move {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; 256 * 1024];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok::<_, std::io::Error>(buf), f))
                }
                Err(e) => Some((Err(e), f)),
            }
        });
        let body = reqwest::Body::wrap_stream(stream);
        let r = self.http.post(self.url("/blobs")).header("content-length", len.to_string()).body(body).send().await;
        let mut b: BlobRef = self.read(r).await?;
        b.url = format!("{}/blobs/{}", self.base, b.id);
        Ok(b)
    }

    /// Uploads bytes as a blob.
    pub async fn upload_bytes(&self, bytes: Vec<u8>) -> Result<BlobRef, SdkError> {
        let r = self.http.post(self.url("/blobs")).body(bytes).send().await;
        let mut b: BlobRef = self.read(r).await?;
        b.url = format!("{}/blobs/{}", self.base, b.id);
        Ok(b)
    }
}

/// Sends transactions from one key, keeping its nonce locally (asking the node only at first and
/// after a nonce error), so a service does not read its account before every transaction.
///
/// Calls made while a submission is in flight are gathered and sent together as one ordered batch
/// with consecutive nonces (group commit): a busy service gets many transactions into each block
/// instead of one per block.
pub struct NonceSender {
    client: Client,
    key: PrivateKey,
    /// Calls waiting for the next batch, each with where its answer goes.
    queue: std::sync::Mutex<Vec<Pending>>,
    /// Held by whoever is submitting; the next nonce when known.
    next: tokio::sync::Mutex<Option<u64>>,
    /// Fixed at genesis: asked once.
    chain_id: tokio::sync::OnceCell<u64>,
}

struct Pending {
    call: Call,
    reply: tokio::sync::oneshot::Sender<Result<Receipt, SdkError>>,
    /// Times this call met a nonce error with nothing refused before it (a stale nonce).
    retries: u32,
}

/// How often a call is re-signed after stale-nonce errors (another process using the same key).
const MAX_RESIGN: u32 = 4;

impl NonceSender {
    pub fn new(client: Client, key: PrivateKey) -> NonceSender {
        NonceSender {
            client,
            key,
            queue: Default::default(),
            next: tokio::sync::Mutex::new(None),
            chain_id: tokio::sync::OnceCell::new(),
        }
    }

    pub fn address(&self) -> Address {
        self.key.address()
    }

    pub async fn send(&self, call: Call) -> Result<Receipt, SdkError> {
        self.send_many(vec![call]).await.pop().unwrap_or_else(|| Err(SdkError::Decode("no answer".into())))
    }

    /// Sends `calls` in this order; one answer per call.
    pub async fn send_many(&self, calls: Vec<Call>) -> Vec<Result<Receipt, SdkError>> {
        let mut answers = Vec::with_capacity(calls.len());
        {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            for call in calls {
                let (reply, answer) = tokio::sync::oneshot::channel();
                q.push(Pending { call, reply, retries: 0 });
                answers.push(answer);
            }
        }
        self.flush().await;
        let mut out = Vec::with_capacity(answers.len());
        for a in answers {
            out.push(a.await.unwrap_or_else(|_| Err(SdkError::Decode("the sender stopped".into()))));
        }
        out
    }

    /// Our calls were queued before taking the lock, so once we hold it they are either answered
    /// (by the previous holder) or still queued (and we send them).
    async fn flush(&self) {
        let mut next = self.next.lock().await;
        loop {
            let mut batch: Vec<Pending> = {
                let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                let n = q.len().min(MAX_BATCH_TXS);
                q.drain(..n).collect()
            };
            if batch.is_empty() {
                return;
            }
            while !batch.is_empty() {
                batch = self.submit(&mut next, batch).await;
            }
        }
    }

    /// Submits one batch; returns the calls to sign again (their nonces were invalidated by an
    /// earlier refusal in the batch).
    async fn submit(&self, next: &mut Option<u64>, batch: Vec<Pending>) -> Vec<Pending> {
        let start = match self.start_nonce(next).await {
            Ok(n) => n,
            Err(e) => return fail_all(batch, &e),
        };
        let chain_id = self.chain_id.get().copied().unwrap_or_default();
        let from = self.key.address();
        let stxs: Vec<SignedTx> = batch
            .iter()
            .enumerate()
            .map(|(i, p)| Tx { chain_id, from, nonce: start + i as u64, call: p.call.clone() }.sign(&self.key))
            .collect();
        let answers = match self.client.submit_batch(&stxs).await {
            Ok(a) if a.len() == stxs.len() => a,
            Ok(a) => {
                *next = None;
                let e = SdkError::Decode(format!("{} answers to {} transactions", a.len(), stxs.len()));
                return fail_all(batch, &e);
            }
            Err(e) => {
                *next = None;
                return fail_all(batch, &e);
            }
        };
        // A refused transaction leaves the nonce unused, so the ones after it in the batch come
        // back with a nonce error and are signed again; a nonce error with nothing refused before
        // it means our cached nonce was stale (another process uses this key).
        let mut expected = start;
        let mut stale = false;
        let mut again = vec![];
        for (i, (p, answer)) in batch.into_iter().zip(answers).enumerate() {
            match answer {
                BatchItem::Receipt(r) => {
                    expected += 1;
                    let _ = p.reply.send(Ok(r));
                }
                BatchItem::Refused { kind, .. } if kind == "bad_nonce" && p.retries < MAX_RESIGN => {
                    // Voided by an earlier refusal: always signed again (each round answers at
                    // least the refusal before it). First of the batch: only a few times.
                    let first = expected == start + i as u64;
                    stale |= first;
                    again.push(Pending { retries: p.retries + u32::from(first), ..p });
                }
                BatchItem::Refused { status, error, kind } => {
                    let _ = p.reply.send(Err(SdkError::Api { status, kind, message: error }));
                }
            }
        }
        *next = if stale { None } else { Some(expected) };
        again
    }

    async fn start_nonce(&self, next: &mut Option<u64>) -> Result<u64, SdkError> {
        self.chain_id.get_or_try_init(|| async { self.client.chain().await.map(|c| c.chain_id) }).await?;
        if let Some(n) = *next {
            return Ok(n);
        }
        let n = self.client.account(&self.key.address()).await?.account.nonce;
        *next = Some(n);
        Ok(n)
    }
}

fn fail_all(batch: Vec<Pending>, e: &SdkError) -> Vec<Pending> {
    for p in batch {
        let _ = p.reply.send(Err(e.clone()));
    }
    vec![]
}
