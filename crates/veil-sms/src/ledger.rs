//! What the SMS asks the ledger: who owns a dataset or an app. One trait, an in-process
//! implementation (in the node) and an HTTP one (over the node's API).

use futures_util::future::BoxFuture;
use veil_core::Address;

pub trait LedgerLookup: Send + Sync {
    fn dataset_owner(&self, dataset: Address) -> BoxFuture<'_, Result<Option<Address>, String>>;
    fn app_owner(&self, app: Address) -> BoxFuture<'_, Result<Option<Address>, String>>;
}

#[cfg(feature = "client")]
impl LedgerLookup for veil_sdk::Client {
    fn dataset_owner(&self, dataset: Address) -> BoxFuture<'_, Result<Option<Address>, String>> {
        Box::pin(async move {
            match self.dataset(&dataset).await {
                Ok(d) => Ok(Some(d.asset.owner)),
                Err(e) if e.kind() == Some("not_found") => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        })
    }

    fn app_owner(&self, app: Address) -> BoxFuture<'_, Result<Option<Address>, String>> {
        Box::pin(async move {
            match self.app(&app).await {
                Ok(a) => Ok(Some(a.asset.owner)),
                Err(e) if e.kind() == Some("not_found") => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}
