//! # veil-node — the ledger node
//!
//! Owns ordering signed transactions into blocks, applying them through `veil-core`, persisting
//! each block (redb, fsync) before acknowledging its transactions, restart from a checkpoint plus
//! replay, whole-chain verification, the orderbook, and the HTTP API with its event stream.
//!
//! `chain_node` is the other mode: no ledger of its own, the same off-chain services (orderbook,
//! storage, SMS) for PoCo on an EVM chain, reached through the ledger trait.
//!
//! It must never decide protocol rules itself (it calls `veil_core::apply_verified`), never
//! acknowledge a transaction whose block is not durable, and never hold private keys.

pub mod api;
pub mod book;
pub mod chain_node;
pub mod compass;
pub mod dev;
pub mod explorer;
pub mod ledger;
pub mod market;
pub mod market_deals;
pub mod node;
pub mod openapi;
pub mod sigcache;
pub mod store;

pub use ledger::{Ledger, LedgerError, OpenReport, verify_chain};
pub use node::{NodeConfig, NodeError, Shared, serve, start};
