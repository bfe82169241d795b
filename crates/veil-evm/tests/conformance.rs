//! Differential conformance: PoCo is the reference. Each scenario runs through `veil-core` and
//! through iExec's PoCo 6.1.0 on anvil (see `common`), and compares deal ids, task ids, statuses,
//! consensus values, result digests, and every account's balance and locked amount (the reserve
//! included) after the steps that matter.

mod common;

use alloy::primitives::{Address, B256, U256};
use common::*;
use veil_core::state::TaskStatus;
use veil_core::{Call, PrivateKey};
use veil_sdk::Ledger;

fn digest(n: u8) -> B256 {
    B256::repeat_byte(n)
}

/// Matches `o` as REQUESTER and initializes task 0; returns (dealid, taskid).
async fn deal_and_task(t: &mut Twin, o: &Orders) -> (B256, B256) {
    let dealid = t.ok(REQUESTER, sign(o, &t.domain(), REQUESTER)).await.dealid();
    t.ok(POOL, Call::Initialize { dealid, idx: U256::ZERO }).await;
    (dealid, task_id(dealid, 0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_1_standard_task() {
    let mut t = start().await;
    let w = world(&mut t).await;
    let o = orders(&w, 0x10, true);
    let (dealid, taskid) = deal_and_task(&mut t, &o).await;
    t.compare_all(&[dealid], &[taskid]).await;
    t.ok(WORKERS[0], contribute(WORKERS[0], taskid, digest(7))).await;
    t.compare_task(taskid).await;
    assert_eq!(t.core.tasks.get(&taskid).unwrap().status, TaskStatus::Revealing);
    t.ok(WORKERS[0], reveal(taskid, digest(7))).await;
    t.ok(POOL, finalize(taskid)).await;
    t.compare_all(&[dealid], &[taskid]).await;
    assert_eq!(t.core.tasks.get(&taskid).unwrap().status, TaskStatus::Completed);
    // Following the chain from its first block gives the task's whole story, in order.
    let mut names = vec![];
    let mut from = 0;
    loop {
        let blocks = t.evm.events(from).await.expect("events");
        let Some(last) = blocks.last() else { break };
        from = last.block + 1;
        for b in &blocks {
            assert!(b.timestamp > 0, "block {} has its time", b.block);
            names.extend(b.events.iter().map(|e| format!("{e:?}").split([' ', '{']).next().unwrap_or("").to_string()));
        }
    }
    let story: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| n.starts_with("Task") || *n == "OrdersMatched" || *n == "SchedulerNotice")
        .collect();
    assert_eq!(
        story,
        [
            "SchedulerNotice",
            "OrdersMatched",
            "TaskInitialize",
            "TaskContribute",
            "TaskConsensus",
            "TaskReveal",
            "TaskFinalize"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tee_contribute_and_finalize() {
    let mut t = start().await;
    let w = world(&mut t).await;
    let mut o = orders(&w, 0x20, true);
    let tee_tdx = B256::with_last_byte(0x09);
    o.app.tag = tee_tdx;
    o.pool.tag = tee_tdx;
    o.request.tag = tee_tdx;
    o.request.trust = U256::ZERO;
    let (dealid, taskid) = deal_and_task(&mut t, &o).await;
    let enclave = PrivateKey::from_seed("conformance enclave");
    let worker = addr(WORKERS[1]);
    let d = digest(9);
    let rh = veil_core::tx::result_hash(&taskid, &d);
    let rs = veil_core::tx::result_seal(&worker, &taskid, &d);
    let call = Call::ContributeAndFinalize {
        taskid,
        result_digest: d,
        results: b"{\"storage\":\"ipfs\"}".to_vec().into(),
        results_callback: Default::default(),
        enclave_challenge: enclave.address(),
        enclave_sign: Some(enclave.sign_message_hash(&veil_core::tx::enclave_message(&rh, &rs))),
        authorization_sign: authorization(&worker, &taskid, &enclave.address()),
    };
    // Without the enclave's signature both refuse.
    let mut unsigned = call.clone();
    if let Call::ContributeAndFinalize { enclave_sign, .. } = &mut unsigned {
        *enclave_sign = Some(PrivateKey::from_seed("not the enclave").sign_message_hash(&rh));
    }
    t.refused(WORKERS[1], unsigned).await;
    t.ok(WORKERS[1], call).await;
    t.compare_all(&[dealid], &[taskid]).await;
    assert_eq!(t.core.tasks.get(&taskid).unwrap().status, TaskStatus::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_3_with_a_liar_slashed() {
    let mut t = start().await;
    let w = world(&mut t).await;
    let mut o = orders(&w, 0x30, false);
    o.request.trust = U256::from(3);
    let (dealid, taskid) = deal_and_task(&mut t, &o).await;
    let [a, liar, c, d] = WORKERS;
    t.ok(a, contribute(a, taskid, digest(1))).await;
    t.ok(liar, contribute(liar, taskid, digest(6))).await;
    t.ok(c, contribute(c, taskid, digest(1))).await;
    t.compare_all(&[dealid], &[taskid]).await;
    t.ok(d, contribute(d, taskid, digest(1))).await;
    assert_eq!(t.core.tasks.get(&taskid).unwrap().status, TaskStatus::Revealing);
    // The liar cannot reveal: its hash is not the consensus.
    t.refused(liar, reveal(taskid, digest(6))).await;
    for x in [a, c, d] {
        t.ok(x, reveal(taskid, digest(1))).await;
    }
    t.compare_task(taskid).await;
    t.ok(POOL, finalize(taskid)).await;
    t.compare_all(&[dealid], &[taskid]).await;
    let liar_acc = t.core.account(&addr(liar));
    let honest = t.core.account(&addr(a));
    assert!(liar_acc.balance < honest.balance, "the liar lost its stake");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_reveal_then_reopen_then_another_worker_completes() {
    let mut t = start().await;
    let w = world(&mut t).await;
    let o = orders(&w, 0x40, false);
    let (dealid, taskid) = deal_and_task(&mut t, &o).await;
    t.ok(WORKERS[0], contribute(WORKERS[0], taskid, digest(3))).await;
    // Reopen is refused before the reveal deadline on both.
    t.refused(POOL, Call::Reopen { taskid }).await;
    t.increase_time(2 * 300 + 5).await;
    t.ok(POOL, Call::Reopen { taskid }).await;
    t.compare_all(&[dealid], &[taskid]).await;
    assert_eq!(t.core.tasks.get(&taskid).unwrap().status, TaskStatus::Active);
    t.ok(WORKERS[1], contribute(WORKERS[1], taskid, digest(4))).await;
    t.ok(WORKERS[1], reveal(taskid, digest(4))).await;
    t.ok(POOL, finalize(taskid)).await;
    t.compare_all(&[dealid], &[taskid]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_after_the_final_deadline() {
    let mut t = start().await;
    let w = world(&mut t).await;
    let mut o = orders(&w, 0x50, true);
    o.request.volume = U256::from(2);
    let dealid = t.ok(REQUESTER, sign(&o, &t.domain(), REQUESTER)).await.dealid();
    t.ok(POOL, Call::Initialize { dealid, idx: U256::ZERO }).await;
    t.ok(POOL, Call::Initialize { dealid, idx: U256::from(1) }).await;
    let (t0, t1) = (task_id(dealid, 0), task_id(dealid, 1));
    t.ok(WORKERS[0], contribute(WORKERS[0], t1, digest(5))).await;
    t.refused(OTHER, Call::Claim { taskid: t0 }).await;
    t.increase_time(10 * 300 + 5).await;
    t.ok(OTHER, Call::Claim { taskid: t0 }).await;
    t.ok(OTHER, Call::Claim { taskid: t1 }).await;
    t.compare_all(&[dealid], &[t0, t1]).await;
    assert_eq!(t.core.tasks.get(&t0).unwrap().status, TaskStatus::Failed);
    // The reserve now holds the pool's stakes; a later success pays a bonus out of it.
    let o2 = orders(&w, 0x51, false);
    let (d2, t2) = deal_and_task(&mut t, &o2).await;
    t.ok(WORKERS[2], contribute(WORKERS[2], t2, digest(8))).await;
    t.ok(WORKERS[2], reveal(t2, digest(8))).await;
    t.ok(POOL, finalize(t2)).await;
    t.compare_all(&[dealid, d2], &[t0, t1, t2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataset_with_restrictions() {
    let mut t = start().await;
    let w = world(&mut t).await;
    let mut o = orders(&w, 0x60, true);
    let ds = o.dataset.as_mut().unwrap();
    ds.apprestrict = w.app;
    ds.workerpoolrestrict = w.pool;
    ds.requesterrestrict = addr(REQUESTER);
    ds.volume = U256::from(1);
    let (dealid, taskid) = deal_and_task(&mut t, &o).await;
    t.compare_all(&[dealid], &[taskid]).await;
    // Another requester is refused the dataset (0x18) on both.
    let mut other = orders(&w, 0x61, true);
    other.dataset = o.dataset.clone();
    other.request.requester = addr(OTHER);
    other.request.beneficiary = addr(OTHER);
    let (core, poco) = t.refused(OTHER, sign(&other, &t.domain(), OTHER)).await;
    assert_eq!(code(&core), "0x18", "{core}");
    assert_eq!(code(&poco), "0x18", "{poco}");
    // The dataset order's single use is consumed: the same requester is refused too (0x60).
    let mut again = orders(&w, 0x62, true);
    again.dataset = o.dataset.clone();
    let (core, poco) = t.refused(REQUESTER, sign(&again, &t.domain(), REQUESTER)).await;
    assert_eq!((code(&core), code(&poco)), ("0x60".to_string(), "0x60".to_string()), "{core} / {poco}");
    t.compare_accounts().await;
}

/// iExec's code (`0x..`) in an error text: Veil's "0x18: …", PoCo's "iExecV5-matchOrders-0x18".
fn code(text: &str) -> String {
    let at = text
        .find("matchOrders-0x")
        .map(|i| i + 12)
        .or_else(|| text.find(": 0x").map(|i| i + 2))
        .or_else(|| text.find("0x"));
    at.map(|i| text[i..].chars().take(4).collect()).unwrap_or_default()
}

type Mutation = fn(&mut Orders, &World);
type Forgery = fn(&mut Call, &PrivateKey, &veil_core::Domain);

/// One failing matchOrders per check family: the code PoCo reverts with equals Veil's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failing_match_orders_check_gives_pocos_code() {
    let mut t = start().await;
    let w = world(&mut t).await;
    let stranger = Address::repeat_byte(0x77);
    let cases: Vec<(&str, Mutation)> = vec![
        ("0x00", |o, _| o.request.category = U256::from(1)),
        ("0x01", |o, _| {
            o.request.category = U256::from(99);
            o.pool.category = U256::from(99);
        }),
        ("0x02", |o, _| o.request.trust = U256::from(11)),
        ("0x03", |o, _| o.request.appmaxprice = U256::from(PRICE_APP - 1)),
        ("0x04", |o, _| o.request.datasetmaxprice = U256::from(PRICE_DATASET - 1)),
        ("0x05", |o, _| o.request.workerpoolmaxprice = U256::from(PRICE_POOL - 1)),
        ("0x06", |o, _| o.request.tag = B256::left_padding_from(&[1, 0])),
        ("0x07", |o, _| {
            o.request.tag = B256::with_last_byte(0x01);
            o.pool.tag = B256::with_last_byte(0x01);
        }),
        ("0x10", |o, _| o.request.app = Address::repeat_byte(0x77)),
        ("0x11", |o, _| o.request.dataset = Address::repeat_byte(0x77)),
        ("0x12", |o, _| o.request.workerpool = Address::repeat_byte(0x77)),
        ("0x13", |o, _| o.app.datasetrestrict = Address::repeat_byte(0x77)),
        ("0x14", |o, _| o.app.workerpoolrestrict = Address::repeat_byte(0x77)),
        ("0x15", |o, _| o.app.requesterrestrict = Address::repeat_byte(0x77)),
        ("0x16", |o, _| o.dataset.as_mut().unwrap().apprestrict = Address::repeat_byte(0x77)),
        ("0x17", |o, _| o.dataset.as_mut().unwrap().workerpoolrestrict = Address::repeat_byte(0x77)),
        ("0x18", |o, _| o.dataset.as_mut().unwrap().requesterrestrict = Address::repeat_byte(0x77)),
        ("0x19", |o, _| o.pool.apprestrict = Address::repeat_byte(0x77)),
        ("0x1a", |o, _| o.pool.datasetrestrict = Address::repeat_byte(0x77)),
        ("0x1b", |o, _| o.pool.requesterrestrict = Address::repeat_byte(0x77)),
        // PoCo asks the asset contract for its owner before checking the registry, so an
        // unregistered *contract* (another registry's asset) is what reaches 0x20/0x30/0x40.
        ("0x20", |o, w| {
            o.app.app = w.dataset;
            o.request.app = w.dataset;
        }),
        ("0x30", |o, w| {
            o.dataset.as_mut().unwrap().dataset = w.app;
            o.request.dataset = w.app;
        }),
        ("0x40", |o, w| o.pool.workerpool = w.app),
    ];
    // An address with no code as the app: both refuse; PoCo's call to its owner() reverts
    // without a reason before the registry check, Veil says 0x20.
    let mut o = orders(&w, 0xb0, true);
    o.app.app = stranger;
    o.request.app = stranger;
    let (core, poco) = t.refused(REQUESTER, sign(&o, &t.domain(), REQUESTER)).await;
    assert_eq!(code(&core), "0x20", "{core}");
    assert!(poco.contains("without a reason"), "{poco}");
    for (i, (expected, mutate)) in cases.into_iter().enumerate() {
        let mut o = orders(&w, 0x80 + i as u8, true);
        mutate(&mut o, &w);
        let (core, poco) = t.refused(REQUESTER, sign(&o, &t.domain(), REQUESTER)).await;
        assert_eq!(
            (code(&core), code(&poco)),
            (expected.to_string(), expected.to_string()),
            "\n core: {core}\n PoCo: {poco}"
        );
    }
    // Signatures: each order signed by someone else (0x21, 0x31, 0x41, 0x50).
    let domain = t.domain();
    let wrong = key(OTHER);
    let forged: [(&str, Forgery); 4] = [
        ("0x21", |c, k, d| {
            if let Call::MatchOrders { app_order, .. } = c {
                *app_order = veil_core::Signed::new(app_order.order.clone(), k, d)
            }
        }),
        ("0x31", |c, k, d| {
            if let Call::MatchOrders { dataset_order: Some(x), .. } = c {
                *x = veil_core::Signed::new(x.order.clone(), k, d)
            }
        }),
        ("0x41", |c, k, d| {
            if let Call::MatchOrders { workerpool_order, .. } = c {
                *workerpool_order = veil_core::Signed::new(workerpool_order.order.clone(), k, d)
            }
        }),
        ("0x50", |c, k, d| {
            if let Call::MatchOrders { request_order, .. } = c {
                *request_order = veil_core::Signed::new(request_order.order.clone(), k, d)
            }
        }),
    ];
    for (i, (expected, forge)) in forged.into_iter().enumerate() {
        let o = orders(&w, 0xc0 + i as u8, true);
        let mut call = sign(&o, &domain, REQUESTER);
        forge(&mut call, &wrong, &domain);
        let (core, poco) = t.refused(REQUESTER, call).await;
        assert_eq!(
            (code(&core), code(&poco)),
            (expected.to_string(), expected.to_string()),
            "\n core: {core}\n PoCo: {poco}"
        );
    }
    // Volume: a request matched once cannot be matched again (0x60).
    let o = orders(&w, 0xd0, true);
    t.ok(REQUESTER, sign(&o, &domain, REQUESTER)).await;
    let (core, poco) = t.refused(REQUESTER, sign(&o, &domain, REQUESTER)).await;
    assert_eq!((code(&core), code(&poco)), ("0x60".to_string(), "0x60".to_string()), "\n core: {core}\n PoCo: {poco}");
    t.compare_accounts().await;
}

/// Escrow moves, presigned and cancelled orders, a workerpool policy, an ownership transfer, and
/// the task calls PoCo refuses (double contribution, a wrong reveal, early finalize).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escrow_presign_cancel_policy_and_ownership() {
    let mut t = start().await;
    let w = world(&mut t).await;
    let rlc = |n: u64| veil_core::Nrlc(U256::from(n) * U256::from(1_000_000_000u64));
    t.ok(OTHER, Call::Withdraw { amount: rlc(10) }).await;
    t.refused(OTHER, Call::Withdraw { amount: rlc(1_000_000) }).await;
    t.ok(OTHER, Call::Transfer { to: addr(REQUESTER), amount: rlc(5) }).await;
    t.refused(DEV, Call::Deposit { amount: rlc(10_000_000) }).await;
    t.ok(POOL, Call::SetWorkerpoolPolicy { workerpool: w.pool, worker_stake_ratio: 50, scheduler_reward_ratio: 20 })
        .await;
    t.refused(
        DEV,
        Call::SetWorkerpoolPolicy { workerpool: w.pool, worker_stake_ratio: 10, scheduler_reward_ratio: 10 },
    )
    .await;
    t.compare_accounts().await;

    // A presigned app order needs no signature; a cancelled workerpool order has no volume left.
    let o = orders(&w, 0xe0, false);
    t.ok(DEV, Call::PresignOrder { order: veil_core::tx::AnyOrder::App(o.app.clone()) }).await;
    let mut call = sign(&o, &t.domain(), REQUESTER);
    if let Call::MatchOrders { app_order, .. } = &mut call {
        app_order.sign = None;
    }
    let dealid = t.ok(REQUESTER, call).await.dealid();
    let cancelled = orders(&w, 0xe1, false);
    t.ok(POOL, Call::CancelOrder { order: veil_core::tx::AnyOrder::Workerpool(cancelled.pool.clone()) }).await;
    let (core, poco) = t.refused(REQUESTER, sign(&cancelled, &t.domain(), REQUESTER)).await;
    assert_eq!((code(&core), code(&poco)), ("0x60".to_string(), "0x60".to_string()), "{core} / {poco}");

    // The policy shows in the deal (worker stake, scheduler ratio) and in the rewards.
    t.ok(POOL, Call::Initialize { dealid, idx: U256::ZERO }).await;
    let taskid = task_id(dealid, 0);
    t.refused(POOL, Call::Initialize { dealid, idx: U256::ZERO }).await;
    t.refused(POOL, Call::Initialize { dealid, idx: U256::from(1) }).await;
    t.ok(WORKERS[0], contribute(WORKERS[0], taskid, digest(2))).await;
    t.refused(WORKERS[0], contribute(WORKERS[0], taskid, digest(2))).await;
    t.refused(POOL, finalize(taskid)).await;
    t.refused(WORKERS[0], reveal(taskid, digest(3))).await;
    t.refused(WORKERS[1], reveal(taskid, digest(2))).await;
    t.ok(WORKERS[0], reveal(taskid, digest(2))).await;
    t.refused(WORKERS[0], finalize(taskid)).await;
    t.ok(POOL, finalize(taskid)).await;
    t.compare_all(&[dealid], &[taskid]).await;

    // The app changes hands: the old owner's orders no longer verify, the new owner's do.
    t.ok(DEV, Call::TransferOwnership { asset: w.app, to: addr(OTHER) }).await;
    let o = orders(&w, 0xe2, false);
    let (core, poco) = t.refused(REQUESTER, sign(&o, &t.domain(), REQUESTER)).await;
    assert_eq!((code(&core), code(&poco)), ("0x21".to_string(), "0x21".to_string()), "{core} / {poco}");
    let mut call = sign(&o, &t.domain(), REQUESTER);
    if let Call::MatchOrders { app_order, .. } = &mut call {
        *app_order = veil_core::Signed::new(app_order.order.clone(), &key(OTHER), &t.domain());
    }
    let d2 = t.ok(REQUESTER, call).await.dealid();
    t.compare_all(&[dealid, d2], &[taskid]).await;
}
