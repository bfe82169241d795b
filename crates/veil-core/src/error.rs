//! Every way a transaction can be refused. Each message says what was wrong; match failures carry
//! iExec's code (`0x00`…`0x60`) in the text.

use crate::amount::{AmountError, Nrlc};
use crate::crypto::SignatureError;
use crate::state::TaskStatus;
use alloy_primitives::{Address, B256, U256};

/// A `matchOrders` check that failed, in the order PoCo checks them (DESIGN.md §3.3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    #[error("0x00: request category {request} differs from workerpool order category {workerpool}")]
    Category { request: U256, workerpool: U256 },
    #[error("0x01: category {0} does not exist")]
    UnknownCategory(U256),
    #[error("0x02: request trust {request} is above the workerpool order's trust {workerpool}")]
    Trust { request: U256, workerpool: U256 },
    #[error("0x03: app price {price} is above the request's appmaxprice {max}")]
    AppPrice { price: U256, max: U256 },
    #[error("0x04: dataset price {price} is above the request's datasetmaxprice {max}")]
    DatasetPrice { price: U256, max: U256 },
    #[error("0x05: workerpool price {price} is above the request's workerpoolmaxprice {max}")]
    WorkerpoolPrice { price: U256, max: U256 },
    #[error("0x06: combined tag {tag} is not offered by the workerpool order's tag {offered}")]
    Tag { tag: B256, offered: B256 },
    #[error("0x07: the TEE bit of the combined tag {tag} differs from the app order's TEE bit")]
    TeeBit { tag: B256 },
    #[error("0x10: request app {request} differs from the app order's app {order}")]
    AppMismatch { request: Address, order: Address },
    #[error("0x11: request dataset {request} differs from the dataset order's dataset {order}")]
    DatasetMismatch { request: Address, order: Address },
    #[error("0x{code:02x}: {what} is restricted to {restriction}, not {actual}")]
    Restriction { code: u8, what: &'static str, restriction: Address, actual: Address },
    #[error("0x{code:02x}: {kind} {address} is not registered")]
    NotRegistered { code: u8, kind: &'static str, address: Address },
    #[error("0x{code:02x}: {kind} order signature is invalid: {reason}")]
    BadSignature { code: u8, kind: &'static str, reason: String },
    /// `remaining` lists what each order has left, e.g. `app 3, dataset 0, workerpool 5, request 1`.
    #[error("0x60: no volume left to match (remaining {remaining})")]
    NoVolume { remaining: String },
}

impl MatchError {
    /// iExec's code for this failure.
    pub fn code(&self) -> u8 {
        match self {
            MatchError::Category { .. } => 0x00,
            MatchError::UnknownCategory(_) => 0x01,
            MatchError::Trust { .. } => 0x02,
            MatchError::AppPrice { .. } => 0x03,
            MatchError::DatasetPrice { .. } => 0x04,
            MatchError::WorkerpoolPrice { .. } => 0x05,
            MatchError::Tag { .. } => 0x06,
            MatchError::TeeBit { .. } => 0x07,
            MatchError::AppMismatch { .. } => 0x10,
            MatchError::DatasetMismatch { .. } => 0x11,
            MatchError::Restriction { code, .. }
            | MatchError::NotRegistered { code, .. }
            | MatchError::BadSignature { code, .. } => *code,
            MatchError::NoVolume { .. } => 0x60,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    #[error("task {taskid} is {actual}, this needs it {expected}")]
    Status { taskid: B256, actual: TaskStatus, expected: &'static str },
    #[error("task index {idx} is outside the deal's range [{first}, {first}+{size})")]
    IndexOutOfRange { idx: U256, first: U256, size: U256 },
    #[error("the contribution deadline ({deadline}) has passed (now {now})")]
    ContributionDeadline { deadline: u64, now: u64 },
    #[error("the reveal deadline ({deadline}) has passed (now {now})")]
    RevealDeadline { deadline: u64, now: u64 },
    #[error("the final deadline ({deadline}) has passed (now {now})")]
    FinalDeadline { deadline: u64, now: u64 },
    #[error("the final deadline ({deadline}) is not reached yet (now {now}); claim only after it")]
    NotExpired { deadline: u64, now: u64 },
    #[error("the reveal deadline ({deadline}) is not reached yet (now {now})")]
    RevealNotOver { deadline: u64, now: u64 },
    #[error("worker {0} has already contributed to this task")]
    AlreadyContributed(Address),
    #[error("the deal is TEE-tagged: a contribution needs a non-zero enclave challenge")]
    MissingEnclaveChallenge,
    #[error("enclave signature missing or not made by the enclave challenge {challenge}")]
    BadEnclaveSignature { challenge: Address },
    #[error("worker authorization is not signed by the workerpool owner {owner}")]
    BadAuthorization { owner: Address },
    #[error("worker {0} has no contribution to reveal, or it is not the consensus")]
    NotAWinner(Address),
    #[error("revealed digest does not match the contribution's result hash or seal")]
    RevealMismatch,
    #[error("someone has already revealed; reopen is only for a task nobody revealed")]
    AlreadyRevealed,
    #[error("not every winner has revealed ({revealed} of {winners}) and the reveal deadline is not reached")]
    NotAllRevealed { revealed: u64, winners: u64 },
    #[error("resultsCallback must be empty when the deal has no callback, or hash (keccak256) to the result digest")]
    CallbackMismatch,
    #[error("contributeAndFinalize needs a deal of trust 1 (this deal has trust {0})")]
    TrustNotOne(U256),
    #[error("contributeAndFinalize needs a task with no contributor yet")]
    HasContributors,
    #[error("consensus weight overflowed")]
    WeightOverflow,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    #[error("transaction signature: {0}")]
    TxSignature(SignatureError),
    #[error("transaction says it is from {claimed} but was signed by {signer}")]
    WrongSigner { claimed: Address, signer: Address },
    #[error("transaction is for chain {got}, this ledger is chain {expected}")]
    WrongChain { expected: u64, got: u64 },
    #[error("nonce {got} for {sender} is wrong: the next nonce is {expected} (replayed or out-of-order transaction)")]
    BadNonce { sender: Address, expected: u64, got: u64 },
    #[error("{0}")]
    Amount(#[from] AmountError),
    #[error("{account} has {available} nRLC {what}, {needed} nRLC needed")]
    Insufficient { account: Address, what: &'static str, needed: Nrlc, available: Nrlc },
    #[error("only the owner {owner} of {asset} may do this (sender {sender})")]
    NotOwner { asset: Address, owner: Address, sender: Address },
    #[error("only the ledger admin {admin} may do this")]
    NotAdmin { admin: Address },
    #[error("{kind} {address} is not registered")]
    Unknown { kind: &'static str, address: Address },
    #[error("{kind} {id} does not exist")]
    UnknownId { kind: &'static str, id: B256 },
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("matchOrders refused: {0}")]
    Match(Box<MatchError>),
    #[error("{0}")]
    Task(#[from] TaskError),
}

impl From<MatchError> for CoreError {
    fn from(e: MatchError) -> Self {
        CoreError::Match(Box::new(e))
    }
}
