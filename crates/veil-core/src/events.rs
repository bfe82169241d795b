//! What a transaction did, for receipts and the event stream.

use crate::amount::Nrlc;
use alloy_primitives::{Address, B256, U256};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "PascalCase")]
pub enum Event {
    Deposit {
        owner: Address,
        amount: Nrlc,
    },
    Withdraw {
        owner: Address,
        amount: Nrlc,
    },
    Transfer {
        from: Address,
        to: Address,
        amount: Nrlc,
    },
    Lock {
        owner: Address,
        amount: Nrlc,
    },
    Unlock {
        owner: Address,
        amount: Nrlc,
    },
    Seize {
        owner: Address,
        amount: Nrlc,
        taskid: B256,
    },
    Reward {
        owner: Address,
        amount: Nrlc,
        taskid: B256,
    },
    AppCreated {
        app: Address,
        owner: Address,
    },
    DatasetCreated {
        dataset: Address,
        owner: Address,
    },
    WorkerpoolCreated {
        workerpool: Address,
        owner: Address,
    },
    WorkerpoolPolicyUpdate {
        workerpool: Address,
        worker_stake_ratio: u64,
        scheduler_reward_ratio: u64,
    },
    OwnershipTransferred {
        asset: Address,
        from: Address,
        to: Address,
    },
    CategoryCreated {
        id: u64,
        name: String,
        work_clock_time_ref: u64,
    },
    OrderPresigned {
        hash: B256,
        signer: Address,
    },
    OrderCancelled {
        hash: B256,
    },
    OrdersMatched {
        dealid: B256,
        app_hash: B256,
        dataset_hash: B256,
        workerpool_hash: B256,
        request_hash: B256,
        volume: U256,
    },
    SchedulerNotice {
        workerpool: Address,
        dealid: B256,
    },
    TaskInitialize {
        taskid: B256,
        workerpool: Address,
    },
    TaskContribute {
        taskid: B256,
        worker: Address,
        hash: B256,
    },
    TaskConsensus {
        taskid: B256,
        consensus: B256,
    },
    TaskReveal {
        taskid: B256,
        worker: Address,
        digest: B256,
    },
    TaskReopen {
        taskid: B256,
    },
    TaskFinalize {
        taskid: B256,
        results: alloy_primitives::Bytes,
    },
    TaskClaimed {
        taskid: B256,
    },
    AccurateContribution {
        worker: Address,
        taskid: B256,
    },
    FaultyContribution {
        worker: Address,
        taskid: B256,
    },
}
