//! One short case per matchOrders failure code: the code is in the error and the state is unchanged.

mod common;
use common::{Orders, World};
use veil_core::*;

fn other() -> Address {
    Address::repeat_byte(0x42)
}

fn tee() -> B256 {
    tag::parse("0x1").unwrap()
}

/// Mutates the default orders, matches them, and expects the failure `code`.
fn check(code: u8, mutate: impl FnOnce(&World, &mut Orders)) {
    check_call(code, |w| {
        let mut o = w.orders();
        mutate(w, &mut o);
        w.match_call(&o)
    })
}

fn check_call(code: u8, make: impl FnOnce(&World) -> Call) {
    let mut w = World::new();
    let call = make(&w);
    let before = w.snapshot();
    let err = w.send(&w.requester.clone(), call).expect_err("match should fail");
    match &err {
        CoreError::Match(m) => assert_eq!(m.code(), code, "wrong code for: {err}"),
        other => panic!("expected match error 0x{code:02x}, got: {other}"),
    }
    assert!(err.to_string().contains(&format!("0x{code:02x}")), "code missing in `{err}`");
    assert_eq!(before, w.snapshot(), "state changed after failed match 0x{code:02x}");
}

use veil_core::tag;

#[test]
fn the_default_orders_match() {
    let mut w = World::new();
    let o = w.orders();
    let dealid = w.deal(&o);
    let deal = w.state.deals.get(&dealid).unwrap();
    assert_eq!(deal.bot_size, U256::from(1));
    assert_eq!(deal.trust, U256::from(1));
}

#[test]
fn terms() {
    check(0x00, |_, o| o.request.category = U256::from(1));
    check(0x01, |_, o| {
        o.request.category = U256::from(99);
        o.pool.category = U256::from(99);
    });
    check(0x02, |_, o| o.request.trust = U256::from(11));
    check(0x03, |_, o| o.app.appprice = U256::from(4));
    check(0x04, |_, o| o.dataset.as_mut().unwrap().datasetprice = U256::from(3));
    check(0x05, |_, o| o.pool.workerpoolprice += U256::from(1));
    check(0x06, |_, o| o.request.tag = tee());
    check(0x07, |_, o| {
        o.request.tag = tee();
        o.pool.tag = tee();
    });
    check(0x10, |_, o| o.request.app = other());
    check(0x11, |_, o| o.request.dataset = other());
}

#[test]
fn dataset_framework_bits_are_ignored_but_its_tee_bit_is_not() {
    // Scone bit on the dataset is masked: matches on a non-TEE pool with a non-TEE app... except
    // that the dataset's TEE bit still needs a TEE app and pool.
    let mut w = World::new();
    let mut o = w.orders();
    o.dataset.as_mut().unwrap().tag = tag::parse("0x2").unwrap();
    w.deal(&o);
    check(0x06, |_, o| o.dataset.as_mut().unwrap().tag = tag::parse("0x3").unwrap());
}

#[test]
fn restrictions() {
    check(0x12, |_, o| o.request.workerpool = other());
    check(0x13, |_, o| o.app.datasetrestrict = other());
    check(0x14, |_, o| o.app.workerpoolrestrict = other());
    check(0x15, |_, o| o.app.requesterrestrict = other());
    check(0x16, |_, o| o.dataset.as_mut().unwrap().apprestrict = other());
    check(0x17, |_, o| o.dataset.as_mut().unwrap().workerpoolrestrict = other());
    check(0x18, |_, o| o.dataset.as_mut().unwrap().requesterrestrict = other());
    check(0x19, |_, o| o.pool.apprestrict = other());
    check(0x1a, |_, o| o.pool.datasetrestrict = other());
    check(0x1b, |_, o| o.pool.requesterrestrict = other());
}

#[test]
fn restrictions_that_name_the_party_pass() {
    let mut w = World::new();
    let mut o = w.orders();
    o.request.workerpool = w.pool;
    o.app.requesterrestrict = w.requester.address();
    o.dataset.as_mut().unwrap().apprestrict = w.app;
    o.pool.datasetrestrict = w.dataset;
    w.deal(&o);
}

#[test]
fn app_restricted_to_a_dataset_cannot_run_without_one() {
    check(0x13, |w, o| {
        o.app.datasetrestrict = w.dataset;
        o.dataset = None;
        o.request.dataset = Address::ZERO;
    });
}

fn resign(w: &World, o: &Orders, which: usize, key: &PrivateKey) -> Call {
    let mut call = w.match_call(o);
    let d = w.state.domain;
    if let Call::MatchOrders { app_order, dataset_order, workerpool_order, request_order } = &mut call {
        match which {
            0 => *app_order = Signed::new(o.app.clone(), key, &d),
            1 => *dataset_order = Some(Signed::new(o.dataset.clone().unwrap(), key, &d)),
            2 => *workerpool_order = Signed::new(o.pool.clone(), key, &d),
            _ => *request_order = Signed::new(o.request.clone(), key, &d),
        }
    }
    call
}

#[test]
fn registration_and_signatures() {
    let stranger = PrivateKey::from_seed("stranger");
    check(0x20, |_, o| {
        o.app.app = other();
        o.request.app = other();
    });
    check_call(0x21, |w| resign(w, &w.orders(), 0, &stranger));
    check(0x30, |_, o| {
        o.dataset.as_mut().unwrap().dataset = other();
        o.request.dataset = other();
    });
    check_call(0x31, |w| resign(w, &w.orders(), 1, &stranger));
    check(0x40, |_, o| o.pool.workerpool = other());
    check_call(0x41, |w| resign(w, &w.orders(), 2, &stranger));
    check_call(0x50, |w| resign(w, &w.orders(), 3, &stranger));
    check_call(0x21, |w| {
        let mut call = w.match_call(&w.orders());
        if let Call::MatchOrders { app_order, .. } = &mut call {
            app_order.sign = None;
        }
        call
    });
}

#[test]
fn no_volume() {
    check(0x60, |_, o| o.request.volume = U256::ZERO);
    // An order used up by an earlier deal has no volume left.
    let mut w = World::new();
    let o = w.orders();
    w.deal(&o);
    let call = w.match_call(&o);
    let err = w.send(&w.requester.clone(), call).unwrap_err();
    assert!(matches!(err, CoreError::Match(ref m) if m.code() == 0x60), "{err}");
}

#[test]
fn cancelled_order_cannot_match_and_presigned_order_needs_no_signature() {
    let mut w = World::new();
    let o = w.orders();
    w.ok(&w.app_owner.clone(), Call::CancelOrder { order: AnyOrder::App(o.app.clone()) });
    let err = w.send(&w.requester.clone(), w.match_call(&o)).unwrap_err();
    assert!(err.to_string().contains("0x60"), "{err}");

    let mut w = World::new();
    let o = w.orders();
    w.ok(&w.app_owner.clone(), Call::PresignOrder { order: AnyOrder::App(o.app.clone()) });
    let mut call = w.match_call(&o);
    if let Call::MatchOrders { app_order, .. } = &mut call {
        app_order.sign = None;
    }
    w.ok(&w.requester.clone(), call);

    // Only the owner may presign or cancel.
    let mut w = World::new();
    let o = w.orders();
    let err = w.send(&w.requester.clone(), Call::PresignOrder { order: AnyOrder::App(o.app) }).unwrap_err();
    assert!(matches!(err, CoreError::NotOwner { .. }), "{err}");
}

#[test]
fn deal_locks_and_ids() {
    let mut w = World::new();
    let mut o = w.orders();
    o.request.volume = U256::from(4);
    let (req_before, _) = w.balance(&w.requester);
    let (pool_before, _) = w.balance(&w.scheduler);
    let dealid = w.deal(&o);
    let deal = w.state.deals.get(&dealid).unwrap().clone();
    let task_price = Nrlc::new(3 + 2 + 1_000_000_000);
    assert_eq!(
        w.balance(&w.requester),
        (
            req_before.checked_sub(task_price.checked_mul(U256::from(4)).unwrap()).unwrap(),
            task_price.checked_mul(U256::from(4)).unwrap()
        )
    );
    assert_eq!(w.balance(&w.scheduler).1, Nrlc::new(300_000_000 * 4));
    assert_eq!(w.balance(&w.scheduler).0, pool_before.checked_sub(Nrlc::new(1_200_000_000)).unwrap());
    assert_eq!(deal.worker_stake, Nrlc::new(300_000_000));
    assert_eq!(deal.bot_first, U256::ZERO);
    assert_eq!(deal.start_time, common::T0);
    // dealid = keccak256(requestHash ‖ consumed-before), and the next deal starts where this one ended.
    let req_hash = o.request.typed_hash(&w.state.domain);
    assert_eq!(dealid, veil_core::crypto::keccak_packed(&[&req_hash.0, &[0u8; 32]]));
    assert_eq!(w.state.consumed(&req_hash), U256::from(4));
    o.request.volume = U256::from(6);
    let d2 = w.deal(&o);
    assert_ne!(d2, dealid);
    assert_eq!(w.state.deals.get(&d2).unwrap().bot_first, U256::ZERO, "a new request order starts from 0");
}

#[test]
fn match_without_dataset_has_zero_dataset_price() {
    let mut w = World::new();
    let mut o = w.orders();
    o.dataset = None;
    o.request.dataset = Address::ZERO;
    o.request.datasetmaxprice = U256::ZERO;
    let dealid = w.deal(&o);
    let deal = w.state.deals.get(&dealid).unwrap();
    assert_eq!(deal.dataset.price, Nrlc::ZERO);
    assert!(!deal.has_dataset());
}
