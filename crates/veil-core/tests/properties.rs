//! Property tests over random transaction sequences: RLC is conserved, and a rejected transaction
//! leaves the state byte-identical.

mod common;
use common::World;
use proptest::prelude::*;
use veil_core::*;

#[derive(Debug, Clone)]
enum Op {
    Deposit(usize, u64),
    Withdraw(usize, u64),
    Transfer(usize, usize, u64),
    Match { volume: u64, trust: u64, price: u64, dataset: bool, salt: u8 },
    Init(usize, u64),
    Contribute(usize, usize, u8),
    Reveal(usize, usize, u8),
    Finalize(usize),
    Reopen(usize),
    Claim(usize),
    ContributeAndFinalize(usize, usize, u8),
    Wait(u64),
    ReplayNonce(usize),
    ForgedSignature(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..9usize, 0..200_000_000_000u64).prop_map(|(a, x)| Op::Deposit(a, x)),
        1 => (0..9usize, 0..200_000_000_000u64).prop_map(|(a, x)| Op::Withdraw(a, x)),
        1 => (0..9usize, 0..9usize, 0..50_000_000_000u64).prop_map(|(a, b, x)| Op::Transfer(a, b, x)),
        3 => (1..4u64, 0..3u64, 0..3_000_000_000u64, any::<bool>(), any::<u8>())
            .prop_map(|(volume, trust, price, dataset, salt)| Op::Match { volume, trust, price, dataset, salt }),
        4 => (0..8usize, 0..4u64).prop_map(|(d, i)| Op::Init(d, i)),
        8 => (0..5usize, 0..8usize, 0..2u8).prop_map(|(w, t, d)| Op::Contribute(w, t, d)),
        8 => (0..5usize, 0..8usize, 0..2u8).prop_map(|(w, t, d)| Op::Reveal(w, t, d)),
        6 => (0..8usize).prop_map(Op::Finalize),
        2 => (0..8usize).prop_map(Op::Reopen),
        1 => (0..8usize).prop_map(Op::Claim),
        2 => (0..5usize, 0..8usize, 0..2u8).prop_map(|(w, t, d)| Op::ContributeAndFinalize(w, t, d)),
        2 => (0..1500u64).prop_map(Op::Wait),
        1 => (0..9usize).prop_map(Op::ReplayNonce),
        1 => (0..9usize).prop_map(Op::ForgedSignature),
    ]
}

fn actor(w: &World, i: usize) -> PrivateKey {
    match i {
        0 => w.app_owner.clone(),
        1 => w.dataset_owner.clone(),
        2 => w.scheduler.clone(),
        3 => w.requester.clone(),
        i => w.workers[(i - 4) % w.workers.len()].clone(),
    }
}

struct Run {
    w: World,
    deals: Vec<B256>,
    tasks: Vec<B256>,
}

/// One of the newest entries, so that sequences of ops meet the same deal or task.
fn pick<T: Copy>(v: &[T], i: usize) -> Option<T> {
    (!v.is_empty()).then(|| v[v.len() - 1 - i % v.len().min(3)])
}

impl Run {
    /// Builds the transaction for `op`, or `None` when it needs something that does not exist yet.
    fn tx(&self, op: &Op) -> Option<(PrivateKey, SignedTx)> {
        let w = &self.w;
        let call_by = |k: PrivateKey, c: Call| Some((k.clone(), w.tx(&k, c)));
        let digest = |d: u8| B256::repeat_byte(d + 1);
        match op.clone() {
            Op::Deposit(a, x) => call_by(actor(w, a), Call::Deposit { amount: Nrlc::new(x) }),
            Op::Withdraw(a, x) => call_by(actor(w, a), Call::Withdraw { amount: Nrlc::new(x) }),
            Op::Transfer(a, b, x) => {
                call_by(actor(w, a), Call::Transfer { to: actor(w, b).address(), amount: Nrlc::new(x) })
            }
            Op::Match { volume, trust, price, dataset, salt } => {
                let mut o = w.orders();
                o.request.volume = U256::from(volume);
                o.request.trust = U256::from(trust);
                o.request.salt = B256::repeat_byte(salt);
                o.pool.workerpoolprice = U256::from(price);
                o.request.workerpoolmaxprice = U256::from(price);
                if !dataset {
                    o.dataset = None;
                    o.request.dataset = Address::ZERO;
                }
                call_by(w.requester.clone(), w.match_call(&o))
            }
            Op::Init(d, i) => {
                call_by(w.scheduler.clone(), Call::Initialize { dealid: pick(&self.deals, d)?, idx: U256::from(i) })
            }
            Op::Contribute(k, t, d) => {
                let key = w.workers[k].clone();
                call_by(key.clone(), w.contribute_call(&key, pick(&self.tasks, t)?, digest(d)))
            }
            Op::Reveal(k, t, d) => {
                call_by(w.workers[k].clone(), Call::Reveal { taskid: pick(&self.tasks, t)?, result_digest: digest(d) })
            }
            Op::Finalize(t) => call_by(
                w.scheduler.clone(),
                Call::Finalize { taskid: pick(&self.tasks, t)?, results: Bytes::new(), results_callback: Bytes::new() },
            ),
            Op::Reopen(t) => call_by(w.scheduler.clone(), Call::Reopen { taskid: pick(&self.tasks, t)? }),
            Op::Claim(t) => call_by(w.requester.clone(), Call::Claim { taskid: pick(&self.tasks, t)? }),
            Op::ContributeAndFinalize(k, t, d) => {
                let key = w.workers[k].clone();
                let taskid = pick(&self.tasks, t)?;
                call_by(
                    key.clone(),
                    Call::ContributeAndFinalize {
                        taskid,
                        result_digest: digest(d),
                        results: Bytes::new(),
                        results_callback: Bytes::new(),
                        enclave_challenge: Address::ZERO,
                        enclave_sign: None,
                        authorization_sign: w.authorization(&key.address(), &taskid, &Address::ZERO),
                    },
                )
            }
            Op::ReplayNonce(a) => {
                let k = actor(w, a);
                let nonce = w.state.account(&k.address()).nonce;
                let tx = Tx {
                    chain_id: w.state.domain.chain_id,
                    from: k.address(),
                    nonce: nonce.wrapping_sub(1),
                    call: Call::Deposit { amount: Nrlc::ZERO },
                };
                Some((k.clone(), tx.sign(&k)))
            }
            Op::ForgedSignature(a) => {
                let k = actor(w, a);
                let mut stx = w.tx(&k, Call::Withdraw { amount: Nrlc::new(1) });
                stx.tx.from = actor(w, a + 1).address();
                Some((k, stx))
            }
            Op::Wait(_) => None,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn rlc_is_conserved_and_rejections_change_nothing(ops in prop::collection::vec(op(), 1..80)) {
        let mut run = Run { w: World::new(), deals: vec![], tasks: vec![] };
        let total = run.w.state.total_rlc().unwrap();
        for (i, op) in ops.iter().enumerate() {
            if let Op::Wait(s) = op {
                run.w.now += s;
                continue;
            }
            let Some((_, stx)) = run.tx(op) else { continue };
            let before = run.w.snapshot();
            match apply(&mut run.w.state, &stx, run.w.now) {
                Ok(events) => {
                    for e in events {
                        match e {
                            Event::OrdersMatched { dealid, .. } => run.deals.push(dealid),
                            Event::TaskInitialize { taskid, .. } => run.tasks.push(taskid),
                            _ => {}
                        }
                    }
                    prop_assert!(!matches!(op, Op::ReplayNonce(_) | Op::ForgedSignature(_)), "{op:?} was accepted");
                }
                Err(_) => prop_assert_eq!(&before, &run.w.snapshot(), "rejected {:?} changed the state", op),
            }
            prop_assert_eq!(run.w.state.total_rlc().unwrap(), total, "RLC not conserved after {:?}", op);
            prop_assert_eq!(total_locked(&run.w.state), expected_locked(&run.w.state), "locks do not add up after {:?}", op);
            if i % 3 == 2 {
                // Seal now and then, so a digest covers several transactions, as a block does.
                let sealed = run.w.state.seal();
                prop_assert_eq!(sealed, run.w.state.full_digest(), "incremental digest diverged after {:?}", op);
            }
        }
    }
}

fn total_locked(s: &State) -> Nrlc {
    s.accounts.values().fold(Nrlc::ZERO, |t, a| t.checked_add(a.locked).unwrap())
}

/// What must be locked: per unfinished task of every deal its price and the pool stake, the
/// stakes of its contributors, plus the reserve.
fn expected_locked(s: &State) -> Nrlc {
    use veil_core::state::{KITTY, TaskStatus, task_id};
    let mut t = s.account(&KITTY).locked;
    for (dealid, deal) in s.deals.iter() {
        let per_task = deal.task_price().unwrap().checked_add(deal.pool_stake().unwrap()).unwrap();
        let size: u64 = deal.bot_size.to();
        for i in 0..size {
            let idx = deal.bot_first + U256::from(i);
            match s.tasks.get(&task_id(dealid, idx)) {
                Some(task) if matches!(task.status, TaskStatus::Completed | TaskStatus::Failed) => {}
                Some(task) => {
                    let stakes = deal.worker_stake.checked_mul(U256::from(task.contributors.len())).unwrap();
                    t = t.checked_add(per_task).unwrap().checked_add(stakes).unwrap();
                }
                None => t = t.checked_add(per_task).unwrap(),
            }
        }
    }
    t
}
