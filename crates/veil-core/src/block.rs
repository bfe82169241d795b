//! Blocks: an ordered, hash-linked batch of transactions with the digest of the state they lead to.

use crate::crypto::keccak_packed;
use crate::events::Event;
use crate::tx::SignedTx;
use alloy_primitives::B256;
use serde::{Deserialize, Serialize};

/// What a block commits to; its hash is the block's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    pub number: u64,
    pub parent_hash: B256,
    /// Seconds since the Unix epoch; never decreases along the chain.
    pub timestamp: u64,
    /// `keccak256` of the concatenated transaction hashes.
    pub tx_root: B256,
    /// The state digest after the block's transactions.
    pub state_digest: B256,
}

impl Header {
    /// `keccak256(number ‖ parentHash ‖ timestamp ‖ txRoot ‖ stateDigest)`.
    pub fn hash(&self) -> B256 {
        keccak_packed(&[
            &self.number.to_be_bytes(),
            &self.parent_hash.0,
            &self.timestamp.to_be_bytes(),
            &self.tx_root.0,
            &self.state_digest.0,
        ])
    }
}

pub fn tx_root(tx_hashes: &[B256]) -> B256 {
    let parts: Vec<&[u8]> = tx_hashes.iter().map(|h| h.as_slice()).collect();
    keccak_packed(&parts)
}

/// What one included transaction did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    pub tx_hash: B256,
    pub block: u64,
    pub index: u32,
    pub events: Vec<Event>,
}

/// A block as stored and served: header, hash, transactions and their receipts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Block {
    pub header: Header,
    pub hash: B256,
    pub txs: Vec<SignedTx>,
    pub receipts: Vec<Receipt>,
}
