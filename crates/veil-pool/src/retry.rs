//! Sending through a ledger that may be away for a while (a restarted chain, a lost connection).

use std::time::Duration;
use veil_core::block::Receipt;
use veil_core::{Call, PrivateKey};
use veil_sdk::{Backoff, Ledger, SdkError};

/// How long a service keeps asking an unreachable ledger before giving a transaction up.
pub const PATIENCE: Duration = Duration::from_secs(180);

/// Sends `call`; while the ledger cannot be reached, tries again with a growing pause
/// ([`Backoff`]) for [`PATIENCE`]. A refusal is final: retrying cannot help.
/// A transaction that did go out before the ledger went away is not sent twice: the ledger's
/// sender keeps re-broadcasting the same signed bytes, and a second attempt is checked (estimated)
/// first, so a call that already took effect is refused, never mined again.
pub async fn send_patiently(ledger: &dyn Ledger, key: &PrivateKey, call: Call) -> Result<Receipt, SdkError> {
    let give_up = tokio::time::Instant::now() + PATIENCE;
    let mut backoff = Backoff::new();
    loop {
        match ledger.send(key, call.clone()).await {
            Err(e) if e.is_transient() && tokio::time::Instant::now() + backoff.next() < give_up => {
                tracing::warn!("{e}: trying again in {:?}", backoff.next());
                backoff.wait().await;
            }
            r => return r,
        }
    }
}
