//! The one ledger trait: everything that reads or changes protocol state goes through [`Ledger`].
//!
//! Two implementations: [`crate::Client`] (Veil's own node over HTTP) and `veil_evm::EvmLedger`
//! (iExec's PoCo contracts on an EVM chain). Code that holds a `dyn Ledger` never knows which one
//! it runs on: calls are Veil's [`Call`]s, answers Veil's views, receipts carry Veil's events.

use crate::client::{Client, SdkError};
use crate::types::{AccountView, AssetView, ChainInfo, DealView, TaskView};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use veil_core::block::Receipt;
use veil_core::events::Event;
use veil_core::state::{App, Dataset, Workerpool};
use veil_core::{Address, B256, Call, PrivateKey, U256};

/// The events of one block, for followers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BlockEvents {
    pub block: u64,
    pub timestamp: u64,
    pub events: Vec<Event>,
}

/// Most blocks one [`Ledger::events`] call reads.
pub const MAX_EVENT_BLOCKS: u64 = 1_000;

/// The pause of a service asking a ledger that went away again: 200 ms, doubling up to 5 s, back to
/// 200 ms once the ledger answers.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pause: std::time::Duration,
}

impl Backoff {
    pub const FIRST: std::time::Duration = std::time::Duration::from_millis(200);
    pub const LONGEST: std::time::Duration = std::time::Duration::from_secs(5);

    pub fn new() -> Backoff {
        Backoff { pause: Backoff::FIRST }
    }

    /// The pause the next [`Backoff::wait`] takes.
    pub fn next(&self) -> std::time::Duration {
        self.pause
    }

    /// The ledger answered: the next failure waits the shortest pause again.
    pub fn reset(&mut self) {
        self.pause = Backoff::FIRST;
    }

    /// Sleeps the current pause, then doubles it (up to [`Backoff::LONGEST`]).
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.pause).await;
        self.pause = (self.pause * 2).min(Backoff::LONGEST);
    }
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new()
    }
}

#[async_trait::async_trait]
pub trait Ledger: Send + Sync {
    /// Where this ledger is, for messages ("the Veil node at …", "PoCo hub … on chain …").
    fn describe(&self) -> String;
    /// Chain id, EIP-712 domain, head, time and categories.
    async fn chain(&self) -> Result<ChainInfo, SdkError>;
    /// Sends `calls` signed by `key`, in this order, pipelined; one answer per call.
    async fn send_batch(&self, key: &PrivateKey, calls: Vec<Call>) -> Vec<Result<Receipt, SdkError>>;
    async fn send(&self, key: &PrivateKey, call: Call) -> Result<Receipt, SdkError> {
        self.send_batch(key, vec![call]).await.pop().unwrap_or_else(|| Err(SdkError::Decode("no answer".into())))
    }
    async fn account(&self, a: &Address) -> Result<AccountView, SdkError>;
    async fn app(&self, a: &Address) -> Result<AssetView<App>, SdkError>;
    async fn dataset(&self, a: &Address) -> Result<AssetView<Dataset>, SdkError>;
    async fn workerpool(&self, a: &Address) -> Result<AssetView<Workerpool>, SdkError>;
    /// The datasets `owner` holds now.
    async fn datasets_of(&self, owner: &Address) -> Result<Vec<AssetView<Dataset>>, SdkError>;
    async fn deal(&self, id: &B256) -> Result<DealView, SdkError>;
    async fn task(&self, id: &B256) -> Result<TaskView, SdkError>;
    /// Volume consumed of the order with this typed hash.
    async fn consumed(&self, order_hash: &B256) -> Result<U256, SdkError>;
    /// The events of blocks `from..` (at most [`MAX_EVENT_BLOCKS`], up to the head), oldest first;
    /// blocks without events are left out.
    async fn events(&self, from: u64) -> Result<Vec<BlockEvents>, SdkError>;
    /// The events of blocks `from..` and then of every new block, as they come (Veil's node pushes
    /// them; an EVM chain is polled). Blocks without events may be left out.
    async fn follow(&self, from: u64) -> Result<BoxStream<'static, Result<BlockEvents, SdkError>>, SdkError>;
    /// The transaction `hash` once mined: its block, position and events (`None`: unknown here).
    async fn transaction(&self, hash: &B256) -> Result<Option<Receipt>, SdkError>;
}

#[async_trait::async_trait]
impl Ledger for Client {
    fn describe(&self) -> String {
        format!("the Veil node at {}", self.base())
    }
    async fn chain(&self) -> Result<ChainInfo, SdkError> {
        Client::chain(self).await
    }
    async fn send_batch(&self, key: &PrivateKey, calls: Vec<Call>) -> Vec<Result<Receipt, SdkError>> {
        self.sender(key).send_many(calls).await
    }
    async fn account(&self, a: &Address) -> Result<AccountView, SdkError> {
        Client::account(self, a).await
    }
    async fn app(&self, a: &Address) -> Result<AssetView<App>, SdkError> {
        Client::app(self, a).await
    }
    async fn dataset(&self, a: &Address) -> Result<AssetView<Dataset>, SdkError> {
        Client::dataset(self, a).await
    }
    async fn workerpool(&self, a: &Address) -> Result<AssetView<Workerpool>, SdkError> {
        Client::workerpool(self, a).await
    }
    async fn datasets_of(&self, owner: &Address) -> Result<Vec<AssetView<Dataset>>, SdkError> {
        Client::datasets_of(self, owner).await
    }
    async fn deal(&self, id: &B256) -> Result<DealView, SdkError> {
        Client::deal(self, id).await
    }
    async fn task(&self, id: &B256) -> Result<TaskView, SdkError> {
        Client::task(self, id).await
    }
    async fn consumed(&self, order_hash: &B256) -> Result<U256, SdkError> {
        Ok(Client::consumed(self, order_hash).await?.consumed)
    }
    async fn follow(&self, from: u64) -> Result<BoxStream<'static, Result<BlockEvents, SdkError>>, SdkError> {
        let stream = self.clone().into_events(from).await?;
        Ok(stream
            .map(|b| {
                b.map(|b| BlockEvents {
                    block: b.number,
                    timestamp: b.timestamp,
                    events: b.receipts.into_iter().flat_map(|r| r.events).collect(),
                })
            })
            .boxed())
    }
    async fn transaction(&self, hash: &B256) -> Result<Option<Receipt>, SdkError> {
        match Client::receipt(self, hash).await {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.kind() == Some("not_found") => Ok(None),
            Err(e) => Err(e),
        }
    }
    async fn events(&self, from: u64) -> Result<Vec<BlockEvents>, SdkError> {
        let head = Client::chain(self).await?.head;
        let mut out = Vec::new();
        for n in from..=head.min(from.saturating_add(MAX_EVENT_BLOCKS - 1)) {
            let b = Client::block(self, n).await?;
            let events: Vec<Event> = b.receipts.into_iter().flat_map(|r| r.events).collect();
            if !events.is_empty() {
                out.push(BlockEvents { block: n, timestamp: b.header.timestamp, events });
            }
        }
        Ok(out)
    }
}
