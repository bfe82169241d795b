//! Whole task lifecycles with the exact money of DESIGN.md §3.4.

mod common;
use common::World;
use veil_core::state::{ContributionStatus, KITTY, TaskStatus};
use veil_core::*;

const POOL_PRICE: u64 = 1_000_000_000;
const STAKE: u64 = 300_000_000;

fn n(x: u64) -> Nrlc {
    Nrlc::new(x)
}

fn digest(x: u8) -> B256 {
    B256::repeat_byte(x)
}

fn task_status(w: &World, t: &B256) -> TaskStatus {
    w.state.tasks.get(t).unwrap().status
}

/// Balances of every party, to compare before and after.
fn balances(w: &World) -> Vec<(Nrlc, Nrlc)> {
    let mut v =
        vec![w.balance(&w.app_owner), w.balance(&w.dataset_owner), w.balance(&w.scheduler), w.balance(&w.requester)];
    v.extend(w.workers.iter().map(|k| w.balance(k)));
    v
}

fn plus(a: Nrlc, b: u64) -> Nrlc {
    a.checked_add(n(b)).unwrap()
}

fn minus(a: Nrlc, b: u64) -> Nrlc {
    a.checked_sub(n(b)).unwrap()
}

#[test]
fn trust_1_single_worker_contribute_reveal_finalize() {
    let mut w = World::new();
    let total = w.state.total_rlc().unwrap();
    let o = w.orders();
    let before = balances(&w);
    let dealid = w.deal(&o);
    let t = w.init_task(dealid, 0);
    let worker = w.workers[0].clone();
    w.ok(&worker, w.contribute_call(&worker, t, digest(7)));
    assert_eq!(task_status(&w, &t), TaskStatus::Revealing);
    assert_eq!(w.balance(&worker).1, n(STAKE));
    w.ok(&worker, Call::Reveal { taskid: t, result_digest: digest(7) });
    let sched = w.scheduler.clone();
    w.ok(
        &sched,
        Call::Finalize { taskid: t, results: Bytes::from_static(b"ipfs://result"), results_callback: Bytes::new() },
    );
    assert_eq!(task_status(&w, &t), TaskStatus::Completed);
    let after = balances(&w);
    assert_eq!(after[0], (plus(before[0].0, 3), Nrlc::ZERO), "app owner paid its price");
    assert_eq!(after[1], (plus(before[1].0, 2), Nrlc::ZERO), "dataset owner paid its price");
    // workers reward = 99 % of the pool price; the scheduler keeps 1 %.
    assert_eq!(after[4], (plus(before[4].0, 990_000_000), Nrlc::ZERO), "worker");
    assert_eq!(after[2], (plus(before[2].0, 10_000_000), Nrlc::ZERO), "scheduler");
    assert_eq!(after[3], (minus(before[3].0, 3 + 2 + POOL_PRICE), Nrlc::ZERO), "requester");
    assert_eq!(w.state.account(&worker.address()).score, 0, "a lone contributor's score does not move");
    assert_eq!(w.state.total_rlc().unwrap(), total);
    assert_eq!(w.state.tasks.get(&t).unwrap().result_digest, digest(7));
}

fn event_names(events: &[veil_core::Event]) -> Vec<String> {
    events.iter().map(|e| format!("{e:?}").split([' ', '{']).next().unwrap_or_default().to_string()).collect()
}

#[test]
fn match_orders_events_come_in_pocos_order() {
    let mut w = World::new();
    let o = w.orders();
    let call = w.match_call(&o);
    let events = w.ok(&w.requester.clone(), call);
    assert_eq!(event_names(&events), ["Lock", "Lock", "SchedulerNotice", "OrdersMatched"]);
}

#[test]
fn trust_1_contribute_and_finalize() {
    let mut w = World::new();
    let o = w.orders();
    let before = balances(&w);
    let dealid = w.deal(&o);
    let t = w.init_task(dealid, 0);
    let worker = w.workers[0].clone();
    let auth = w.authorization(&worker.address(), &t, &Address::ZERO);
    let events = w.ok(
        &worker,
        Call::ContributeAndFinalize {
            taskid: t,
            result_digest: digest(9),
            results: Bytes::new(),
            results_callback: Bytes::new(),
            enclave_challenge: Address::ZERO,
            enclave_sign: None,
            authorization_sign: auth,
        },
    );
    assert_eq!(task_status(&w, &t), TaskStatus::Completed);
    // PoCo's order (checked against PoCo 6.1.0 by veil-evm's conformance tests): payments, then
    // the task's contribute, consensus, reveal and finalize events.
    assert_eq!(
        event_names(&events),
        [
            "Seize",
            "Reward",
            "Reward",
            "Unlock",
            "Reward",
            "Reward",
            "TaskContribute",
            "TaskConsensus",
            "TaskReveal",
            "TaskFinalize"
        ]
    );
    let after = balances(&w);
    assert_eq!(after[4].0, plus(before[4].0, 990_000_000));
    assert_eq!(after[2], (plus(before[2].0, 10_000_000), Nrlc::ZERO));
    assert_eq!(after[3], (minus(before[3].0, 3 + 2 + POOL_PRICE), Nrlc::ZERO));
}

#[test]
fn trust_3_with_one_dishonest_worker() {
    let mut w = World::new();
    let total = w.state.total_rlc().unwrap();
    let mut o = w.orders();
    o.request.trust = U256::from(3);
    let before = balances(&w);
    let dealid = w.deal(&o);
    let t = w.init_task(dealid, 0);
    let ws = w.workers.clone();
    // honest, liar, honest, honest: weights 2 each; consensus needs group·3 > total·2.
    for (i, d) in [(0, 1u8), (1, 66), (2, 1), (3, 1)] {
        assert_eq!(task_status(&w, &t), TaskStatus::Active, "no consensus before worker {i}");
        w.ok(&ws[i], w.contribute_call(&ws[i], t, digest(d)));
    }
    assert_eq!(task_status(&w, &t), TaskStatus::Revealing);
    assert_eq!(w.state.tasks.get(&t).unwrap().winner_counter, 3);
    // The liar cannot reveal.
    let err = w.send(&ws[1], Call::Reveal { taskid: t, result_digest: digest(66) }).unwrap_err();
    assert!(matches!(err, CoreError::Task(TaskError::NotAWinner(_))), "{err}");
    for i in [0, 2, 3] {
        w.ok(&ws[i], Call::Reveal { taskid: t, result_digest: digest(1) });
    }
    let sched = w.scheduler.clone();
    w.ok(&sched, Call::Finalize { taskid: t, results: Bytes::new(), results_callback: Bytes::new() });
    // total reward = pool price + the liar's stake; 99 % split over three weights of 1.
    let total_reward = POOL_PRICE + STAKE;
    let each = total_reward * 99 / 100 / 3;
    let after = balances(&w);
    for i in [0, 2, 3] {
        assert_eq!(after[4 + i], (plus(before[4 + i].0, each), Nrlc::ZERO), "honest worker {i}");
        assert_eq!(w.state.account(&ws[i].address()).score, 1, "honest worker {i} score");
    }
    assert_eq!(after[5], (minus(before[5].0, STAKE), Nrlc::ZERO), "liar loses its stake");
    assert_eq!(w.state.account(&ws[1].address()).score, 0);
    assert_eq!(after[2], (plus(before[2].0, total_reward - 3 * each), Nrlc::ZERO), "scheduler keeps the rest");
    assert_eq!(w.state.total_rlc().unwrap(), total, "RLC conserved");
}

#[test]
fn no_reveal_then_reopen() {
    let mut w = World::new();
    let o = w.orders();
    let dealid = w.deal(&o);
    let t = w.init_task(dealid, 0);
    let ws = w.workers.clone();
    let sched = w.scheduler.clone();
    w.ok(&ws[0], w.contribute_call(&ws[0], t, digest(1)));
    let err = w.send(&sched, Call::Reopen { taskid: t }).unwrap_err();
    assert!(matches!(err, CoreError::Task(TaskError::RevealNotOver { .. })), "{err}");
    w.now += 2 * 300; // the reveal deadline of category XS
    let err = w.send(&ws[0], Call::Reopen { taskid: t }).unwrap_err();
    assert!(matches!(err, CoreError::NotOwner { .. }), "only the pool owner reopens: {err}");
    w.ok(&sched, Call::Reopen { taskid: t });
    let task = w.state.tasks.get(&t).unwrap();
    assert_eq!(task.status, TaskStatus::Active);
    assert_eq!(task.contributions[&ws[0].address()].status, ContributionStatus::Rejected);
    // The silent worker may not try again; another one finishes the task.
    assert!(w.send(&ws[0], w.contribute_call(&ws[0], t, digest(1))).is_err());
    let (w1_before, _) = w.balance(&ws[1]);
    w.ok(&ws[1], w.contribute_call(&ws[1], t, digest(2)));
    w.ok(&ws[1], Call::Reveal { taskid: t, result_digest: digest(2) });
    w.ok(&sched, Call::Finalize { taskid: t, results: Bytes::new(), results_callback: Bytes::new() });
    assert_eq!(w.balance(&ws[0]).1, Nrlc::ZERO, "the silent worker's stake is seized");
    let each = (POOL_PRICE + STAKE) * 99 / 100;
    assert_eq!(w.balance(&ws[1]).0, plus(w1_before, each));
}

#[test]
fn claim_after_final_deadline_then_reserve_bonus() {
    let mut w = World::new();
    let total = w.state.total_rlc().unwrap();
    let mut o = w.orders();
    o.request.volume = U256::from(2);
    let before = balances(&w);
    let dealid = w.deal(&o);
    let t = w.init_task(dealid, 0);
    let ws = w.workers.clone();
    w.ok(&ws[0], w.contribute_call(&ws[0], t, digest(1)));
    let err = w.send(&w.requester.clone(), Call::Claim { taskid: t }).unwrap_err();
    assert!(matches!(err, CoreError::Task(TaskError::NotExpired { .. })), "{err}");
    w.now += 10 * 300;
    w.ok(&w.requester.clone(), Call::Claim { taskid: t });
    assert_eq!(task_status(&w, &t), TaskStatus::Failed);
    let after = balances(&w);
    let price = 3 + 2 + POOL_PRICE;
    // Requester: one task refunded, the other still locked.
    assert_eq!(after[3], (minus(before[3].0, price), n(price)));
    // Pool owner: one stake seized into the reserve, the other still locked.
    assert_eq!(after[2], (minus(before[2].0, 2 * STAKE), n(STAKE)));
    assert_eq!(w.state.account(&KITTY).locked, n(STAKE));
    assert_eq!(after[4], (before[4].0, Nrlc::ZERO), "contributor's stake unlocked");
    assert_eq!(w.state.total_rlc().unwrap(), total);

    // The next successful task of any pool takes min(max(10 %, 1 RLC), reserve) = the whole reserve here.
    let t1 = w.init_task(dealid, 1);
    let err = w.send(&ws[0], w.contribute_call(&ws[0], t1, digest(1))).unwrap_err();
    assert!(matches!(err, CoreError::Task(TaskError::ContributionDeadline { .. })), "{err}");
    let dealid2 = {
        let mut o2 = w.orders();
        o2.request.salt = B256::repeat_byte(0x55);
        w.deal(&o2)
    };
    let t2 = w.init_task(dealid2, 0);
    let (sched_before, _) = w.balance(&w.scheduler);
    w.ok(&ws[0], w.contribute_call(&ws[0], t2, digest(1)));
    w.ok(&ws[0], Call::Reveal { taskid: t2, result_digest: digest(1) });
    w.ok(&w.scheduler.clone(), Call::Finalize { taskid: t2, results: Bytes::new(), results_callback: Bytes::new() });
    assert_eq!(w.state.account(&KITTY).locked, Nrlc::ZERO);
    // stake back (STAKE) + scheduler share (1 %) + the reserve (STAKE)
    assert_eq!(w.balance(&w.scheduler).0, plus(sched_before, STAKE + 10_000_000 + STAKE));
    assert_eq!(w.state.total_rlc().unwrap(), total);
}

#[test]
fn worker_proofs_are_checked() {
    let mut w = World::new();
    let mut o = w.orders();
    o.app.tag = tag::parse("0x3").unwrap();
    o.pool.tag = tag::parse("0x3").unwrap();
    o.request.tag = tag::parse("0x1").unwrap();
    let dealid = w.deal(&o);
    let t = w.init_task(dealid, 0);
    let worker = w.workers[0].clone();
    let enclave = PrivateKey::from_seed("enclave");
    let d = digest(3);
    let rh = veil_core::tx::result_hash(&t, &d);
    let rs = veil_core::tx::result_seal(&worker.address(), &t, &d);
    let good_sign = enclave.sign_message_hash(&veil_core::tx::enclave_message(&rh, &rs));
    let call = |challenge: Address, esign: Option<Signature>, auth: Signature| Call::Contribute {
        taskid: t,
        result_hash: rh,
        result_seal: rs,
        enclave_challenge: challenge,
        enclave_sign: esign,
        authorization_sign: auth,
    };
    let check = |w: &mut World, c: Call, want: &str| {
        let before = w.snapshot();
        let err = w.send(&worker, c).unwrap_err().to_string();
        assert!(err.contains(want), "`{err}` should contain `{want}`");
        assert_eq!(before, w.snapshot());
    };
    let ch = enclave.address();
    let auth_zero = w.authorization(&worker.address(), &t, &Address::ZERO);
    let auth = w.authorization(&worker.address(), &t, &ch);
    let forged_auth = worker.sign_message_hash(&veil_core::tx::authorization_hash(&worker.address(), &t, &ch));
    let forged_enclave = worker.sign_message_hash(&veil_core::tx::enclave_message(&rh, &rs));
    check(&mut w, call(Address::ZERO, None, auth_zero), "enclave challenge");
    check(&mut w, call(ch, Some(good_sign), forged_auth), "authorization");
    check(&mut w, call(ch, Some(forged_enclave), auth), "enclave signature");
    check(&mut w, call(ch, None, auth), "enclave signature");
    w.ok(&worker, call(ch, Some(good_sign), auth));
    check(&mut w, call(ch, Some(good_sign), auth), "REVEALING");
}

#[test]
fn reveal_must_match_the_contribution() {
    let mut w = World::new();
    let o = w.orders();
    let dealid = w.deal(&o);
    let t = w.init_task(dealid, 0);
    let worker = w.workers[0].clone();
    w.ok(&worker, w.contribute_call(&worker, t, digest(1)));
    let err = w.send(&worker, Call::Reveal { taskid: t, result_digest: digest(2) }).unwrap_err();
    assert!(matches!(err, CoreError::Task(TaskError::RevealMismatch)), "{err}");
    w.now += 600;
    let err = w.send(&worker, Call::Reveal { taskid: t, result_digest: digest(1) }).unwrap_err();
    assert!(matches!(err, CoreError::Task(TaskError::RevealDeadline { .. })), "{err}");
}

#[test]
fn initialize_checks_range_and_uniqueness() {
    let mut w = World::new();
    let o = w.orders();
    let dealid = w.deal(&o);
    let err = w.send(&w.scheduler.clone(), Call::Initialize { dealid, idx: U256::from(1) }).unwrap_err();
    assert!(matches!(err, CoreError::Task(TaskError::IndexOutOfRange { .. })), "{err}");
    w.init_task(dealid, 0);
    assert!(w.send(&w.scheduler.clone(), Call::Initialize { dealid, idx: U256::ZERO }).is_err());
}
