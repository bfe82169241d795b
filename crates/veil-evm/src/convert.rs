//! Veil's calls and orders as PoCo calls, and PoCo's logs as Veil's events.

use crate::abi::{self, IHub, IRegistry, IRlc, IWorkerpool};
use crate::deploy::Deployment;
use crate::rpc::Outgoing;
use alloy::primitives::{Address, Bytes, U256};
use alloy::rpc::types::Log;
use alloy::sol_types::{SolCall, SolEvent, SolEventInterface};
use veil_core::events::Event;
use veil_core::orders::{AppOrder, DatasetOrder, RequestOrder, Signed, WorkerpoolOrder};
use veil_core::tx::AnyOrder;
use veil_core::{Call, Nrlc, Signature};

fn sig(s: &Option<Signature>) -> Bytes {
    s.map(|s| Bytes::from(s.0.to_vec())).unwrap_or_default()
}

pub fn app_order(o: &AppOrder, s: &Option<Signature>) -> abi::AppOrder {
    abi::AppOrder {
        app: o.app,
        appprice: o.appprice,
        volume: o.volume,
        tag: o.tag,
        datasetrestrict: o.datasetrestrict,
        workerpoolrestrict: o.workerpoolrestrict,
        requesterrestrict: o.requesterrestrict,
        salt: o.salt,
        sign: sig(s),
    }
}

pub fn dataset_order(o: &DatasetOrder, s: &Option<Signature>) -> abi::DatasetOrder {
    abi::DatasetOrder {
        dataset: o.dataset,
        datasetprice: o.datasetprice,
        volume: o.volume,
        tag: o.tag,
        apprestrict: o.apprestrict,
        workerpoolrestrict: o.workerpoolrestrict,
        requesterrestrict: o.requesterrestrict,
        salt: o.salt,
        sign: sig(s),
    }
}

pub fn workerpool_order(o: &WorkerpoolOrder, s: &Option<Signature>) -> abi::WorkerpoolOrder {
    abi::WorkerpoolOrder {
        workerpool: o.workerpool,
        workerpoolprice: o.workerpoolprice,
        volume: o.volume,
        tag: o.tag,
        category: o.category,
        trust: o.trust,
        apprestrict: o.apprestrict,
        datasetrestrict: o.datasetrestrict,
        requesterrestrict: o.requesterrestrict,
        salt: o.salt,
        sign: sig(s),
    }
}

pub fn request_order(o: &RequestOrder, s: &Option<Signature>) -> abi::RequestOrder {
    abi::RequestOrder {
        app: o.app,
        appmaxprice: o.appmaxprice,
        dataset: o.dataset,
        datasetmaxprice: o.datasetmaxprice,
        workerpool: o.workerpool,
        workerpoolmaxprice: o.workerpoolmaxprice,
        requester: o.requester,
        volume: o.volume,
        tag: o.tag,
        category: o.category,
        trust: o.trust,
        beneficiary: o.beneficiary,
        callback: o.callback,
        params: o.params.clone(),
        salt: o.salt,
        sign: sig(s),
    }
}

/// PoCo's `OrderOperationEnum`.
const SIGN: u8 = 0;
const CLOSE: u8 = 1;

fn manage(order: &AnyOrder, operation: u8) -> Vec<u8> {
    let sign = Bytes::new();
    match order {
        AnyOrder::App(o) => {
            IHub::manageAppOrderCall { op: abi::AppOrderOperation { order: app_order(o, &None), operation, sign } }
                .abi_encode()
        }
        AnyOrder::Dataset(o) => IHub::manageDatasetOrderCall {
            op: abi::DatasetOrderOperation { order: dataset_order(o, &None), operation, sign },
        }
        .abi_encode(),
        AnyOrder::Workerpool(o) => IHub::manageWorkerpoolOrderCall {
            op: abi::WorkerpoolOrderOperation { order: workerpool_order(o, &None), operation, sign },
        }
        .abi_encode(),
        AnyOrder::Request(o) => IHub::manageRequestOrderCall {
            op: abi::RequestOrderOperation { order: request_order(o, &None), operation, sign },
        }
        .abi_encode(),
    }
}

pub fn match_orders(
    app: &Signed<AppOrder>,
    dataset: &Option<Signed<DatasetOrder>>,
    workerpool: &Signed<WorkerpoolOrder>,
    request: &Signed<RequestOrder>,
) -> Vec<u8> {
    IHub::matchOrdersCall {
        app: app_order(&app.order, &app.sign),
        dataset: dataset
            .as_ref()
            .map_or_else(|| dataset_order(&DatasetOrder::none(), &None), |d| dataset_order(&d.order, &d.sign)),
        workerpool: workerpool_order(&workerpool.order, &workerpool.sign),
        request: request_order(&request.order, &request.sign),
    }
    .abi_encode()
}

/// What PoCo checks when it refuses `call` without a reason (most of its task checks are bare
/// `require`s), so the user knows where to look.
pub fn refusal_hint(call: &Call) -> &'static str {
    match call {
        Call::Deposit { .. } => "PoCo checks that the wallet holds that much RLC",
        Call::Withdraw { .. } | Call::Transfer { .. } => {
            "PoCo checks that the escrow balance (not locked) covers the amount"
        }
        Call::CreateApp { .. } | Call::CreateDataset { .. } | Call::CreateWorkerpool { .. } => {
            "PoCo refuses a second asset with the same owner and fields (change the name)"
        }
        Call::SetWorkerpoolPolicy { .. } => {
            "only the workerpool's owner may change its policy, with ratios of at most 100"
        }
        Call::TransferOwnership { .. } => "only the asset's owner may transfer it",
        Call::CreateCategory { .. } => "only the hub's owner may create categories",
        Call::PresignOrder { .. } | Call::CancelOrder { .. } => {
            "only the asset's owner (or the requester) may presign or cancel an order"
        }
        Call::MatchOrders { .. } => {
            "an order names an address without code (not an asset contract), or the sponsor's escrow does not cover the deal"
        }
        Call::Initialize { .. } => "PoCo checks: the task is not initialized yet and its index is inside the deal",
        Call::Contribute { .. } => {
            "PoCo checks: task ACTIVE, before the contribution deadline, no contribution yet from this worker, an enclave challenge on TEE deals, the scheduler's authorization and the enclave's signature, and an escrow covering the worker stake"
        }
        Call::Reveal { .. } => {
            "PoCo checks: task REVEALING, before the reveal deadline, this worker contributed the consensus hash, and the digest matches its result hash and seal"
        }
        Call::Reopen { .. } => {
            "PoCo checks: the workerpool owner sends it, task REVEALING, the reveal deadline passed, no reveal, before the final deadline"
        }
        Call::Finalize { .. } => {
            "PoCo checks: the workerpool owner sends it, task REVEALING, before the final deadline, every winner revealed (or the reveal deadline passed with one reveal)"
        }
        Call::ContributeAndFinalize { .. } => {
            "PoCo checks: task ACTIVE with no contribution, trust 1, before the contribution deadline, the scheduler's authorization and the enclave's signature"
        }
        Call::Claim { .. } => "PoCo checks: task ACTIVE or REVEALING and its final deadline passed",
    }
}

/// Gas limits for pipelined sends (no estimate possible when an earlier call of the same batch
/// changes the state the next one needs). Above PoCo 6.1.0's measured costs with a margin.
fn gas_for(call: &Call) -> u64 {
    match call {
        Call::Deposit { .. } | Call::Withdraw { .. } | Call::Transfer { .. } => 200_000,
        Call::MatchOrders { .. } => 1_500_000,
        Call::ContributeAndFinalize { .. } | Call::Finalize { .. } => 1_200_000,
        Call::Contribute { .. } => 800_000,
        Call::CreateApp { .. } | Call::CreateDataset { .. } | Call::CreateWorkerpool { .. } => 1_500_000,
        _ => 600_000,
    }
}

/// One `initializeArray` transaction for these `Call::Initialize`s (other calls are skipped).
pub fn initialize_array(d: &Deployment, calls: &[Call]) -> Outgoing {
    let (dealids, idxs): (Vec<alloy::primitives::B256>, Vec<U256>) = calls
        .iter()
        .filter_map(|c| match c {
            Call::Initialize { dealid, idx } => Some((*dealid, *idx)),
            _ => None,
        })
        .unzip();
    let n = dealids.len() as u64;
    Outgoing {
        to: Some(d.hub),
        data: IHub::initializeArrayCall { dealids, idxs }.abi_encode().into(),
        // PoCo 6.1.0: ~200 k per task inside an array, plus the transaction's base cost.
        gas: 60_000 + 260_000 * n,
        what: format!("initializeArray ({n} tasks)"),
    }
}

/// The transaction that performs `call` on PoCo, sent by `from`. `registry` is the registry that
/// holds the asset of an ownership transfer.
pub fn outgoing(d: &Deployment, from: Address, call: &Call, registry: Option<Address>) -> Result<Outgoing, String> {
    let hub = d.hub;
    let (to, data, what): (Address, Vec<u8>, &str) = match call {
        Call::Deposit { amount } => (
            d.rlc,
            IRlc::approveAndCallCall { spender: hub, amount: amount.0, extraData: Bytes::new() }.abi_encode(),
            "deposit (RLC approveAndCall)",
        ),
        Call::Withdraw { amount } => (hub, IHub::withdrawCall { amount: amount.0 }.abi_encode(), "withdraw"),
        Call::Transfer { to, amount } => {
            (hub, IHub::transferCall { to: *to, amount: amount.0 }.abi_encode(), "transfer")
        }
        Call::CreateApp { name, app_type, multiaddr, checksum, mrenclave } => (
            d.app_registry,
            IRegistry::createAppCall {
                owner: from,
                name: name.clone(),
                appType: app_type.clone(),
                multiaddr: Bytes::from(veil_core::cid::multiaddr_bytes(multiaddr)),
                checksum: *checksum,
                mrenclave: Bytes::from(mrenclave.clone().into_bytes()),
            }
            .abi_encode(),
            "createApp",
        ),
        Call::CreateDataset { name, multiaddr, checksum } => (
            d.dataset_registry,
            IRegistry::createDatasetCall {
                owner: from,
                name: name.clone(),
                multiaddr: Bytes::from(veil_core::cid::multiaddr_bytes(multiaddr)),
                checksum: *checksum,
            }
            .abi_encode(),
            "createDataset",
        ),
        Call::CreateWorkerpool { description } => (
            d.workerpool_registry,
            IRegistry::createWorkerpoolCall { owner: from, description: description.clone() }.abi_encode(),
            "createWorkerpool",
        ),
        Call::SetWorkerpoolPolicy { workerpool, worker_stake_ratio, scheduler_reward_ratio } => (
            *workerpool,
            IWorkerpool::changePolicyCall {
                workerStakeRatio: U256::from(*worker_stake_ratio),
                schedulerRewardRatio: U256::from(*scheduler_reward_ratio),
            }
            .abi_encode(),
            "changePolicy",
        ),
        Call::TransferOwnership { asset, to } => {
            let Some(registry) = registry else {
                return Err(format!("{asset} is not a registered app, dataset or workerpool"));
            };
            let token = U256::from_be_slice(asset.as_slice());
            (registry, IRegistry::transferFromCall { from, to: *to, tokenId: token }.abi_encode(), "transferFrom")
        }
        Call::CreateCategory { name, description, work_clock_time_ref } => (
            hub,
            IHub::createCategoryCall {
                name: name.clone(),
                description: description.clone(),
                workClockTimeRef: U256::from(*work_clock_time_ref),
            }
            .abi_encode(),
            "createCategory",
        ),
        Call::PresignOrder { order } => (hub, manage(order, SIGN), "presign order"),
        Call::CancelOrder { order } => (hub, manage(order, CLOSE), "cancel order"),
        Call::MatchOrders { app_order, dataset_order, workerpool_order, request_order } => {
            (hub, match_orders(app_order, dataset_order, workerpool_order, request_order), "matchOrders")
        }
        Call::Initialize { dealid, idx } => {
            (hub, IHub::initializeCall { dealid: *dealid, idx: *idx }.abi_encode(), "initialize")
        }
        Call::Contribute { taskid, result_hash, result_seal, enclave_challenge, enclave_sign, authorization_sign } => (
            hub,
            IHub::contributeCall {
                taskid: *taskid,
                resultHash: *result_hash,
                resultSeal: *result_seal,
                enclaveChallenge: *enclave_challenge,
                enclaveSign: sig(enclave_sign),
                authorizationSign: sig(&Some(*authorization_sign)),
            }
            .abi_encode(),
            "contribute",
        ),
        Call::Reveal { taskid, result_digest } => {
            (hub, IHub::revealCall { taskid: *taskid, resultDigest: *result_digest }.abi_encode(), "reveal")
        }
        Call::Reopen { taskid } => (hub, IHub::reopenCall { taskid: *taskid }.abi_encode(), "reopen"),
        Call::Finalize { taskid, results, results_callback } => (
            hub,
            IHub::finalizeCall { taskid: *taskid, results: results.clone(), resultsCallback: results_callback.clone() }
                .abi_encode(),
            "finalize",
        ),
        Call::ContributeAndFinalize {
            taskid,
            result_digest,
            results,
            results_callback,
            enclave_challenge,
            enclave_sign,
            authorization_sign,
        } => (
            hub,
            IHub::contributeAndFinalizeCall {
                taskid: *taskid,
                resultDigest: *result_digest,
                results: results.clone(),
                resultsCallback: results_callback.clone(),
                enclaveChallenge: *enclave_challenge,
                enclaveSign: sig(enclave_sign),
                authorizationSign: sig(&Some(*authorization_sign)),
            }
            .abi_encode(),
            "contributeAndFinalize",
        ),
        Call::Claim { taskid } => (hub, IHub::claimCall { taskid: *taskid }.abi_encode(), "claim"),
    };
    Ok(Outgoing { to: Some(to), data: data.into(), gas: gas_for(call), what: what.to_string() })
}

fn n(v: U256) -> Nrlc {
    Nrlc(v)
}

fn addr_of_token(id: U256) -> Address {
    Address::from_slice(&id.to_be_bytes::<32>()[12..])
}

/// PoCo's log as Veil's event; `sender` is the transaction's sender (presigned orders' signer).
/// Logs of other contracts (RLC's own transfers) and unknown topics give `None`.
pub fn event(d: &Deployment, sender: Address, log: &Log) -> Option<Event> {
    let topics = log.topics();
    let data = &log.data().data;
    let t0 = *topics.first()?;
    let at = log.address();
    if at == d.app_registry || at == d.dataset_registry || at == d.workerpool_registry {
        let e = IRegistry::Transfer::decode_raw_log(topics.iter().copied(), data).ok()?;
        let asset = addr_of_token(e.tokenId);
        return Some(if e.from == Address::ZERO {
            match at {
                a if a == d.app_registry => Event::AppCreated { app: asset, owner: e.to },
                a if a == d.dataset_registry => Event::DatasetCreated { dataset: asset, owner: e.to },
                _ => Event::WorkerpoolCreated { workerpool: asset, owner: e.to },
            }
        } else {
            Event::OwnershipTransferred { asset, from: e.from, to: e.to }
        });
    }
    if at != d.hub {
        if t0 == IWorkerpool::PolicyUpdate::SIGNATURE_HASH {
            let e = IWorkerpool::PolicyUpdate::decode_raw_log(topics.iter().copied(), data).ok()?;
            return Some(Event::WorkerpoolPolicyUpdate {
                workerpool: at,
                worker_stake_ratio: e.newWorkerStakeRatioPolicy.saturating_to(),
                scheduler_reward_ratio: e.newSchedulerRewardRatioPolicy.saturating_to(),
            });
        }
        return None;
    }
    use IHub::IHubEvents as H;
    Some(match H::decode_raw_log(topics, data).ok()? {
        H::Transfer(e) => {
            // PoCo moves locked RLC to and from the hub's own balance: the Lock, Unlock, Reward or
            // Seize event beside it says what happened.
            if e.from == d.hub || e.to == d.hub {
                return None;
            }
            match (e.from, e.to) {
                (Address::ZERO, to) => Event::Deposit { owner: to, amount: n(e.value) },
                (from, Address::ZERO) => Event::Withdraw { owner: from, amount: n(e.value) },
                (from, to) => Event::Transfer { from, to, amount: n(e.value) },
            }
        }
        H::Lock(e) => Event::Lock { owner: e.owner, amount: n(e.amount) },
        H::Unlock(e) => Event::Unlock { owner: e.owner, amount: n(e.amount) },
        H::Reward(e) => Event::Reward { owner: e.owner, amount: n(e.amount), taskid: e.r#ref },
        H::Seize(e) => Event::Seize { owner: e.owner, amount: n(e.amount), taskid: e.r#ref },
        H::CreateCategory(e) => Event::CategoryCreated {
            id: e.catid.saturating_to(),
            name: e.name,
            work_clock_time_ref: e.workClockTimeRef.saturating_to(),
        },
        H::SignedAppOrder(IHub::SignedAppOrder { hash })
        | H::SignedDatasetOrder(IHub::SignedDatasetOrder { hash })
        | H::SignedWorkerpoolOrder(IHub::SignedWorkerpoolOrder { hash })
        | H::SignedRequestOrder(IHub::SignedRequestOrder { hash }) => Event::OrderPresigned { hash, signer: sender },
        H::ClosedAppOrder(IHub::ClosedAppOrder { hash })
        | H::ClosedDatasetOrder(IHub::ClosedDatasetOrder { hash })
        | H::ClosedWorkerpoolOrder(IHub::ClosedWorkerpoolOrder { hash })
        | H::ClosedRequestOrder(IHub::ClosedRequestOrder { hash }) => Event::OrderCancelled { hash },
        H::OrdersMatched(e) => Event::OrdersMatched {
            dealid: e.dealid,
            app_hash: e.appHash,
            dataset_hash: e.datasetHash,
            workerpool_hash: e.workerpoolHash,
            request_hash: e.requestHash,
            volume: e.volume,
        },
        H::SchedulerNotice(e) => Event::SchedulerNotice { workerpool: e.workerpool, dealid: e.dealid },
        H::TaskInitialize(e) => Event::TaskInitialize { taskid: e.taskid, workerpool: e.workerpool },
        H::TaskContribute(e) => Event::TaskContribute { taskid: e.taskid, worker: e.worker, hash: e.hash },
        H::TaskConsensus(e) => Event::TaskConsensus { taskid: e.taskid, consensus: e.consensus },
        H::TaskReveal(e) => Event::TaskReveal { taskid: e.taskid, worker: e.worker, digest: e.digest },
        H::TaskReopen(e) => Event::TaskReopen { taskid: e.taskid },
        H::TaskFinalize(e) => Event::TaskFinalize { taskid: e.taskid, results: e.results },
        H::TaskClaimed(e) => Event::TaskClaimed { taskid: e.taskid },
        H::AccurateContribution(e) => Event::AccurateContribution { worker: e.worker, taskid: e.taskid },
        H::FaultyContribution(e) => Event::FaultyContribution { worker: e.worker, taskid: e.taskid },
    })
}
