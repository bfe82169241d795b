//! JSON-RPC transport: signs EIP-1559 transactions with Veil's keys, sends them pipelined with
//! nonces managed here, waits for receipts by polling (alloy's default 250 ms interval would dominate
//! a task's latency on anvil), and decodes revert reasons.

use crate::error::EvmError;
use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::eip2718::Encodable2718;
use alloy::network::{TransactionBuilder, TxSignerSync};
use alloy::primitives::{Address, B256, Bytes, TxKind, U256};
use alloy::providers::{Provider, RootProvider};
use alloy::rpc::types::{BlockId, BlockNumberOrTag, TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolError};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use veil_core::PrivateKey;

/// One transaction to send: where (None: create a contract), what, and at most how much gas.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub to: Option<Address>,
    pub data: Bytes,
    pub gas: u64,
    /// What it does, for error messages ("matchOrders", "deploy IexecPoco1Facet", …).
    pub what: String,
}

/// A mined transaction.
#[derive(Debug, Clone)]
pub struct Mined {
    pub receipt: TransactionReceipt,
}

/// How often a transaction is signed again after a nonce conflict.
pub(crate) const MAX_RESIGN: usize = 4;

/// How long without a receipt before checking that the node still knows a transaction.
const REBROADCAST_AFTER: Duration = Duration::from_secs(1);

/// How long a sent transaction may wait for its receipt.
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Clone)]
pub struct Rpc {
    pub(crate) provider: RootProvider,
    pub url: String,
    pub chain_id: u64,
    /// Next nonce per sender, once known; forgotten after any failure so it is read again.
    nonces: std::sync::Arc<tokio::sync::Mutex<HashMap<Address, u64>>>,
    /// The fee offered, with when it was read: asked at most every [`FEE_TTL`].
    fee: std::sync::Arc<std::sync::Mutex<Option<(Instant, u128)>>>,
    /// Added to every fee cap (a few wei, never paid): two clients of one account making the same
    /// call with the same nonce must sign two transactions, or both would wait on one and count it twice.
    salt: u128,
}

/// How long a read fee is offered before asking the chain again (twice the gas price leaves
/// room for the base fee to rise meanwhile).
const FEE_TTL: Duration = Duration::from_secs(1);

pub fn signer_of(key: &PrivateKey) -> Result<PrivateKeySigner, EvmError> {
    PrivateKeySigner::from_bytes(&B256::from(key.secret_bytes()))
        .map_err(|e| EvmError::Setup(format!("the key cannot sign EVM transactions: {e}")))
}

impl Rpc {
    pub async fn connect(url: &str) -> Result<Rpc, EvmError> {
        let parsed = url.parse().map_err(|e| EvmError::Setup(format!("`{url}` is not an RPC URL: {e}")))?;
        let provider = RootProvider::new_http(parsed);
        let chain_id = provider.get_chain_id().await.map_err(|e| EvmError::unreachable(url, e))?;
        let salt = rand::Rng::gen_range(&mut rand::thread_rng(), 1..1_000_000);
        Ok(Rpc { provider, url: url.to_string(), chain_id, nonces: Default::default(), fee: Default::default(), salt })
    }

    /// `eth_call` of `data` at `to`, at the latest block or at `block`.
    pub async fn call(&self, to: Address, data: Bytes, block: Option<u64>) -> Result<Bytes, EvmError> {
        let tx = TransactionRequest::default().to(to).input(data.into());
        let mut c = self.provider.call(tx);
        if let Some(b) = block {
            c = c.block(BlockId::Number(BlockNumberOrTag::Number(b)));
        }
        c.await.map_err(|e| EvmError::from_rpc(&self.url, "a read", e))
    }

    /// A view call of a contract, decoded.
    pub async fn view<C: SolCall>(&self, to: Address, call: C) -> Result<C::Return, EvmError> {
        let out = self.call(to, call.abi_encode().into(), None).await?;
        C::abi_decode_returns(&out).map_err(|e| EvmError::Decode(format!("{}: {e}", C::SIGNATURE)))
    }

    pub async fn code_at(&self, a: Address) -> Result<Bytes, EvmError> {
        self.provider.get_code_at(a).await.map_err(|e| EvmError::unreachable(&self.url, e))
    }

    pub async fn latest(&self) -> Result<(u64, B256, u64), EvmError> {
        let b = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .map_err(|e| EvmError::unreachable(&self.url, e))?
            .ok_or_else(|| EvmError::Setup("the chain has no latest block".into()))?;
        Ok((b.header.number, b.header.hash, b.header.timestamp))
    }

    pub async fn block_timestamp(&self, n: u64) -> Result<u64, EvmError> {
        let b = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(n))
            .await
            .map_err(|e| EvmError::unreachable(&self.url, e))?
            .ok_or_else(|| EvmError::Decode(format!("no block {n}")))?;
        Ok(b.header.timestamp)
    }

    pub async fn nonce_of(&self, a: Address) -> Result<u64, EvmError> {
        self.provider.get_transaction_count(a).await.map_err(|e| EvmError::unreachable(&self.url, e))
    }

    /// The next nonce counting transactions still in the mempool.
    async fn pending_nonce(&self, a: Address) -> Result<u64, EvmError> {
        self.provider.get_transaction_count(a).pending().await.map_err(|e| EvmError::unreachable(&self.url, e))
    }

    pub async fn eth_balance(&self, a: Address) -> Result<U256, EvmError> {
        self.provider.get_balance(a).await.map_err(|e| EvmError::unreachable(&self.url, e))
    }

    /// Runs one call as `from` on the latest state with its gas limit, without sending it: why the
    /// chain would revert it, if it would (one execution, where an estimate takes several).
    pub async fn simulate(&self, from: Address, out: &Outgoing) -> Result<(), EvmError> {
        let mut tx = TransactionRequest::default().from(from).input(out.data.clone().into()).gas_limit(out.gas);
        tx = match out.to {
            Some(to) => tx.to(to),
            None => tx.into_create(),
        };
        self.provider.call(tx).await.map(|_| ()).map_err(|e| EvmError::from_rpc(&self.url, &out.what, e))
    }

    /// Signs and sends `txs` from `key` with consecutive nonces, without waiting between them,
    /// then waits for every receipt. A reverted transaction is replayed as a call on the block
    /// before it to read PoCo's reason. One answer per transaction, in order. Another sender of the
    /// same account may take nonces meanwhile: a transaction the node then dropped is signed again
    /// with the chain's next nonce, so it lands once but possibly after those sent behind it.
    pub async fn send(&self, key: &PrivateKey, txs: Vec<Outgoing>) -> Vec<Result<Mined, EvmError>> {
        let n = txs.len();
        let signer = match signer_of(key) {
            Ok(s) => s,
            Err(e) => return vec![Err(e); n],
        };
        let fee = match self.fee().await {
            Ok(f) => f,
            Err(e) => return vec![Err(e); n],
        };
        let hashes = self.sign_all(&signer, fee, &txs).await;
        let from = signer.address();
        let mut answers = Vec::with_capacity(n);
        for (h, out) in hashes.into_iter().zip(&txs) {
            let mut answer = match h {
                Ok((h, raw)) => self.wait(h, &raw, from, out).await,
                Err(e) => Err(e),
            };
            for _ in 0..MAX_RESIGN {
                if !matches!(answer, Err(EvmError::Dropped { .. })) {
                    break;
                }
                answer = match self.sign_all(&signer, fee, std::slice::from_ref(out)).await.pop() {
                    Some(Ok((h, raw))) => self.wait(h, &raw, from, out).await,
                    Some(Err(e)) => Err(e),
                    None => break,
                };
            }
            answers.push(answer);
        }
        answers
    }

    /// Signs and sends `txs` with consecutive nonces from this client's count (or the chain's).
    async fn sign_all(
        &self,
        signer: &PrivateKeySigner,
        fee: u128,
        txs: &[Outgoing],
    ) -> Vec<Result<(B256, Vec<u8>), EvmError>> {
        let from = signer.address();
        let mut nonces = self.nonces.lock().await;
        let start = match nonces.get(&from) {
            Some(n) => *n,
            None => match self.pending_nonce(from).await {
                Ok(n) => n,
                Err(e) => return vec![Err(e); txs.len()],
            },
        };
        let mut hashes = Vec::with_capacity(txs.len());
        let mut next = start;
        for out in txs {
            let mut r = self.sign_and_send(signer, next, fee, out).await;
            // Another program (or another process of ours) sent from this account: take the chain's
            // next nonce and sign again, a few times, rather than fail.
            for _ in 0..MAX_RESIGN {
                if !matches!(&r, Err(e) if e.is_nonce_conflict()) {
                    break;
                }
                // Two senders in step would sign the same transaction again: part them first.
                let jitter = rand::Rng::gen_range(&mut rand::thread_rng(), 1..20);
                tokio::time::sleep(Duration::from_millis(jitter)).await;
                r = match self.pending_nonce(from).await {
                    Ok(fresh) => {
                        next = fresh.max(next + 1);
                        self.sign_and_send(signer, next, fee, out).await
                    }
                    Err(e) => Err(e),
                };
            }
            if r.is_ok() {
                next += 1;
            }
            hashes.push(r);
        }
        if hashes.iter().any(|h| h.is_err()) {
            nonces.remove(&from);
        } else {
            nonces.insert(from, next);
        }
        hashes
    }

    /// The max fee per gas to offer: twice the chain's gas price, read at most every [`FEE_TTL`].
    async fn fee(&self) -> Result<u128, EvmError> {
        if let Some((at, f)) = *self.fee.lock().unwrap_or_else(|p| p.into_inner())
            && at.elapsed() < FEE_TTL
        {
            return Ok(f);
        }
        let f = self.provider.get_gas_price().await.map_err(|e| EvmError::unreachable(&self.url, e))?;
        let f = f.saturating_mul(2).max(1);
        *self.fee.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), f));
        Ok(f)
    }

    async fn sign_and_send(
        &self,
        signer: &PrivateKeySigner,
        nonce: u64,
        fee: u128,
        out: &Outgoing,
    ) -> Result<(B256, Vec<u8>), EvmError> {
        let mut tx = TxEip1559 {
            chain_id: self.chain_id,
            nonce,
            gas_limit: out.gas,
            max_fee_per_gas: fee + self.salt,
            max_priority_fee_per_gas: fee.min(1_000_000_000),
            to: out.to.map_or(TxKind::Create, TxKind::Call),
            value: U256::ZERO,
            access_list: Default::default(),
            input: out.data.clone(),
        };
        let sig = signer.sign_transaction_sync(&mut tx).map_err(|e| EvmError::Setup(format!("signing failed: {e}")))?;
        let envelope: TxEnvelope = tx.into_signed(sig).into();
        let raw = envelope.encoded_2718();
        let pending =
            self.provider.send_raw_transaction(&raw).await.map_err(|e| EvmError::from_rpc(&self.url, &out.what, e))?;
        Ok((*pending.tx_hash(), raw))
    }

    /// Waits for the receipt of `hash`. The node may drop a pending transaction (mempool eviction,
    /// a restart that lost its pool) or be unreachable for a while: every second without a receipt
    /// the transaction is looked up and, when the node no longer knows it, `raw` is sent again (same
    /// nonce, same hash: it can only be mined once).
    async fn wait(&self, hash: B256, raw: &[u8], from: Address, out: &Outgoing) -> Result<Mined, EvmError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        let mut last_check = Instant::now();
        let mut nonce_taken_checks = 0;
        loop {
            match self.provider.get_transaction_receipt(hash).await {
                Ok(Some(receipt)) => return self.mined(receipt, from, out).await,
                Ok(None) if last_check.elapsed() >= REBROADCAST_AFTER => {
                    last_check = Instant::now();
                    match self.rebroadcast_if_dropped(hash, raw, out).await {
                        Rebroadcast::Pending => nonce_taken_checks = 0,
                        // A node may be writing the block that holds it: it is then neither pending nor
                        // receipted for a moment. Only a nonce still taken a check later means dropped.
                        Rebroadcast::NonceTaken => nonce_taken_checks += 1,
                    }
                    if nonce_taken_checks >= 2 {
                        // Its nonce is another transaction's for good: it will never be mined.
                        self.nonces.lock().await.remove(&from);
                        return Err(EvmError::Dropped { what: out.what.clone(), tx: hash });
                    }
                }
                Ok(None) => {}
                // Unreachable for a while (a restarting node): keep trying until the deadline.
                Err(_) if started.elapsed() < RECEIPT_TIMEOUT => {}
                Err(e) => return Err(EvmError::unreachable(&self.url, e)),
            }
            if started.elapsed() > RECEIPT_TIMEOUT {
                return Err(EvmError::Timeout { what: out.what.clone(), tx: hash });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    async fn rebroadcast_if_dropped(&self, hash: B256, raw: &[u8], out: &Outgoing) -> Rebroadcast {
        let known = self.provider.get_transaction_by_hash(hash).await.map(|t| t.is_some()).unwrap_or(true);
        if known {
            return Rebroadcast::Pending;
        }
        match self.provider.send_raw_transaction(raw).await {
            Err(e) => match EvmError::from_rpc(&self.url, &out.what, e) {
                // Its nonce went to a transaction (perhaps this one, just mined): it may never be mined.
                e if e.is_nonce_conflict() && e.to_string().to_ascii_lowercase().contains("nonce too low") => {
                    Rebroadcast::NonceTaken
                }
                // Known again, unreachable or refused for now: the next check tries again.
                _ => Rebroadcast::Pending,
            },
            Ok(_) => Rebroadcast::Pending,
        }
    }

    async fn mined(&self, receipt: TransactionReceipt, from: Address, out: &Outgoing) -> Result<Mined, EvmError> {
        let block = receipt.block_number.unwrap_or_default();
        if receipt.status() {
            return Ok(Mined { receipt });
        }
        let reason = self.replay_reason(from, out, block.saturating_sub(1)).await;
        Err(EvmError::Reverted { what: out.what.clone(), reason })
    }

    /// Runs a reverted transaction again as a call on the state it saw, to read its reason.
    async fn replay_reason(&self, from: Address, out: &Outgoing, block: u64) -> String {
        let mut tx = TransactionRequest::default().from(from).input(out.data.clone().into()).gas_limit(out.gas);
        tx = match out.to {
            Some(to) => tx.to(to),
            None => tx.into_create(),
        };
        match self.provider.call(tx).block(BlockId::Number(BlockNumberOrTag::Number(block))).await {
            Ok(_) => format!("out of gas or reverted by state that changed in the same block (gas limit {})", out.gas),
            Err(e) => match EvmError::from_rpc(&self.url, &out.what, e) {
                EvmError::Reverted { reason, .. } => reason,
                other => other.to_string(),
            },
        }
    }

    /// Raw JSON-RPC for methods alloy has no helper for (anvil's `evm_increaseTime`, …).
    pub async fn raw(&self, method: &'static str, params: serde_json::Value) -> Result<serde_json::Value, EvmError> {
        self.provider.raw_request(method.into(), params).await.map_err(|e| EvmError::unreachable(&self.url, e))
    }
}

/// What a revert without data says.
pub const NO_REASON: &str = "reverted without a reason";

/// What a look at a transaction without a receipt found.
enum Rebroadcast {
    /// Pending, sent again, or unknown for now.
    Pending,
    /// The node no longer knows it and its nonce is used.
    NonceTaken,
}

/// Decodes revert data: `Error(string)`, PoCo's `IncompatibleDatasetOrder(string)`, or raw bytes.
pub fn decode_revert(data: &[u8]) -> String {
    if data.is_empty() {
        return NO_REASON.into();
    }
    if let Ok(e) = alloy::sol_types::Revert::abi_decode(data) {
        return e.reason;
    }
    if let Ok(e) = crate::abi::IHub::IncompatibleDatasetOrder::abi_decode(data) {
        return format!("incompatible dataset order: {}", e.reason);
    }
    if let Ok(p) = alloy::sol_types::Panic::abi_decode(data) {
        return format!("panic {}", p.code);
    }
    format!("reverted with data 0x{}", hex::encode(data))
}
