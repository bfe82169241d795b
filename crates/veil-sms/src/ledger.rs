//! What the SMS asks the ledger: apps, datasets, deals and tasks. One trait, an in-process
//! implementation (in the node) and an HTTP one (over the node's API).

use futures_util::future::BoxFuture;
use veil_core::state::{App, Dataset, Deal, Task};
use veil_core::{Address, B256};

pub type Lookup<'a, T> = BoxFuture<'a, Result<Option<T>, String>>;

pub trait LedgerLookup: Send + Sync {
    fn app(&self, app: Address) -> Lookup<'_, App>;
    fn dataset(&self, dataset: Address) -> Lookup<'_, Dataset>;
    fn deal(&self, dealid: B256) -> Lookup<'_, Deal>;
    fn task(&self, taskid: B256) -> Lookup<'_, Task>;
}

#[cfg(feature = "client")]
fn found<T>(r: Result<T, veil_sdk::SdkError>) -> Result<Option<T>, String> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == Some("not_found") => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// The SMS's lookups through the one ledger trait: Veil's node or PoCo on an EVM chain alike.
#[cfg(feature = "client")]
pub struct Via(pub std::sync::Arc<dyn veil_sdk::Ledger>);

#[cfg(feature = "client")]
impl LedgerLookup for Via {
    fn app(&self, app: Address) -> Lookup<'_, App> {
        Box::pin(async move { found(self.0.app(&app).await.map(|v| v.asset)) })
    }

    fn dataset(&self, dataset: Address) -> Lookup<'_, Dataset> {
        Box::pin(async move { found(self.0.dataset(&dataset).await.map(|v| v.asset)) })
    }

    fn deal(&self, dealid: B256) -> Lookup<'_, Deal> {
        Box::pin(async move { found(self.0.deal(&dealid).await.map(|v| v.deal)) })
    }

    fn task(&self, taskid: B256) -> Lookup<'_, Task> {
        Box::pin(async move { found(self.0.task(&taskid).await.map(|v| v.task)) })
    }
}

/// Veil's node over HTTP.
#[cfg(feature = "client")]
impl LedgerLookup for veil_sdk::Client {
    fn app(&self, app: Address) -> Lookup<'_, App> {
        Box::pin(async move { found(veil_sdk::Client::app(self, &app).await.map(|v| v.asset)) })
    }

    fn dataset(&self, dataset: Address) -> Lookup<'_, Dataset> {
        Box::pin(async move { found(veil_sdk::Client::dataset(self, &dataset).await.map(|v| v.asset)) })
    }

    fn deal(&self, dealid: B256) -> Lookup<'_, Deal> {
        Box::pin(async move { found(veil_sdk::Client::deal(self, &dealid).await.map(|v| v.deal)) })
    }

    fn task(&self, taskid: B256) -> Lookup<'_, Task> {
        Box::pin(async move { found(veil_sdk::Client::task(self, &taskid).await.map(|v| v.task)) })
    }
}
