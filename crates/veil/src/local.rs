//! Helpers for driving an in-process ledger state (quickstart and benchmarks).

use anyhow::{Context, Result};
use veil_core::*;

/// Signs `call` from `key` with its next nonce and applies it at `now`.
pub fn send(state: &mut State, key: &PrivateKey, call: Call, now: u64) -> Result<Vec<Event>> {
    let nonce = state.account(&key.address()).nonce;
    let stx = Tx { chain_id: state.domain.chain_id, from: key.address(), nonce, call }.sign(key);
    apply(state, &stx, now).map_err(anyhow::Error::from)
}

/// The address of the app, dataset or workerpool these events created.
pub fn created(ev: &[Event]) -> Result<Address> {
    veil_sdk::flows::created(ev).context("no asset was created")
}

/// The deal these events made.
pub fn dealid(ev: &[Event]) -> Result<B256> {
    veil_sdk::flows::dealid(ev).context("no deal was made")
}
