//! Bad transactions: each error names the field or rule, and nothing changes.

mod common;
use common::World;
use proptest::prelude::*;
use veil_core::*;

fn check(w: &mut World, stx: SignedTx, needle: &str) {
    let before = w.snapshot();
    let err = apply(&mut w.state, &stx, w.now).expect_err("should be refused").to_string();
    assert!(err.contains(needle), "`{err}` should mention `{needle}`");
    assert_eq!(before, w.snapshot(), "state changed by a refused transaction ({needle})");
}

fn call_check(w: &mut World, key: &PrivateKey, call: Call, needle: &str) {
    let stx = w.tx(key, call);
    check(w, stx, needle);
}

#[test]
fn envelope_errors() {
    let mut w = World::new();
    let k = w.requester.clone();
    let mut replay = w.tx(&k, Call::Deposit { amount: Nrlc::new(1) });
    replay.tx.nonce -= 1;
    let replay = replay.tx.sign(&k);
    check(&mut w, replay, "nonce");
    let mut future = w.tx(&k, Call::Deposit { amount: Nrlc::new(1) });
    future.tx.nonce += 5;
    let future = future.tx.sign(&k);
    check(&mut w, future, "nonce");
    let mut chain = w.tx(&k, Call::Deposit { amount: Nrlc::new(1) });
    chain.tx.chain_id = 1;
    let chain = chain.tx.sign(&k);
    check(&mut w, chain, "chain");
    let mut forged = w.tx(&k, Call::Deposit { amount: Nrlc::new(1) });
    forged.tx.from = w.app_owner.address();
    check(&mut w, forged, "signed by");
    let mut tampered = w.tx(&k, Call::Deposit { amount: Nrlc::new(1) });
    tampered.tx.call = Call::Deposit { amount: Nrlc::new(2) };
    check(&mut w, tampered, "signed by");
    let mut bad_v = w.tx(&k, Call::Deposit { amount: Nrlc::new(1) });
    bad_v.signature.0[64] = 5;
    check(&mut w, bad_v, "v must be 27 or 28");
    // The same transaction twice: the second is a replay.
    let once = w.tx(&k, Call::Deposit { amount: Nrlc::new(1) });
    apply(&mut w.state, &once, w.now).unwrap();
    check(&mut w, once, "nonce");
}

#[test]
fn rule_errors() {
    let mut w = World::new();
    let (req, sched, dev) = (w.requester.clone(), w.scheduler.clone(), w.app_owner.clone());
    call_check(&mut w, &req, Call::Deposit { amount: Nrlc::rlc(10_000) }, "in its wallet");
    call_check(&mut w, &req, Call::Withdraw { amount: Nrlc::rlc(10_000) }, "free in escrow");
    call_check(&mut w, &req, Call::Transfer { to: sched.address(), amount: Nrlc::rlc(10_000) }, "free in escrow");
    call_check(
        &mut w,
        &req,
        Call::CreateCategory { name: "x".into(), description: String::new(), work_clock_time_ref: 5 },
        "admin",
    );
    let long = "x".repeat(10_000);
    call_check(
        &mut w,
        &dev,
        Call::CreateDataset { name: long, multiaddr: String::new(), checksum: B256::ZERO },
        "name",
    );
    let pool = w.pool;
    call_check(
        &mut w,
        &req,
        Call::SetWorkerpoolPolicy { workerpool: pool, worker_stake_ratio: 1, scheduler_reward_ratio: 1 },
        "owner",
    );
    call_check(
        &mut w,
        &sched,
        Call::SetWorkerpoolPolicy { workerpool: pool, worker_stake_ratio: 101, scheduler_reward_ratio: 1 },
        "percentages",
    );
    call_check(&mut w, &req, Call::TransferOwnership { asset: pool, to: req.address() }, "owner");
    call_check(
        &mut w,
        &req,
        Call::TransferOwnership { asset: Address::repeat_byte(9), to: req.address() },
        "not registered",
    );
    call_check(&mut w, &req, Call::Claim { taskid: B256::repeat_byte(1) }, "does not exist");
}

#[test]
fn amounts_that_overflow_are_errors() {
    let mut w = World::new();
    let mut o = w.orders();
    o.app.appprice = U256::MAX;
    o.request.appmaxprice = U256::MAX;
    let call = w.match_call(&o);
    let req = w.requester.clone();
    call_check(&mut w, &req, call, "out of range");
    let mut o = w.orders();
    o.pool.workerpoolprice = U256::MAX / U256::from(2);
    o.request.workerpoolmaxprice = U256::MAX;
    o.request.volume = U256::from(3);
    let call = w.match_call(&o);
    call_check(&mut w, &req, call, "out of range");
}

#[test]
fn policy_and_ownership_transfer_work_for_the_owner() {
    let mut w = World::new();
    let (sched, req) = (w.scheduler.clone(), w.requester.clone());
    let pool = w.pool;
    w.ok(&sched, Call::SetWorkerpoolPolicy { workerpool: pool, worker_stake_ratio: 50, scheduler_reward_ratio: 20 });
    let o = w.orders();
    let dealid = w.deal(&o);
    let deal = w.state.deals.get(&dealid).unwrap();
    assert_eq!(deal.worker_stake, Nrlc::new(500_000_000));
    assert_eq!(deal.scheduler_reward_ratio, 20);
    w.ok(&sched, Call::TransferOwnership { asset: pool, to: req.address() });
    assert_eq!(w.state.workerpools.get(&pool).unwrap().owner, req.address());
}

#[test]
fn decode_names_the_field() {
    let w = World::new();
    let stx = w.tx(&w.requester, Call::Deposit { amount: Nrlc::new(5) });
    let json = serde_json::to_string(&stx).unwrap();
    assert_eq!(tx::decode(json.as_bytes()).unwrap(), stx);
    let bad = json.replace("\"amount\":\"5\"", "\"amount\":\"five\"");
    let e = tx::decode(bad.as_bytes()).unwrap_err().to_string();
    assert!(e.contains("amount"), "{e}");
    let e = tx::decode(json.replace("\"nonce\"", "\"nonse\"").as_bytes()).unwrap_err().to_string();
    assert!(e.contains("nonse") || e.contains("nonce"), "{e}");
    let e = tx::decode(&vec![b' '; tx::MAX_TX_BYTES + 1]).unwrap_err().to_string();
    assert!(e.contains("at most"), "{e}");
    assert!(tx::decode(format!("{json} x").as_bytes()).is_err());
}

proptest! {
    /// Decoders of untrusted bytes never panic, whatever they are given.
    #[test]
    fn decoders_do_not_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), s in ".{0,300}") {
        let _ = tx::decode(&bytes);
        let _ = tx::decode(s.as_bytes());
        let _ = orders::parse_order::<RequestOrder>(&s);
        let _ = orders::parse_order::<AppOrder>(&String::from_utf8_lossy(&bytes));
        let _ = tag::parse(&s);
        let _ = Signature::parse_hex(&s);
    }
}
