//! Signed transactions: who sends, with which nonce, on which chain, calling what.
//!
//! The transaction hash is `keccak256("veil-tx-v1" ‖ canonical JSON of the unsigned transaction)`;
//! the sender signs it as an EIP-191 personal message, so any Ethereum wallet can sign.

use crate::amount::Nrlc;
use crate::crypto::{self, PrivateKey, Signature, SignatureError};
use crate::orders::{AppOrder, DatasetOrder, RequestOrder, Signed, WorkerpoolOrder};
use crate::uint;
use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use serde::{Deserialize, Serialize};

/// An order of any kind, for presign and cancel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "order", rename_all = "lowercase")]
pub enum AnyOrder {
    App(AppOrder),
    Dataset(DatasetOrder),
    Workerpool(WorkerpoolOrder),
    Request(RequestOrder),
}

// A transaction is decoded once and then borrowed, so the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Call {
    /// Move RLC from the sender's wallet into its escrow balance.
    Deposit {
        amount: Nrlc,
    },
    /// Move RLC from the escrow balance back to the wallet.
    Withdraw {
        amount: Nrlc,
    },
    /// Move escrow balance to another account.
    Transfer {
        to: Address,
        amount: Nrlc,
    },
    #[serde(rename_all = "camelCase")]
    CreateApp {
        name: String,
        app_type: String,
        multiaddr: String,
        checksum: B256,
        mrenclave: String,
    },
    CreateDataset {
        name: String,
        multiaddr: String,
        checksum: B256,
    },
    CreateWorkerpool {
        description: String,
    },
    #[serde(rename_all = "camelCase")]
    SetWorkerpoolPolicy {
        workerpool: Address,
        worker_stake_ratio: u64,
        scheduler_reward_ratio: u64,
    },
    TransferOwnership {
        asset: Address,
        to: Address,
    },
    #[serde(rename_all = "camelCase")]
    CreateCategory {
        name: String,
        description: String,
        work_clock_time_ref: u64,
    },
    PresignOrder {
        order: AnyOrder,
    },
    CancelOrder {
        order: AnyOrder,
    },
    #[serde(rename_all = "camelCase")]
    MatchOrders {
        app_order: Signed<AppOrder>,
        dataset_order: Option<Signed<DatasetOrder>>,
        workerpool_order: Signed<WorkerpoolOrder>,
        request_order: Signed<RequestOrder>,
    },
    Initialize {
        dealid: B256,
        #[serde(with = "uint")]
        idx: U256,
    },
    #[serde(rename_all = "camelCase")]
    Contribute {
        taskid: B256,
        result_hash: B256,
        result_seal: B256,
        enclave_challenge: Address,
        enclave_sign: Option<Signature>,
        authorization_sign: Signature,
    },
    #[serde(rename_all = "camelCase")]
    Reveal {
        taskid: B256,
        result_digest: B256,
    },
    Reopen {
        taskid: B256,
    },
    #[serde(rename_all = "camelCase")]
    Finalize {
        taskid: B256,
        results: Bytes,
        results_callback: Bytes,
    },
    #[serde(rename_all = "camelCase")]
    ContributeAndFinalize {
        taskid: B256,
        result_digest: B256,
        results: Bytes,
        results_callback: Bytes,
        enclave_challenge: Address,
        enclave_sign: Option<Signature>,
        authorization_sign: Signature,
    },
    Claim {
        taskid: B256,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tx {
    pub chain_id: u64,
    pub from: Address,
    pub nonce: u64,
    pub call: Call,
}

impl Tx {
    pub fn hash(&self) -> B256 {
        let mut buf = b"veil-tx-v1".to_vec();
        // Serializing plain structs, enums and strings cannot fail.
        serde_json::to_writer(&mut buf, self).expect("transaction serializes");
        keccak256(&buf)
    }

    pub fn sign(self, key: &PrivateKey) -> SignedTx {
        let signature = key.sign_message_hash(&self.hash());
        SignedTx { tx: self, signature }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedTx {
    pub tx: Tx,
    pub signature: Signature,
}

impl SignedTx {
    pub fn signer(&self) -> Result<Address, SignatureError> {
        crypto::recover_message_hash(&self.tx.hash(), &self.signature)
    }
}

/// The worker authorization a scheduler signs: EIP-191 over `keccak256(worker ‖ taskid ‖ enclaveChallenge)`.
pub fn authorization_hash(worker: &Address, taskid: &B256, enclave_challenge: &Address) -> B256 {
    crypto::keccak_packed(&[worker.as_slice(), &taskid.0, enclave_challenge.as_slice()])
}

/// `resultHash = keccak256(taskid ‖ digest)`.
pub fn result_hash(taskid: &B256, digest: &B256) -> B256 {
    crypto::keccak_packed(&[&taskid.0, &digest.0])
}

/// `resultSeal = keccak256(worker ‖ taskid ‖ digest)`.
pub fn result_seal(worker: &Address, taskid: &B256, digest: &B256) -> B256 {
    crypto::keccak_packed(&[worker.as_slice(), &taskid.0, &digest.0])
}

/// What the enclave signs (EIP-191): `keccak256(resultHash ‖ resultSeal)`.
pub fn enclave_message(result_hash: &B256, result_seal: &B256) -> B256 {
    crypto::keccak_packed(&[&result_hash.0, &result_seal.0])
}

/// Largest signed transaction accepted from outside, in bytes of JSON.
pub const MAX_TX_BYTES: usize = 512 * 1024;

/// A transaction that could not be read: says where and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid transaction: {0}")]
pub struct TxDecodeError(pub String);

/// Decodes a signed transaction from untrusted JSON bytes, naming the offending field on error.
pub fn decode(bytes: &[u8]) -> Result<SignedTx, TxDecodeError> {
    if bytes.len() > MAX_TX_BYTES {
        return Err(TxDecodeError(format!("{} bytes, at most {MAX_TX_BYTES} accepted", bytes.len())));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let tx: SignedTx = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        TxDecodeError(if path == "." { inner } else { format!("field `{path}`: {inner}") })
    })?;
    de.end().map_err(|e| TxDecodeError(format!("trailing data: {e}")))?;
    Ok(tx)
}
