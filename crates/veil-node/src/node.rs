//! Running a node: the sequencer thread that orders transactions into blocks, and the shared view
//! the HTTP handlers read.

use crate::book::Book;
use crate::ledger::{Ledger, LedgerError, OpenReport};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, mpsc, oneshot};
use veil_core::block::Receipt;
use veil_core::state::Genesis;
use veil_core::{CoreError, VerifiedTx};

/// Most transactions in one block.
pub const MAX_BLOCK_TXS: usize = 2000;

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Genesis for a new ledger (ignored, but checked, when the ledger exists).
    pub genesis: Option<Genesis>,
    pub dev: bool,
    /// 0: a block as soon as transactions wait; else gather transactions for this long.
    pub block_time: Duration,
    /// Write a state checkpoint every this many blocks (0: never).
    pub checkpoint_every: u64,
    /// Serve blob storage and the SMS from this node too (the local network's default).
    pub embedded_services: bool,
    /// Largest blob the embedded storage accepts.
    pub max_blob_size: u64,
}

/// The ledger as the SMS sees it, in process.
pub struct InProcessLedger(pub Arc<Shared>);

impl InProcessLedger {
    fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&veil_core::State) -> Option<T>,
    ) -> veil_sms::ledger::Lookup<'_, T> {
        let l = self.0.ledger.read().unwrap_or_else(|p| p.into_inner());
        let v = f(&l.state);
        Box::pin(async move { Ok(v) })
    }
}

impl veil_sms::LedgerLookup for InProcessLedger {
    fn app(&self, app: veil_core::Address) -> veil_sms::ledger::Lookup<'_, veil_core::state::App> {
        self.read(|s| s.apps.get(&app).cloned())
    }

    fn dataset(&self, dataset: veil_core::Address) -> veil_sms::ledger::Lookup<'_, veil_core::state::Dataset> {
        self.read(|s| s.datasets.get(&dataset).cloned())
    }

    fn deal(&self, dealid: veil_core::B256) -> veil_sms::ledger::Lookup<'_, veil_core::state::Deal> {
        self.read(|s| s.deals.get(&dealid).cloned())
    }

    fn task(&self, taskid: veil_core::B256) -> veil_sms::ledger::Lookup<'_, veil_core::state::Task> {
        self.read(|s| s.tasks.get(&taskid).cloned())
    }
}

/// The node's full router: the ledger API and the explorer (which reads the ledger through the
/// node's own API at `node_url`), plus storage and SMS when embedded.
pub fn router(shared: Arc<Shared>, config: &NodeConfig, node_url: &str) -> Result<axum::Router, NodeError> {
    let ledger: Arc<dyn veil_sdk::Ledger> = Arc::new(veil_sdk::Client::new(node_url));
    let app = crate::api::router(shared.clone()).merge(crate::explorer::start(ledger, shared.clone(), 0));
    if !config.embedded_services {
        return Ok(app);
    }
    let ledger: Arc<dyn veil_sms::LedgerLookup> = Arc::new(InProcessLedger(shared));
    Ok(app.merge(services(config, ledger)?))
}

/// Blob storage and the SMS (whose ledger lookups go through `ledger`), in `config.data_dir`.
pub fn services(config: &NodeConfig, ledger: Arc<dyn veil_sms::LedgerLookup>) -> Result<axum::Router, NodeError> {
    let store = veil_storage::BlobStore::open(&config.data_dir.join("blobs"), config.max_blob_size)
        .map_err(|e| NodeError::Service(format!("storage: {e}")))?;
    let sms =
        veil_sms::Sms::open(&config.data_dir.join("sms"), &config.data_dir.join("sms-master.key"), ledger, config.dev)
            .map_err(|e| NodeError::Service(format!("sms: {e}")))?;
    Ok(veil_storage::http::router(Arc::new(store)).merge(veil_sms::http::router(Arc::new(sms))))
}

pub type SubmitReply = oneshot::Sender<Result<Receipt, CoreError>>;

/// What the HTTP side shares with the sequencer.
pub struct Shared {
    pub ledger: RwLock<Ledger>,
    pub book: Mutex<Book>,
    pub submit: mpsc::Sender<(VerifiedTx, SubmitReply)>,
    /// Announces each new head block number.
    pub heads: broadcast::Sender<u64>,
    pub dev: bool,
    /// The ledger's EIP-712 domain (fixed at genesis), for verifying transactions as they arrive.
    pub domain: veil_core::Domain,
    /// Memo of recovered order signers (orders recur across matches).
    pub signers: crate::sigcache::SigCache,
    /// iExec's market API: challenges handed out, not used yet.
    pub challenges: crate::market::Challenges,
    /// iExec's compass: workerpools' API URLs.
    pub pool_apis: crate::compass::PoolApis,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Opens the ledger and starts the sequencer thread.
pub fn start(config: &NodeConfig) -> Result<(Arc<Shared>, OpenReport), LedgerError> {
    let (ledger, report) = Ledger::open(&config.data_dir, config.genesis.as_ref(), config.checkpoint_every)?;
    let book = Book::load(&ledger.store, &ledger.state)?;
    let ledger_domain = ledger.state.domain;
    let (tx, rx) = mpsc::channel(16 * 1024);
    let (heads, _) = broadcast::channel(1024);
    let shared = Arc::new(Shared {
        ledger: RwLock::new(ledger),
        book: Mutex::new(book),
        submit: tx,
        heads,
        dev: config.dev,
        domain: ledger_domain,
        signers: Default::default(),
        challenges: crate::market::challenges(ledger_domain.chain_id),
        pool_apis: Default::default(),
    });
    let s = shared.clone();
    let block_time = config.block_time;
    std::thread::Builder::new().name("veil-sequencer".into()).spawn(move || sequence(s, rx, block_time)).map_err(
        |e| LedgerError::Io { path: config.data_dir.clone(), detail: format!("cannot start the sequencer: {e}") },
    )?;
    Ok((shared, report))
}

/// Orders waiting transactions into blocks until every sender is gone.
fn sequence(shared: Arc<Shared>, mut rx: mpsc::Receiver<(VerifiedTx, SubmitReply)>, block_time: Duration) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        let deadline = Instant::now() + block_time;
        loop {
            while batch.len() < MAX_BLOCK_TXS {
                match rx.try_recv() {
                    Ok(x) => batch.push(x),
                    Err(_) => break,
                }
            }
            if batch.len() >= MAX_BLOCK_TXS || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(1).min(deadline - Instant::now()));
        }
        let (txs, replies): (Vec<VerifiedTx>, Vec<SubmitReply>) = batch.into_iter().unzip();
        let outcome = {
            let mut ledger = match shared.ledger.write() {
                Ok(l) => l,
                Err(p) => p.into_inner(),
            };
            // A panic mid-transaction would leave unpersisted changes visible: stop the node instead.
            let r = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                ledger.apply_batch(&txs, unix_now())
            })) {
                Ok(r) => r,
                Err(_) => {
                    tracing::error!("the sequencer panicked; stopping the node (the last block was not acknowledged)");
                    std::process::exit(3);
                }
            };
            if let Ok((Some(block), _)) = &r {
                let mut book = shared.book.lock().unwrap_or_else(|p| p.into_inner());
                let events = block.receipts.iter().flat_map(|r| r.events.iter());
                if let Err(e) = book.on_events(&ledger.store, &ledger.state, events) {
                    tracing::error!("orderbook update failed: {e}");
                }
            }
            r
        };
        match outcome {
            Ok((block, results)) => {
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
                if let Some(b) = block {
                    tracing::debug!(number = b.header.number, txs = b.txs.len(), "block");
                    let _ = shared.heads.send(b.header.number);
                }
            }
            Err(e) => {
                // The state in memory is ahead of the disk: stop before acknowledging anything.
                tracing::error!(
                    "cannot persist block: {e}; stopping the node (nothing of this block was acknowledged)"
                );
                std::process::exit(2);
            }
        }
    }
}

/// Small answers and event-stream frames go out at once: without TCP_NODELAY, Nagle's algorithm
/// holds a second small write until the first is acknowledged, and delayed ACKs make that ~40 ms.
pub fn nodelay(listener: tokio::net::TcpListener) -> impl axum::serve::Listener<Addr = SocketAddr> {
    use axum::serve::ListenerExt;
    listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY: {e}");
        }
    })
}

/// Starts the node and serves the API until the process is stopped.
pub async fn serve(config: NodeConfig, on_ready: impl FnOnce(SocketAddr, &OpenReport)) -> Result<(), NodeError> {
    let (shared, report) = start(&config)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| NodeError::Bind { addr: config.listen, detail: e.to_string() })?;
    let addr = listener.local_addr().map_err(|e| NodeError::Bind { addr: config.listen, detail: e.to_string() })?;
    let app = router(shared, &config, &format!("http://{addr}"))?;
    on_ready(addr, &report);
    axum::serve(nodelay(listener), app).await.map_err(|e| NodeError::Bind { addr, detail: e.to_string() })
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot listen on {addr}: {detail}")]
    Bind { addr: SocketAddr, detail: String },
    #[error("{0}")]
    Service(String),
}
