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

/// Most transactions in one `POST /txs` batch.
pub const MAX_BATCH_TXS: usize = 512;

/// One answer of a `POST /txs` batch, in the batch's order: a receipt or why the transaction was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BatchItem {
    Receipt(Receipt),
    Refused { status: u16, error: String, kind: String },
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
    /// Set by a node that serves an EVM chain's off-chain services (it has no ledger of its own):
    /// where clients find that chain's ledger, PoCo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evm: Option<EvmTarget>,
}

/// An EVM chain running PoCo: its JSON-RPC URL and hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvmTarget {
    pub rpc: String,
    pub hub: Address,
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

/// `GET /consumed/{hash}`: how much of an order's volume deals have used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumedView {
    pub order_hash: B256,
    #[serde(with = "veil_core::uint")]
    pub consumed: veil_core::U256,
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
    /// The entry's publication number, so the signature cannot remove a later re-publication.
    pub published: u64,
    /// EIP-191 signature of [`unpublish_message`] by the order's signer.
    pub signature: Signature,
}

/// What an unpublish request signs: `keccak256("veil-unpublish-v1" ‖ orderHash ‖ published)`.
pub fn unpublish_message(order_hash: &B256, published: u64) -> B256 {
    keccak256([b"veil-unpublish-v1".as_slice(), order_hash.as_slice(), &published.to_be_bytes()].concat())
}

/// Body of `POST /workerpools/{address}/api`: the workerpool's owner tells the node where its
/// scheduler's API is, for iExec's compass (`GET /{chainId}/workerpools/{address}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolApiAnnouncement {
    pub url: String,
    /// Unix seconds; the node refuses announcements more than 5 minutes off its clock.
    pub timestamp: u64,
    /// EIP-191 signature of [`pool_api_message`] by the workerpool's owner.
    pub signature: Signature,
}

/// What a pool API announcement signs: `keccak256("veil-pool-api-v1" ‖ workerpool ‖ keccak256(url) ‖ timestamp)`.
pub fn pool_api_message(workerpool: &Address, url: &str, timestamp: u64) -> B256 {
    let url_hash = keccak256(url.as_bytes());
    keccak256(
        [b"veil-pool-api-v1".as_slice(), workerpool.as_slice(), url_hash.as_slice(), &timestamp.to_be_bytes()].concat(),
    )
}

/// Recovers who signed an unpublish request.
pub fn unpublish_signer(req: &UnpublishRequest) -> Option<Address> {
    crypto::recover_message_hash(&unpublish_message(&req.order_hash, req.published), &req.signature).ok()
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

/// What the SMS stores, and for whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecretKind {
    /// A dataset's encryption key (base64, 32 bytes); written by the dataset's owner.
    DatasetKey,
    /// A requester's named secret; written by the requester.
    RequesterSecret,
    /// An app developer's secret; written by the app's owner.
    AppSecret,
    /// A beneficiary's result-encryption public key (PEM); written by the beneficiary.
    ResultKey,
}

impl SecretKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            SecretKind::DatasetKey => "dataset-key",
            SecretKind::RequesterSecret => "requester-secret",
            SecretKind::AppSecret => "app-secret",
            SecretKind::ResultKey => "result-key",
        }
    }
}

/// A challenge from the SMS: single use, short-lived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SmsChallenge {
    pub challenge: B256,
    pub expires_in_secs: u64,
}

/// Body of an SMS write: the value, the challenge it answers, and the writer's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SmsWrite {
    pub value: String,
    pub challenge: B256,
    /// EIP-191 signature of [`sms_message`].
    pub signature: Signature,
}

/// What an SMS write signs: `keccak256("veil-sms-v1" ‖ kind ‖ target ‖ name ‖ keccak256(value) ‖ challenge)`,
/// with a zero byte after each text part, so a signature is valid for one value, one slot, once.
pub fn sms_message(kind: SecretKind, target: &Address, name: &str, value: &str, challenge: &B256) -> B256 {
    let mut buf = b"veil-sms-v1\0".to_vec();
    buf.extend_from_slice(kind.as_str().as_bytes());
    buf.push(0);
    buf.extend_from_slice(target.as_slice());
    buf.extend_from_slice(name.as_bytes());
    buf.push(0);
    buf.extend_from_slice(keccak256(value.as_bytes()).as_slice());
    buf.extend_from_slice(challenge.as_slice());
    keccak256(buf)
}

/// Whether a secret is stored (the SMS never returns values).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsExists {
    pub exists: bool,
}

/// A stored blob: its id (sha256 hex of the bytes), size and URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    pub id: String,
    pub size: u64,
    #[serde(default)]
    pub url: String,
}

/// `ms` (Unix milliseconds, UTC) in ISO 8601 with milliseconds, as iExec's services write times:
/// `2026-12-01T18:45:52.123Z`.
pub fn iso8601_ms(ms: u64) -> String {
    let (secs, millis) = (ms / 1000, ms % 1000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm, for the proleptic Gregorian calendar).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod time_tests {
    #[test]
    fn iso8601_matches_known_instants() {
        let check = |ms: u64, want: &str| assert_eq!(super::iso8601_ms(ms), want, "{ms}");
        check(0, "1970-01-01T00:00:00.000Z");
        check(951_782_400_000, "2000-02-29T00:00:00.000Z");
        check(1_709_251_199_999, "2024-02-29T23:59:59.999Z");
        check(1_796_150_752_123, "2026-12-01T18:45:52.123Z");
        check(4_102_444_800_000, "2100-01-01T00:00:00.000Z");
    }
}
