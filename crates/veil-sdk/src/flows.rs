//! Client-side flows on top of the [`Ledger`] trait and the node's orderbook: what a requester, an
//! app developer or a workerpool does in several steps. The binary only parses arguments and prints
//! the progress these flows report; the flows never print and never know which ledger they use.

use crate::client::{Client, SdkError};
use crate::ledger::Ledger;
use futures_util::StreamExt;
use serde::Serialize;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use veil_core::book::{BookEntry, BookQuery};
use veil_core::events::Event;
use veil_core::orders::{OrderKind, RequestOrder, Signed, WorkerpoolOrder};
use veil_core::state::{TaskStatus, task_id};
use veil_core::tx::AnyOrder;
use veil_core::{Address, B256, Call, PrivateKey, U256};

#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error(transparent)]
    Ledger(#[from] SdkError),
    #[error("{0}")]
    NoOrder(String),
    #[error("protected data, secrets and result encryption need an enclave: add --tee")]
    NeedsTee,
    #[error("gave up after {seconds} s with {pending} task(s) unfinished (see veil task show)")]
    Timeout { seconds: u64, pending: usize },
    #[error("the ledger's event stream ended with {0} task(s) unfinished: run `veil task show` to follow them")]
    StreamEnded(usize),
    #[error("the ledger's answer lacks the expected event: {0}")]
    MissingEvent(String),
    #[error("the ledger's event stream ended: run the command again to keep publishing")]
    EventsEnded,
    #[error("{0}")]
    Storage(String),
}

/// What `veil run` asks for.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    pub app: Address,
    pub dataset: Option<Address>,
    pub args: String,
    pub input_files: Vec<String>,
    pub trust: u64,
    pub category: u64,
    pub volume: u64,
    pub tee: bool,
    /// Requester secrets as (index, name).
    pub secrets: Vec<(u32, String)>,
    pub encrypt_result: bool,
    /// Follow the tasks until they end; `false` returns once the deal is made.
    pub watch: bool,
    /// Give up following after this long.
    pub timeout: Duration,
}

/// What a run reports as it goes.
#[derive(Debug, Clone)]
pub enum RunProgress {
    /// The deal carries the TEE tag (the caller says on which platform it will run).
    Tee,
    DealMade {
        dealid: B256,
        volume: u64,
        workerpool: Address,
    },
    /// A task moved: `what` is initialized, contribution, consensus, revealed, COMPLETED or FAILED (claimed).
    Task {
        taskid: B256,
        what: &'static str,
        elapsed: Duration,
    },
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskOutcome {
    pub taskid: B256,
    pub status: TaskStatus,
    pub result_digest: B256,
    pub results: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunOutcome {
    pub dealid: B256,
    pub block: u64,
    /// Empty when the run did not follow the tasks.
    pub tasks: Vec<TaskOutcome>,
    pub ms: f64,
}

/// A fresh random salt for an order.
pub fn salt() -> B256 {
    let mut s = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut s);
    B256::from(s)
}

/// The best order of the book for `q` that the ledger says still has volume (`min` at least): an
/// orderbook following a chain may not have pruned an order the last block filled.
async fn best(
    ledger: &dyn Ledger,
    book: &Client,
    kind: OrderKind,
    q: BookQuery,
) -> Result<Option<BookEntry>, SdkError> {
    let min = U256::from(q.min_volume.unwrap_or(1).max(1));
    for e in book.orderbook(kind, &q).await?.orders {
        if e.order.volume().saturating_sub(ledger.consumed(&e.order_hash).await?) >= min {
            return Ok(Some(e));
        }
    }
    Ok(None)
}

fn signed<O>(e: &BookEntry, pick: impl Fn(&AnyOrder) -> Option<O>) -> Result<Signed<O>, FlowError> {
    let order =
        pick(&e.order).ok_or_else(|| FlowError::NoOrder(format!("order {} is not of the kind asked", e.order_hash)))?;
    Ok(Signed { order, sign: e.sign })
}

/// Picks the best orders for `req` in the orderbook, matches them on the ledger with a request
/// signed by `key`, and (with `req.watch`) follows the tasks until each is completed or failed.
pub async fn run_deal(
    ledger: &dyn Ledger,
    book: &Client,
    key: &PrivateKey,
    req: &RunRequest,
    progress: &mut (dyn FnMut(RunProgress) + Send),
) -> Result<RunOutcome, FlowError> {
    let started = Instant::now();
    let info = ledger.chain().await?;
    let me = key.address();
    // A TEE deal needs a TEE app order (PoCo check 0x07).
    let app_tag = req.tee.then(|| B256::with_last_byte(1));
    let app = best(
        ledger,
        book,
        OrderKind::App,
        BookQuery { app: Some(req.app), requester: Some(me), min_tag: app_tag, ..Default::default() },
    )
    .await?
    .ok_or_else(|| {
        FlowError::NoOrder(format!(
            "no app order for {} in the orderbook: its owner must publish one (veil app publish)",
            req.app
        ))
    })?;
    let dataset = match req.dataset {
        Some(ds) => Some(
            best(
                ledger,
                book,
                OrderKind::Dataset,
                BookQuery { dataset: Some(ds), app: Some(req.app), requester: Some(me), ..Default::default() },
            )
            .await?
            .ok_or_else(|| {
                FlowError::NoOrder(format!(
                    "no dataset order of {ds} lets this app and requester use it (veil data grant)"
                ))
            })?,
        ),
        None => None,
    };
    let tee_tag = if req.tee { B256::with_last_byte(1) } else { B256::ZERO };
    let min_tag = veil_core::tag::or(
        &veil_core::tag::or(&app.order.tag(), &tee_tag),
        &dataset.as_ref().map(|d| veil_core::tag::dataset_mask(&d.order.tag())).unwrap_or_default(),
    );
    if (req.dataset.is_some() || !req.secrets.is_empty() || req.encrypt_result) && !veil_core::tag::has_tee(&min_tag) {
        return Err(FlowError::NeedsTee);
    }
    let pool_q = BookQuery {
        category: Some(req.category),
        min_trust: Some(req.trust),
        min_tag: Some(min_tag),
        app: Some(req.app),
        dataset: req.dataset,
        requester: Some(me),
        min_volume: Some(req.volume),
        ..Default::default()
    };
    let pool = best(ledger, book, OrderKind::Workerpool, pool_q).await?.ok_or_else(|| {
        FlowError::NoOrder(format!(
            "no workerpool offers category {}, trust ≥ {} and volume ≥ {} now: is a scheduler publishing orders?",
            req.category, req.trust, req.volume
        ))
    })?;
    let mut params = serde_json::json!({ "iexec_args": req.args });
    if !req.input_files.is_empty() {
        params["iexec_input_files"] = serde_json::json!(req.input_files);
    }
    if !req.secrets.is_empty() {
        params["iexec_secrets"] = req.secrets.iter().map(|(i, n)| (i.to_string(), serde_json::json!(n))).collect();
    }
    if req.encrypt_result {
        params["iexec_result_encryption"] = serde_json::json!(true);
    }
    if veil_core::tag::has_tee(&min_tag) {
        progress(RunProgress::Tee);
    }
    let request = RequestOrder {
        app: req.app,
        appmaxprice: app.order.price(),
        dataset: req.dataset.unwrap_or(Address::ZERO),
        datasetmaxprice: dataset.as_ref().map(|d| d.order.price()).unwrap_or_default(),
        workerpool: Address::ZERO,
        workerpoolmaxprice: pool.order.price(),
        requester: me,
        volume: U256::from(req.volume),
        tag: min_tag,
        category: U256::from(req.category),
        trust: U256::from(req.trust),
        beneficiary: me,
        callback: Address::ZERO,
        params: params.to_string(),
        salt: salt(),
    };
    let call = Call::MatchOrders {
        app_order: signed(&app, |o| if let AnyOrder::App(o) = o { Some(o.clone()) } else { None })?,
        dataset_order: dataset
            .as_ref()
            .map(|e| signed(e, |o| if let AnyOrder::Dataset(o) = o { Some(o.clone()) } else { None }))
            .transpose()?,
        workerpool_order: signed(&pool, |o| if let AnyOrder::Workerpool(o) = o { Some(o.clone()) } else { None })?,
        request_order: Signed::new(request, key, &info.domain),
    };
    // Follow first, so no task event is missed.
    let mut events = ledger.follow(info.head + 1).await?;
    let r = ledger.send(key, call).await?;
    let dealid = dealid(&r.events).ok_or_else(|| FlowError::MissingEvent(format!("transaction {}", r.tx_hash)))?;
    progress(RunProgress::DealMade { dealid, volume: req.volume, workerpool: pool.order.asset() });
    if !req.watch {
        return Ok(RunOutcome { dealid, block: r.block, tasks: vec![], ms: started.elapsed().as_secs_f64() * 1000.0 });
    }
    let deal = ledger.deal(&dealid).await?.deal;
    let first: u64 = deal.bot_first.saturating_to();
    let tasks: Vec<B256> = (first..first + req.volume).map(|i| task_id(&dealid, U256::from(i))).collect();
    let mut pending: BTreeSet<B256> = tasks.iter().copied().collect();
    let deadline = tokio::time::Instant::now() + req.timeout;
    while !pending.is_empty() {
        let next = tokio::time::timeout_at(deadline, events.next()).await;
        let b = match next {
            Err(_) => return Err(FlowError::Timeout { seconds: req.timeout.as_secs(), pending: pending.len() }),
            Ok(None) => return Err(FlowError::StreamEnded(pending.len())),
            Ok(Some(b)) => b?,
        };
        for e in &b.events {
            let (t, what) = match e {
                Event::TaskInitialize { taskid, .. } => (taskid, "initialized"),
                Event::TaskContribute { taskid, .. } => (taskid, "contribution"),
                Event::TaskConsensus { taskid, .. } => (taskid, "consensus"),
                Event::TaskReveal { taskid, .. } => (taskid, "revealed"),
                Event::TaskFinalize { taskid, .. } => (taskid, "COMPLETED"),
                Event::TaskClaimed { taskid } => (taskid, "FAILED (claimed)"),
                _ => continue,
            };
            if pending.contains(t) {
                progress(RunProgress::Task { taskid: *t, what, elapsed: started.elapsed() });
                if matches!(e, Event::TaskFinalize { .. } | Event::TaskClaimed { .. }) {
                    pending.remove(t);
                }
            }
        }
    }
    let mut out = vec![];
    for t in &tasks {
        let task = ledger.task(t).await?.task;
        out.push(TaskOutcome {
            taskid: *t,
            status: task.status,
            result_digest: task.result_digest,
            results: String::from_utf8_lossy(&task.results).to_string(),
        });
    }
    Ok(RunOutcome { dealid, block: r.block, tasks: out, ms: started.elapsed().as_secs_f64() * 1000.0 })
}

/// Signs `order` for the orderbook's domain and publishes it.
pub async fn publish(book: &Client, key: &PrivateKey, order: AnyOrder) -> Result<BookEntry, SdkError> {
    let domain = book.chain().await?.domain;
    let sign = key.sign_hash(&order.typed_hash(&domain));
    book.publish(order, Some(sign)).await
}

/// Publishes the order `order` makes, then a fresh one whenever deals bring the current one below a
/// quarter of its volume (or out of the book), until the ledger's event stream ends. Each
/// publication goes to `published` (the first one marks the pool as open).
pub async fn keep_pool_order(
    ledger: &dyn Ledger,
    book: &Client,
    key: &PrivateKey,
    order: impl Fn() -> WorkerpoolOrder,
    published: &mut (dyn FnMut(&BookEntry) + Send),
) -> Result<(), FlowError> {
    let publish_one = async || {
        let o = order();
        let (low_mark, volume) = (o.volume.div_ceil(U256::from(4)), o.volume);
        let e = publish(book, key, AnyOrder::Workerpool(o)).await?;
        Ok::<_, SdkError>((e, low_mark, volume))
    };
    let from = ledger.chain().await?.head + 1;
    let (entry, mut low_mark, mut entry_volume) = publish_one().await?;
    published(&entry);
    let mut current = entry.order_hash;
    let mut events = ledger.follow(from).await?;
    while let Some(b) = events.next().await {
        let used = b?
            .events
            .iter()
            .any(|e| matches!(e, Event::OrdersMatched { workerpool_hash, .. } if *workerpool_hash == current));
        if !used {
            continue;
        }
        // The ledger is the judge of what is left (an orderbook following a chain may lag).
        let low = entry_volume.saturating_sub(ledger.consumed(&current).await?) < low_mark;
        if low {
            let (entry, mark, volume) = publish_one().await?;
            published(&entry);
            (current, low_mark, entry_volume) = (entry.order_hash, mark, volume);
        }
    }
    Err(FlowError::EventsEnded)
}

/// An app registered from a packed bundle.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployedApp {
    pub app: Address,
    pub multiaddr: String,
    /// `0x` + sha256 of the bundle: the on-chain checksum, and the blob's id in storage.
    pub checksum: String,
    /// `0x` + the bundle's enclave measurement (registered as the app's mrenclave).
    pub measurement: String,
    pub block: u64,
}

/// Stores a packed iApp bundle (`bytes`, with its `checksum` and `measurement`) and registers it as
/// an app named `name` owned by `key`.
pub async fn deploy_bundle(
    ledger: &dyn Ledger,
    storage: &Client,
    key: &PrivateKey,
    name: String,
    bytes: Vec<u8>,
    checksum: [u8; 32],
    measurement: [u8; 32],
) -> Result<DeployedApp, FlowError> {
    let blob = stored_as(storage.upload_bytes(bytes).await?, &checksum)?;
    let measurement = format!("0x{}", hex::encode(measurement));
    let call = Call::CreateApp {
        name,
        app_type: "VEIL".into(),
        multiaddr: blob.url.clone(),
        checksum: B256::from(checksum),
        mrenclave: measurement.clone(),
    };
    let r = ledger.send(key, call).await?;
    let app = created(&r.events)
        .ok_or_else(|| FlowError::MissingEvent(format!("transaction {} registered no app", r.tx_hash)))?;
    Ok(DeployedApp { app, multiaddr: blob.url, checksum: format!("0x{}", blob.id), measurement, block: r.block })
}

/// Registers an image app (iExec's `DOCKER` type) named `name`: checksum and measurement are the
/// image's manifest `digest`. With `archive` (an OCI archive of a local image) the image is stored
/// first and the app points at it; otherwise `reference` is where workers pull it from.
pub async fn deploy_image(
    ledger: &dyn Ledger,
    storage: &Client,
    key: &PrivateKey,
    name: String,
    archive: Option<Vec<u8>>,
    reference: String,
    digest: [u8; 32],
) -> Result<DeployedApp, FlowError> {
    let multiaddr = match archive {
        Some(bytes) => {
            let sha: [u8; 32] = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&bytes)).into();
            stored_as(storage.upload_bytes(bytes).await?, &sha)?.url
        }
        None => reference,
    };
    let checksum = format!("0x{}", hex::encode(digest));
    let call = Call::CreateApp {
        name,
        app_type: "DOCKER".into(),
        multiaddr: multiaddr.clone(),
        checksum: B256::from(digest),
        mrenclave: checksum.clone(),
    };
    let r = ledger.send(key, call).await?;
    let app = created(&r.events)
        .ok_or_else(|| FlowError::MissingEvent(format!("transaction {} registered no app", r.tx_hash)))?;
    Ok(DeployedApp { app, multiaddr, checksum: checksum.clone(), measurement: checksum, block: r.block })
}

/// A dataset stored, registered and whose key is in the SMS.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProtectedData {
    pub dataset: Address,
    pub multiaddr: String,
    pub block: u64,
}

/// The rest of `veil data protect` once the file is encrypted (iExec's format) at `encrypted`:
/// stores it (checking storage kept exactly those bytes), registers the dataset with that
/// checksum, and pushes its key (base64) to the SMS, signed by the owner. `step` hears each step.
#[allow(clippy::too_many_arguments)]
pub async fn protect_encrypted(
    ledger: &dyn Ledger,
    storage: &Client,
    sms: &Client,
    owner: &PrivateKey,
    name: &str,
    encrypted: &std::path::Path,
    checksum: [u8; 32],
    key_base64: &str,
    step: &mut (dyn FnMut(&str) + Send),
) -> Result<ProtectedData, FlowError> {
    let blob = stored_as(storage.upload_file(encrypted).await?, &checksum)?;
    step("uploaded to storage");
    let call =
        Call::CreateDataset { name: name.to_string(), multiaddr: blob.url.clone(), checksum: B256::from(checksum) };
    let r = ledger.send(owner, call).await?;
    let dataset = created(&r.events)
        .ok_or_else(|| FlowError::MissingEvent(format!("transaction {} registered no dataset", r.tx_hash)))?;
    step("registered on the ledger");
    sms.sms_push(crate::SecretKind::DatasetKey, &dataset, "", key_base64, owner).await?;
    step("key pushed to the SMS");
    Ok(ProtectedData { dataset, multiaddr: blob.url, block: r.block })
}

/// The blob storage answered with, if it holds exactly the bytes hashing to `checksum`.
fn stored_as(blob: crate::BlobRef, checksum: &[u8; 32]) -> Result<crate::BlobRef, FlowError> {
    if blob.id == hex::encode(checksum) {
        return Ok(blob);
    }
    Err(FlowError::Storage(format!(
        "storage answered with blob id {} but the sha256 is {}",
        blob.id,
        hex::encode(checksum)
    )))
}

/// The deal a match made.
pub fn dealid(events: &[Event]) -> Option<B256> {
    events.iter().find_map(|e| if let Event::OrdersMatched { dealid, .. } = e { Some(*dealid) } else { None })
}

/// The asset (app, dataset or workerpool) a registration created.
pub fn created(events: &[Event]) -> Option<Address> {
    events.iter().find_map(|e| match e {
        Event::AppCreated { app, .. } => Some(*app),
        Event::DatasetCreated { dataset, .. } => Some(*dataset),
        Event::WorkerpoolCreated { workerpool, .. } => Some(*workerpool),
        _ => None,
    })
}
