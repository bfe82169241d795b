//! Request and response bodies of the node's API.

use serde::{Deserialize, Serialize};
use veil_core::block::Receipt;
use veil_core::book::BookEntry;
use veil_core::eip712::Domain;
use veil_core::state::{Account, Category};
use veil_core::tx::AnyOrder;
use veil_core::{Address, B256, Signature, crypto, keccak256};

/// Every error body: what was wrong, and a machine-readable kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainInfo {
    pub chain_id: u64,
    pub domain: Domain,
    pub head: u64,
    pub head_hash: B256,
    pub state_digest: B256,
    pub timestamp: u64,
    pub dev: bool,
    pub categories: Vec<(u64, Category)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountView {
    pub address: Address,
    #[serde(flatten)]
    pub account: Account,
}

/// An app, dataset or workerpool with its address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetView<T> {
    pub address: Address,
    #[serde(flatten)]
    pub asset: T,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DealView {
    pub dealid: B256,
    #[serde(flatten)]
    pub deal: veil_core::state::Deal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskView {
    pub taskid: B256,
    #[serde(flatten)]
    pub task: veil_core::state::Task,
}

/// Body of `POST /orders`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishRequest {
    pub order: AnyOrder,
    pub sign: Option<Signature>,
}

/// Body of `POST /orders/unpublish`: the signer of the order asks for its removal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnpublishRequest {
    pub order_hash: B256,
    /// EIP-191 signature of [`unpublish_message`] by the order's signer.
    pub signature: Signature,
}

/// What an unpublish request signs: `keccak256("veil-unpublish-v1" ‖ orderHash)`.
pub fn unpublish_message(order_hash: &B256) -> B256 {
    keccak256([b"veil-unpublish-v1".as_slice(), order_hash.as_slice()].concat())
}

/// Recovers who signed an unpublish request.
pub fn unpublish_signer(req: &UnpublishRequest) -> Option<Address> {
    crypto::recover_message_hash(&unpublish_message(&req.order_hash), &req.signature).ok()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderbookPage {
    pub orders: Vec<BookEntry>,
    /// Orders matching the filters, over all pages.
    pub count: u64,
    pub page: u64,
    pub next_page: Option<u64>,
}

/// One message of the event stream: a block and what its transactions did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamBlock {
    pub number: u64,
    pub hash: B256,
    pub timestamp: u64,
    pub receipts: Vec<Receipt>,
}
