//! [`EvmLedger`]: the [`Ledger`] trait on iExec's PoCo contracts. Veil's calls become PoCo
//! transactions, PoCo's views become Veil's, PoCo's logs become Veil's events.

use crate::abi::{IHub, IRegistry, IRlc};
use crate::convert;
use crate::deploy::Deployment;
use crate::error::EvmError;
use crate::rpc::{Outgoing, Rpc};
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolCall;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use std::collections::BTreeMap;
use std::time::Duration;
use veil_core::block::Receipt;
use veil_core::eip712::{Domain, known_verifying_contract};
use veil_core::events::Event;
use veil_core::state::{
    Account, App, Category, Contribution, ContributionStatus, Dataset, Deal, DealAsset, Task, TaskStatus, Workerpool,
};
use veil_core::{Call, Nrlc, PrivateKey};
use veil_sdk::ledger::{BlockEvents, MAX_EVENT_BLOCKS};
use veil_sdk::{AccountView, AssetView, ChainInfo, DealView, EvmTarget, Ledger, SdkError, TaskView};

/// PoCo on an EVM chain, through one RPC endpoint. Cloning shares the connection and nonces.
#[derive(Clone)]
pub struct EvmLedger {
    pub rpc: Rpc,
    pub deployment: Deployment,
}

impl From<EvmError> for SdkError {
    fn from(e: EvmError) -> SdkError {
        let kind = match &e {
            EvmError::Reverted { .. } => "rejected",
            EvmError::Unreachable { .. } => "unreachable",
            EvmError::Refused { .. } | EvmError::Dropped { .. } => "refused",
            EvmError::Timeout { .. } => "timeout",
            EvmError::Setup(_) | EvmError::Package(_) => "setup",
            EvmError::Decode(_) => "decode",
        };
        SdkError::Chain { kind: kind.into(), message: e.to_string() }
    }
}

fn not_found(what: String) -> SdkError {
    SdkError::Api { status: 404, kind: "not_found".into(), message: what }
}

/// Checks that `hub` runs PoCo with iExec's EIP-712 domain (iExecODB 5.0.0, this chain, this hub).
pub async fn check_domain(rpc: &Rpc, hub: Address) -> Result<(), EvmError> {
    if rpc.code_at(hub).await?.is_empty() {
        return Err(EvmError::Setup(format!(
            "no contract at {hub} on chain {} ({}): check --hub (`veil evm anvil` prints the hub)",
            rpc.chain_id, rpc.url
        )));
    }
    let sep = rpc.view(hub, IHub::eip712domain_separatorCall {}).await.map_err(|_| {
        EvmError::Setup(format!(
            "{hub} on chain {} is not iExec's PoCo hub (it has no eip712domain_separator)",
            rpc.chain_id
        ))
    })?;
    let expected = Domain { chain_id: rpc.chain_id, verifying_contract: hub }.separator();
    if sep != expected {
        return Err(EvmError::Setup(format!(
            "the hub at {hub} signs orders for another domain ({sep}, expected iExecODB 5.0.0 on chain {} = {expected}): wrong chain or not PoCo v5+",
            rpc.chain_id
        )));
    }
    Ok(())
}

impl EvmLedger {
    /// Connects to PoCo at `hub` (or iExec's own hub for chain ids 42161 and 421614).
    pub async fn connect(url: &str, hub: Option<Address>) -> Result<EvmLedger, EvmError> {
        let rpc = Rpc::connect(url).await?;
        let hub = match hub.or_else(|| known_verifying_contract(rpc.chain_id).filter(|_| rpc.chain_id != 134)) {
            Some(h) => h,
            None => {
                return Err(EvmError::Setup(format!(
                    "chain {} has no known PoCo hub: pass --hub ADDRESS (or VEIL_HUB; `veil evm anvil` prints it)",
                    rpc.chain_id
                )));
            }
        };
        check_domain(&rpc, hub).await?;
        let deployment = Deployment {
            chain_id: rpc.chain_id,
            hub,
            rlc: rpc.view(hub, IHub::tokenCall {}).await?,
            app_registry: rpc.view(hub, IHub::appregistryCall {}).await?,
            dataset_registry: rpc.view(hub, IHub::datasetregistryCall {}).await?,
            workerpool_registry: rpc.view(hub, IHub::workerpoolregistryCall {}).await?,
            deployer: rpc.view(hub, IHub::ownerCall {}).await?,
            poco_version: String::new(),
            transactions: 0,
            gas_used: 0,
        };
        Ok(EvmLedger { rpc, deployment })
    }

    async fn hub<C: SolCall>(&self, call: C) -> Result<C::Return, EvmError> {
        self.rpc.view(self.deployment.hub, call).await
    }

    /// The registry (app, dataset or workerpool) that holds `asset`, if any.
    async fn registry_of(&self, asset: Address) -> Result<Option<Address>, EvmError> {
        let d = &self.deployment;
        for reg in [d.app_registry, d.dataset_registry, d.workerpool_registry] {
            if self.rpc.view(reg, IRegistry::isRegisteredCall { entry: asset }).await? {
                return Ok(Some(reg));
            }
        }
        Ok(None)
    }

    async fn registered(&self, registry: Address, a: Address, what: &str) -> Result<(), SdkError> {
        if self.rpc.view(registry, IRegistry::isRegisteredCall { entry: a }).await? {
            Ok(())
        } else {
            Err(not_found(format!("no {what} {a} in PoCo's {what} registry")))
        }
    }

    /// The transaction for `call` (an ownership transfer first asks which registry holds the asset).
    async fn outgoing_for(&self, from: Address, call: &Call) -> Result<Outgoing, EvmError> {
        let registry = match call {
            Call::TransferOwnership { asset, .. } => self.registry_of(*asset).await?,
            _ => None,
        };
        convert::outgoing(&self.deployment, from, call, registry).map_err(EvmError::Setup)
    }

    /// Moves the chain's clock (anvil, hardhat): `evm_increaseTime` then `evm_mine`.
    pub async fn increase_time(&self, seconds: u64) -> Result<(), EvmError> {
        self.rpc.raw("evm_increaseTime", serde_json::json!([seconds])).await?;
        self.rpc.raw("evm_mine", serde_json::json!([])).await?;
        Ok(())
    }

    /// Gives `a` this much ETH for gas (anvil, hardhat: `anvil_setBalance`; a test chain only).
    pub async fn set_gas_balance(&self, a: Address, wei: U256) -> Result<(), EvmError> {
        self.rpc.raw("anvil_setBalance", serde_json::json!([a, format!("{wei:#x}")])).await?;
        Ok(())
    }

    /// The RLC a key holds outside the escrow.
    pub async fn rlc_balance(&self, a: Address) -> Result<U256, EvmError> {
        self.rpc.view(self.deployment.rlc, IRlc::balanceOfCall { owner: a }).await
    }

    async fn categories(&self) -> Result<Vec<(u64, Category)>, EvmError> {
        let count: u64 = self.hub(IHub::countCategoryCall {}).await?.saturating_to();
        let mut out = Vec::new();
        for id in 0..count.min(1_000) {
            let c = self.hub(IHub::viewCategoryCall { id: U256::from(id) }).await?;
            out.push((
                id,
                Category {
                    name: c.name,
                    description: c.description,
                    work_clock_time_ref: c.workClockTimeRef.saturating_to(),
                },
            ));
        }
        Ok(out)
    }

    fn receipt(&self, from: Address, mined: crate::rpc::Mined) -> Receipt {
        let r = &mined.receipt;
        let events = r.inner.logs().iter().filter_map(|l| convert::event(&self.deployment, from, l)).collect();
        Receipt {
            tx_hash: r.transaction_hash,
            block: r.block_number.unwrap_or_default(),
            index: r.transaction_index.unwrap_or_default() as u32,
            events,
        }
    }

    /// [`Ledger::send_batch`] that also returns each transaction's gas (for benchmarks).
    pub async fn send_with_gas(&self, key: &PrivateKey, calls: Vec<Call>) -> Vec<Result<(Receipt, u64), SdkError>> {
        if calls.len() >= 2 && calls.iter().all(|c| matches!(c, Call::Initialize { .. })) {
            return self.initialize_arrays(key, calls).await;
        }
        self.send_each(key, calls).await
    }

    /// Initializations travel as PoCo's `initializeArray`: one transaction (one base cost, one
    /// block) for up to [`INIT_ARRAY_MAX`] tasks; each call still gets its own receipt, holding its
    /// task's event. A chunk PoCo refuses as a whole (one task initialized already) is sent again
    /// call by call, so each answer says what happened to its task.
    async fn initialize_arrays(&self, key: &PrivateKey, calls: Vec<Call>) -> Vec<Result<(Receipt, u64), SdkError>> {
        let from = key.address();
        let chunks: Vec<Vec<Call>> = calls.chunks(INIT_ARRAY_MAX).map(<[Call]>::to_vec).collect();
        let outs: Vec<Outgoing> = chunks.iter().map(|c| convert::initialize_array(&self.deployment, c)).collect();
        let mut answers = Vec::with_capacity(calls.len());
        for (chunk, sent) in chunks.into_iter().zip(self.rpc.send(key, outs).await) {
            match sent {
                Ok(m) => {
                    let gas = m.receipt.gas_used / chunk.len() as u64;
                    let whole = self.receipt(from, m);
                    answers.extend(chunk.iter().map(|c| Ok((receipt_for(&whole, c), gas))));
                }
                Err(_) => answers.extend(self.send_each(key, chunk).await),
            }
        }
        answers
    }

    /// Each call as its own transaction, pipelined (a single call is estimated first).
    async fn send_each(&self, key: &PrivateKey, calls: Vec<Call>) -> Vec<Result<(Receipt, u64), SdkError>> {
        let from = key.address();
        let mut outs = Vec::with_capacity(calls.len());
        for call in &calls {
            outs.push(self.outgoing_for(from, call).await);
        }
        if let [Ok(single)] = outs.as_mut_slice() {
            // One call: simulated first (with the limit it is sent with), so a refusal costs
            // nothing and says PoCo's reason.
            if let Err(e) = self.rpc.simulate(from, single).await {
                return vec![Err(explain(e, &calls[0]).into())];
            }
        }
        let ok: Vec<Outgoing> = outs.iter().filter_map(|o| o.as_ref().ok().cloned()).collect();
        // One answer per sent transaction, in order: the refused-before-sending ones keep their error.
        let mut sent = self.rpc.send(key, ok).await.into_iter();
        outs.into_iter()
            .zip(&calls)
            .map(|(o, call)| match o {
                Err(e) => Err(e.into()),
                Ok(_) => match sent.next() {
                    Some(Ok(m)) => {
                        let gas = m.receipt.gas_used;
                        Ok((self.receipt(from, m), gas))
                    }
                    Some(Err(e)) => Err(explain(e, call).into()),
                    None => Err(SdkError::Decode("no answer".into())),
                },
            })
            .collect()
    }
}

/// Most tasks one `initializeArray` transaction initializes.
pub const INIT_ARRAY_MAX: usize = 64;

/// The part of an `initializeArray` receipt that concerns one of its initializations.
fn receipt_for(whole: &Receipt, call: &Call) -> Receipt {
    let Call::Initialize { dealid, idx } = call else { return whole.clone() };
    let task = veil_core::state::task_id(dealid, *idx);
    let events = whole
        .events
        .iter()
        .filter(|e| matches!(e, veil_core::events::Event::TaskInitialize { taskid, .. } if *taskid == task))
        .cloned()
        .collect();
    Receipt { events, ..whole.clone() }
}

/// Adds what PoCo checks to a revert that came without a reason.
fn explain(e: EvmError, call: &Call) -> EvmError {
    match e {
        EvmError::Reverted { what, reason } if reason.starts_with(crate::rpc::NO_REASON) => {
            EvmError::Reverted { what, reason: format!("{reason}: {}", convert::refusal_hint(call)) }
        }
        // PoCo's registries derive an asset's address from its fields (CREATE2).
        EvmError::Reverted { what, reason } if reason.contains("Create2: Failed on deploy") => EvmError::Reverted {
            what,
            reason: format!(
                "{reason}: the same owner already registered an asset with exactly these fields (PoCo derives its address from them): give it another --name"
            ),
        },
        other => other,
    }
}

fn task_status(s: u8) -> TaskStatus {
    match s {
        1 => TaskStatus::Active,
        2 => TaskStatus::Revealing,
        3 => TaskStatus::Completed,
        4 => TaskStatus::Failed,
        _ => TaskStatus::Unset,
    }
}

fn contribution_status(s: u8) -> ContributionStatus {
    match s {
        1 => ContributionStatus::Contributed,
        2 => ContributionStatus::Proved,
        3 => ContributionStatus::Rejected,
        _ => ContributionStatus::Unset,
    }
}

fn asset(r: &crate::abi::Resource) -> DealAsset {
    DealAsset { pointer: r.pointer, owner: r.owner, price: Nrlc(r.price) }
}

/// A multiaddr read from PoCo: iExec's SDK writes `/ipfs/…` in binary form.
fn text(b: &Bytes) -> String {
    veil_core::cid::multiaddr_text(b)
}

#[async_trait::async_trait]
impl Ledger for EvmLedger {
    fn describe(&self) -> String {
        format!("PoCo hub {} on chain {} ({})", self.deployment.hub, self.rpc.chain_id, self.rpc.url)
    }

    async fn chain(&self) -> Result<ChainInfo, SdkError> {
        let (head, head_hash, timestamp) = self.rpc.latest().await?;
        Ok(ChainInfo {
            chain_id: self.rpc.chain_id,
            domain: Domain { chain_id: self.rpc.chain_id, verifying_contract: self.deployment.hub },
            head,
            head_hash,
            state_digest: B256::ZERO,
            timestamp,
            dev: self.rpc.chain_id == 31337,
            categories: self.categories().await?,
            evm: Some(EvmTarget { rpc: self.rpc.url.clone(), hub: self.deployment.hub }),
        })
    }

    async fn send_batch(&self, key: &PrivateKey, calls: Vec<Call>) -> Vec<Result<Receipt, SdkError>> {
        self.send_with_gas(key, calls).await.into_iter().map(|r| r.map(|(r, _)| r)).collect()
    }

    async fn account(&self, a: &Address) -> Result<AccountView, SdkError> {
        let acc = self.hub(IHub::viewAccountCall { account: *a }).await?;
        let account = Account {
            wallet: Nrlc(self.rlc_balance(*a).await?),
            balance: Nrlc(acc.stake),
            locked: Nrlc(acc.locked),
            nonce: self.rpc.nonce_of(*a).await?,
            score: self.hub(IHub::viewScoreCall { worker: *a }).await?.saturating_to(),
        };
        Ok(AccountView { address: *a, account })
    }

    async fn app(&self, a: &Address) -> Result<AssetView<App>, SdkError> {
        self.registered(self.deployment.app_registry, *a, "app").await?;
        let v = self.hub(IHub::viewAppCall { app: *a }).await?;
        let asset = App {
            owner: v.owner,
            name: v.name,
            app_type: v.appType,
            multiaddr: text(&v.multiaddr),
            checksum: v.checksum,
            mrenclave: text(&v.mrenclave),
        };
        Ok(AssetView { address: *a, asset })
    }

    async fn dataset(&self, a: &Address) -> Result<AssetView<Dataset>, SdkError> {
        self.registered(self.deployment.dataset_registry, *a, "dataset").await?;
        let v = self.hub(IHub::viewDatasetCall { dataset: *a }).await?;
        Ok(AssetView {
            address: *a,
            asset: Dataset { owner: v.owner, name: v.name, multiaddr: text(&v.multiaddr), checksum: v.checksum },
        })
    }

    async fn workerpool(&self, a: &Address) -> Result<AssetView<Workerpool>, SdkError> {
        self.registered(self.deployment.workerpool_registry, *a, "workerpool").await?;
        let v = self.hub(IHub::viewWorkerpoolCall { workerpool: *a }).await?;
        let asset = Workerpool {
            owner: v.owner,
            description: v.description,
            worker_stake_ratio: v.workerStakeRatio.saturating_to(),
            scheduler_reward_ratio: v.schedulerRewardRatio.saturating_to(),
        };
        Ok(AssetView { address: *a, asset })
    }

    async fn datasets_of(&self, owner: &Address) -> Result<Vec<AssetView<Dataset>>, SdkError> {
        // The registry is an enumerable ERC-721 whose token ids are the assets' addresses.
        let reg = self.deployment.dataset_registry;
        let n: u64 = self.rpc.view(reg, IRegistry::balanceOfCall { owner: *owner }).await?.saturating_to();
        let mut out = Vec::new();
        for i in 0..n.min(10_000) {
            let id =
                self.rpc.view(reg, IRegistry::tokenOfOwnerByIndexCall { owner: *owner, index: U256::from(i) }).await?;
            out.push(self.dataset(&Address::from_slice(&id.to_be_bytes::<32>()[12..])).await?);
        }
        Ok(out)
    }

    async fn deal(&self, id: &B256) -> Result<DealView, SdkError> {
        let d = self.hub(IHub::viewDealCall { id: *id }).await?;
        if d.requester == Address::ZERO {
            return Err(not_found(format!("no deal {id} on PoCo")));
        }
        let deal = Deal {
            app: asset(&d.app),
            dataset: asset(&d.dataset),
            workerpool: asset(&d.workerpool),
            trust: d.trust,
            category: d.category.saturating_to(),
            tag: d.tag,
            requester: d.requester,
            beneficiary: d.beneficiary,
            callback: d.callback,
            params: d.params,
            start_time: d.startTime.saturating_to(),
            bot_first: d.botFirst,
            bot_size: d.botSize,
            worker_stake: Nrlc(d.workerStake),
            scheduler_reward_ratio: d.schedulerRewardRatio.saturating_to(),
            sponsor: d.sponsor,
            // PoCo keeps no order hashes in a deal (its OrdersMatched event has them).
            app_order_hash: B256::ZERO,
            dataset_order_hash: B256::ZERO,
            workerpool_order_hash: B256::ZERO,
            request_order_hash: B256::ZERO,
        };
        Ok(DealView { dealid: *id, deal })
    }

    async fn task(&self, id: &B256) -> Result<TaskView, SdkError> {
        let t = self.hub(IHub::viewTaskCall { id: *id }).await?;
        if t.status == 0 && t.dealid == B256::ZERO {
            return Err(not_found(format!("no task {id} on PoCo (not initialized yet?)")));
        }
        let mut contributions = BTreeMap::new();
        for w in &t.contributors {
            let c = self.hub(IHub::viewContributionCall { taskid: *id, worker: *w }).await?;
            contributions.insert(
                *w,
                Contribution {
                    status: contribution_status(c.status),
                    result_hash: c.resultHash,
                    result_seal: c.resultSeal,
                    enclave_challenge: c.enclaveChallenge,
                    weight: c.weight.saturating_to(),
                },
            );
        }
        let task = Task {
            status: task_status(t.status),
            dealid: t.dealid,
            idx: t.idx,
            timeref: t.timeref.saturating_to(),
            contribution_deadline: t.contributionDeadline.saturating_to(),
            reveal_deadline: t.revealDeadline.saturating_to(),
            final_deadline: t.finalDeadline.saturating_to(),
            consensus_value: t.consensusValue,
            reveal_counter: t.revealCounter.saturating_to(),
            winner_counter: t.winnerCounter.saturating_to(),
            contributors: t.contributors,
            contributions,
            // PoCo keeps the consensus groups private.
            groups: BTreeMap::new(),
            total: U256::ZERO,
            result_digest: t.resultDigest,
            results: t.results,
            results_callback: t.resultsCallback,
        };
        Ok(TaskView { taskid: *id, task })
    }

    async fn consumed(&self, order_hash: &B256) -> Result<U256, SdkError> {
        Ok(self.hub(IHub::viewConsumedCall { hash: *order_hash }).await?)
    }

    async fn follow(&self, from: u64) -> Result<BoxStream<'static, Result<BlockEvents, SdkError>>, SdkError> {
        // Polled: a plain HTTP endpoint has no subscriptions. Every few ms while blocks come, backing
        // off to 100 ms when the chain is idle.
        let me = self.clone();
        let state = (me, from, std::collections::VecDeque::<BlockEvents>::new(), Duration::from_millis(2));
        Ok(futures_util::stream::unfold(state, |(me, mut from, mut ready, mut pause)| async move {
            loop {
                if let Some(b) = ready.pop_front() {
                    return Some((Ok(b), (me, from, ready, pause)));
                }
                match me.events_and_head(from).await {
                    Ok((blocks, head)) => {
                        if head >= from {
                            from = head + 1;
                            pause = Duration::from_millis(2);
                        }
                        ready.extend(blocks);
                        if ready.is_empty() {
                            tokio::time::sleep(pause).await;
                            pause = (pause * 2).min(Duration::from_millis(100));
                        }
                    }
                    Err(e) => return Some((Err(e), (me, from, ready, pause))),
                }
            }
        })
        .boxed())
    }

    async fn events(&self, from: u64) -> Result<Vec<BlockEvents>, SdkError> {
        Ok(self.events_and_head(from).await?.0)
    }

    async fn transaction(&self, hash: &B256) -> Result<Option<Receipt>, SdkError> {
        let r = self
            .rpc
            .provider
            .get_transaction_receipt(*hash)
            .await
            .map_err(|e| EvmError::unreachable(&self.rpc.url, e))?;
        let Some(r) = r else { return Ok(None) };
        let d = &self.deployment;
        let events = r.inner.logs().iter().filter_map(|log| convert::event(d, Address::ZERO, log)).collect();
        Ok(Some(Receipt {
            tx_hash: *hash,
            block: r.block_number.unwrap_or_default(),
            index: r.transaction_index.unwrap_or_default() as u32,
            events,
        }))
    }
}

impl EvmLedger {
    /// The events of blocks `from..=last` and `last` (at most [`MAX_EVENT_BLOCKS`], up to the head).
    async fn events_and_head(&self, from: u64) -> Result<(Vec<BlockEvents>, u64), SdkError> {
        let (head, _, _) = self.rpc.latest().await?;
        if from > head {
            return Ok((Vec::new(), head));
        }
        let to = head.min(from.saturating_add(MAX_EVENT_BLOCKS - 1));
        let d = &self.deployment;
        let filter = Filter::new()
            .address(vec![d.hub, d.app_registry, d.dataset_registry, d.workerpool_registry])
            .from_block(from)
            .to_block(to);
        let logs = self.rpc.provider.get_logs(&filter).await.map_err(|e| EvmError::unreachable(&self.rpc.url, e))?;
        let mut blocks: BTreeMap<u64, BlockEvents> = BTreeMap::new();
        for log in &logs {
            let Some(mut e) = convert::event(d, Address::ZERO, log) else { continue };
            if let Event::OrderPresigned { hash, signer } = &mut e {
                *signer = self.hub(IHub::viewPresignedCall { hash: *hash }).await?;
            }
            let n = log.block_number.unwrap_or_default();
            let entry = blocks.entry(n).or_insert_with(|| BlockEvents {
                block: n,
                timestamp: log.block_timestamp.unwrap_or_default(),
                events: Vec::new(),
            });
            entry.events.push(e);
        }
        Ok((blocks.into_values().collect(), to))
    }
}
