//! Property: random scenario sequences (deals with random prices, trust, volume and datasets;
//! contributions honest or not, reveals, finalizes, reopens, claims, time jumps, escrow moves) give
//! the same accept/refuse answer and the same events at every step on `veil-core` and on PoCo, and the same balances,
//! locked amounts, scores, deals and tasks at the end.

mod common;

use alloy::primitives::{B256, U256};
use common::*;
use proptest::prelude::*;
use veil_core::{Call, Nrlc};

#[derive(Debug, Clone)]
enum Op {
    Deal { dataset: bool, trust: u64, volume: u64, app_price: u64, pool_price: u64 },
    Contribute { task: usize, worker: usize, honest: bool },
    Reveal { task: usize, worker: usize },
    Finalize { task: usize },
    Reopen { task: usize },
    Claim { task: usize },
    // Jumps chosen so that no sum of them lands within seconds of a deadline (600, 2100, 3000 s).
    Time { seconds: u64 },
    Escrow { who: usize, withdraw: bool, rlc: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (any::<bool>(), 0..4u64, 1..3u64, 0..5_000u64, 1..3_000_000_000u64)
            .prop_map(|(dataset, trust, volume, app_price, pool_price)| Op::Deal { dataset, trust, volume, app_price, pool_price }),
        4 => (0..6usize, 0..4usize, prop::bool::weighted(0.8)).prop_map(|(task, worker, honest)| Op::Contribute { task, worker, honest }),
        3 => (0..6usize, 0..4usize).prop_map(|(task, worker)| Op::Reveal { task, worker }),
        2 => (0..6usize).prop_map(|task| Op::Finalize { task }),
        1 => (0..6usize).prop_map(|task| Op::Reopen { task }),
        1 => (0..6usize).prop_map(|task| Op::Claim { task }),
        1 => prop_oneof![Just(977u64), Just(2311u64)].prop_map(|seconds| Op::Time { seconds }),
        1 => (0..10usize, any::<bool>(), 1..50u64).prop_map(|(who, withdraw, rlc)| Op::Escrow { who, withdraw, rlc }),
    ]
}

const HONEST: u8 = 0x5a;

async fn run(ops: Vec<Op>) {
    let mut t = start().await;
    let w = world(&mut t).await;
    let mut deals = Vec::new();
    let mut tasks: Vec<B256> = Vec::new();
    for (i, op) in ops.into_iter().enumerate() {
        let pick = |n: usize| tasks.get(n % tasks.len().max(1)).copied();
        let (who, call) = match op {
            Op::Deal { dataset, trust, volume, app_price, pool_price } => {
                let mut o = orders(&w, i as u8, dataset);
                o.app.appprice = U256::from(app_price);
                o.request.appmaxprice = U256::from(app_price);
                o.pool.workerpoolprice = U256::from(pool_price);
                o.request.workerpoolmaxprice = U256::from(pool_price);
                o.request.trust = U256::from(trust);
                o.request.volume = U256::from(volume);
                (REQUESTER, sign(&o, &t.domain(), REQUESTER))
            }
            Op::Contribute { task, worker, honest } => {
                let Some(taskid) = pick(task) else { continue };
                let digest = B256::repeat_byte(if honest { HONEST } else { 0x66 + worker as u8 });
                (WORKERS[worker], contribute(WORKERS[worker], taskid, digest))
            }
            Op::Reveal { task, worker } => {
                let Some(taskid) = pick(task) else { continue };
                (WORKERS[worker], reveal(taskid, B256::repeat_byte(HONEST)))
            }
            Op::Finalize { task } => {
                let Some(taskid) = pick(task) else { continue };
                (POOL, finalize(taskid))
            }
            Op::Reopen { task } => {
                let Some(taskid) = pick(task) else { continue };
                (POOL, Call::Reopen { taskid })
            }
            Op::Claim { task } => {
                let Some(taskid) = pick(task) else { continue };
                (OTHER, Call::Claim { taskid })
            }
            Op::Time { seconds } => {
                t.increase_time(seconds).await;
                continue;
            }
            Op::Escrow { who, withdraw, rlc } => {
                let amount = Nrlc(U256::from(rlc) * U256::from(1_000_000_000u64));
                (who, if withdraw { Call::Withdraw { amount } } else { Call::Deposit { amount } })
            }
        };
        let matching = matches!(call, Call::MatchOrders { .. });
        let b = t.step(who, call).await;
        assert_eq!(b.core.is_ok(), b.evm.is_ok(), "core and PoCo disagree on step {i}:\n{}", t.log.join("\n"));
        t.compare_events(&b);
        if matching && b.core.is_ok() {
            let dealid = b.dealid();
            let deal = t.core.deals.get(&dealid).cloned().expect("deal");
            for idx in 0..deal.bot_size.saturating_to::<u64>() {
                let idx = deal.bot_first.saturating_to::<u64>() + idx;
                t.ok(POOL, Call::Initialize { dealid, idx: U256::from(idx) }).await;
                tasks.push(task_id(dealid, idx));
            }
            deals.push(dealid);
        }
    }
    t.compare_all(&deals, &tasks).await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(8), max_shrink_iters: 20, ..ProptestConfig::default() })]
    #[test]
    fn random_scenarios_agree_with_poco(ops in prop::collection::vec(op(), 5..30)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        rt.block_on(run(ops));
    }
}
