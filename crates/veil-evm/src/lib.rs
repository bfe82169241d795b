//! # veil-evm — the EVM ledger backend
//!
//! Owns everything that talks to an EVM chain running iExec's real PoCo v6 contracts: their
//! interface (`abi`, written with alloy's `sol!`), the deployment of PoCo from iExec's npm package
//! (`deploy`), the JSON-RPC transport with managed nonces and decoded revert reasons (`rpc`), the
//! translation of Veil's calls, views and events (`convert`), the [`EvmLedger`] implementation of
//! `veil_sdk::Ledger`, and starting anvil with PoCo deployed (`anvil`).
//!
//! It must never hold protocol rules (PoCo's contracts are the rules here, `veil-core` elsewhere),
//! and it is the only crate that depends on alloy's providers: keep it out of the protocol crates.

pub mod abi;
pub mod anvil;
pub mod convert;
pub mod deploy;
pub mod error;
pub mod ledger;
pub mod rpc;

pub use deploy::{Deployment, deploy_poco};
pub use error::EvmError;
pub use ledger::EvmLedger;
