//! # veil-core — the pure PoCo protocol core
//!
//! Owns the protocol rules of iExec's Proof of Contribution: amounts, addresses, keccak256, EIP-191
//! and EIP-712 hashing, secp256k1 signatures, the four orders, and the ledger state machine
//! (accounts, escrow, registries, categories, `matchOrders`, deals, tasks, consensus, rewards).
//!
//! The single entry point for change is [`apply`] (or [`verify`] then [`apply_verified`]): state +
//! signed transaction + time in, events or a typed error out, and on error the state is left exactly
//! as it was.
//!
//! This crate must never do IO, read a clock, draw randomness, spawn threads or depend on an async
//! runtime: every shell (ledger node, scheduler, worker, CLI) feeds it time and transactions.

pub mod amount;
pub mod apply;
pub mod block;
pub mod book;
pub mod cid;
pub mod crypto;
pub mod eip712;
pub mod error;
pub mod events;
pub mod market;
pub mod orders;
pub mod state;
pub mod table;
pub mod tag;
mod tasks;
pub mod tx;
pub mod uint;

pub use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
pub use amount::Nrlc;
pub use apply::{VerifiedTx, apply, apply_verified, verify, verify_with};
pub use crypto::{PrivateKey, Signature};
pub use eip712::Domain;
pub use error::{CoreError, MatchError, TaskError};
pub use events::Event;
pub use market::combined_tag;
pub use orders::{AppOrder, DatasetOrder, Order, OrderKind, RequestOrder, Signed, WorkerpoolOrder};
pub use state::{Genesis, State};
pub use tx::{AnyOrder, Call, SignedTx, Tx};
