//! `veil quickstart --core`: the PoCo rules alone, in process, one readable line per step.
//!
//! Drives the protocol core directly (no network, no app execution: results are fixed bytes):
//! wallets, deposits, registries, signed orders, matchOrders, a trust-1 task and a replicated trust-3
//! task with one dishonest worker (slashed), and the RLC balances of every party before and after.

use crate::cli_io::emit;
use crate::local::{created, dealid};
use anyhow::{Result, bail};
use serde_json::json;
use std::time::Instant;
use veil_core::state::{Account, Genesis, TaskStatus, default_categories, task_id};
use veil_core::tx::{authorization_hash, result_hash, result_seal};
use veil_core::*;

struct Story {
    state: State,
    now: u64,
    json: bool,
    steps: Vec<serde_json::Value>,
    clock: Instant,
}

impl Story {
    fn send(&mut self, key: &PrivateKey, call: Call) -> Result<Vec<Event>> {
        crate::local::send(&mut self.state, key, call, self.now)
    }

    fn step(&mut self, text: String) {
        let ms = self.clock.elapsed().as_secs_f64() * 1000.0;
        if !self.json {
            println!("  {:>7.2} ms  {text}", ms);
        }
        self.steps.push(json!({ "step": text, "ms": ms }));
        self.clock = Instant::now();
    }
}

pub fn run(json: bool) -> Result<()> {
    let started = Instant::now();
    if !json {
        println!("Veil quickstart --core: the PoCo protocol rules alone, in process (no network, no app execution).");
    }
    let names = [
        "app developer",
        "data owner",
        "workerpool owner",
        "requester",
        "worker 1",
        "worker 2",
        "worker 3",
        "worker 4",
    ];
    let keys: Vec<PrivateKey> = names.iter().map(|_| veil_wallet::random_key()).collect();
    let (dev, owner, pool_owner, requester) = (&keys[0], &keys[1], &keys[2], &keys[3]);
    let workers = &keys[4..];
    let domain = eip712::veil_dev_domain();
    let genesis = Genesis {
        domain,
        admin: pool_owner.address(),
        categories: default_categories(),
        allocations: keys.iter().map(|k| (k.address(), Nrlc::rlc(100))).collect(),
    };
    let mut s =
        Story { state: State::genesis(&genesis), now: 1_700_000_000, json, steps: vec![], clock: Instant::now() };
    s.step(format!("{} wallets created, 100 RLC each, ledger chain {}", keys.len(), domain.chain_id));
    for k in &keys {
        s.send(k, Call::Deposit { amount: Nrlc::rlc(50) })?;
    }
    s.step("every party deposited 50 RLC into the PoCo escrow".into());
    let balances_before: Vec<Account> = keys.iter().map(|k| s.state.account(&k.address())).collect();

    let app = created(&s.send(
        dev,
        Call::CreateApp {
            name: "hello-veil".into(),
            app_type: "VEIL".into(),
            multiaddr: "veil://bundle/hello".into(),
            checksum: keccak256(b"hello bundle"),
            mrenclave: String::new(),
        },
    )?)?;
    let dataset = created(&s.send(
        owner,
        Call::CreateDataset {
            name: "sample".into(),
            multiaddr: "veil://blob/sample".into(),
            checksum: keccak256(b"encrypted sample"),
        },
    )?)?;
    let pool = created(&s.send(pool_owner, Call::CreateWorkerpool { description: "quickstart pool".into() })?)?;
    s.step(format!("registered app {app}, dataset {dataset}, workerpool {pool}"));

    let app_order = AppOrder {
        app,
        appprice: U256::from(100_000_000u64),
        volume: U256::from(100),
        tag: B256::ZERO,
        datasetrestrict: Address::ZERO,
        workerpoolrestrict: Address::ZERO,
        requesterrestrict: Address::ZERO,
        salt: keccak256(b"app salt"),
    };
    let dataset_order = DatasetOrder {
        dataset,
        datasetprice: U256::from(200_000_000u64),
        volume: U256::from(10),
        tag: B256::ZERO,
        apprestrict: app,
        workerpoolrestrict: Address::ZERO,
        requesterrestrict: requester.address(),
        salt: keccak256(b"dataset salt"),
    };
    let pool_order = WorkerpoolOrder {
        workerpool: pool,
        workerpoolprice: U256::from(1_000_000_000u64),
        volume: U256::from(100),
        tag: B256::ZERO,
        category: U256::ZERO,
        trust: U256::from(3),
        apprestrict: Address::ZERO,
        datasetrestrict: Address::ZERO,
        requesterrestrict: Address::ZERO,
        salt: keccak256(b"pool salt"),
    };
    let request = |trust: u64, salt: &[u8]| RequestOrder {
        app,
        appmaxprice: U256::from(100_000_000u64),
        dataset,
        datasetmaxprice: U256::from(200_000_000u64),
        workerpool: Address::ZERO,
        workerpoolmaxprice: U256::from(1_000_000_000u64),
        requester: requester.address(),
        volume: U256::from(1),
        tag: B256::ZERO,
        category: U256::ZERO,
        trust: U256::from(trust),
        beneficiary: requester.address(),
        callback: Address::ZERO,
        params: r#"{"iexec_args":"hello"}"#.into(),
        salt: keccak256(salt),
    };
    let signed_app = Signed::new(app_order, dev, &domain);
    let signed_dataset = Signed::new(dataset_order, owner, &domain);
    let signed_pool = Signed::new(pool_order, pool_owner, &domain);
    s.step("app, dataset (granted to this app and requester only) and workerpool orders signed (EIP-712)".into());

    // Deal 1: trust 1, the fast path (contributeAndFinalize).
    let match_call = |r: RequestOrder| Call::MatchOrders {
        app_order: signed_app.clone(),
        dataset_order: Some(signed_dataset.clone()),
        workerpool_order: signed_pool.clone(),
        request_order: Signed::new(r, requester, &domain),
    };
    let deal1 = dealid(&s.send(requester, match_call(request(1, b"request 1")))?)?;
    s.step(format!("matchOrders: deal {deal1} (trust 1, 1.3 RLC locked)"));
    s.send(pool_owner, Call::Initialize { dealid: deal1, idx: U256::ZERO })?;
    let t1 = task_id(&deal1, U256::ZERO);
    let digest = keccak256(b"Hello, Veil!");
    let w = &workers[0];
    let auth = pool_owner.sign_message_hash(&authorization_hash(&w.address(), &t1, &Address::ZERO));
    s.send(
        w,
        Call::ContributeAndFinalize {
            taskid: t1,
            result_digest: digest,
            results: Bytes::from_static(b"veil://result/1"),
            results_callback: Bytes::new(),
            enclave_challenge: Address::ZERO,
            enclave_sign: None,
            authorization_sign: auth,
        },
    )?;
    expect_status(&s.state, &t1, TaskStatus::Completed)?;
    s.step(format!("task {t1} completed by worker 1 (contributeAndFinalize)"));

    // Deal 2: trust 3, replicated, with one dishonest worker.
    let deal2 = dealid(&s.send(requester, match_call(request(3, b"request 2")))?)?;
    s.send(pool_owner, Call::Initialize { dealid: deal2, idx: U256::ZERO })?;
    let t2 = task_id(&deal2, U256::ZERO);
    let lie = keccak256(b"a wrong result");
    for (i, d) in [(0, digest), (3, lie), (1, digest), (2, digest)] {
        let w = &workers[i];
        let auth = pool_owner.sign_message_hash(&authorization_hash(&w.address(), &t2, &Address::ZERO));
        s.send(
            w,
            Call::Contribute {
                taskid: t2,
                result_hash: result_hash(&t2, &d),
                result_seal: result_seal(&w.address(), &t2, &d),
                enclave_challenge: Address::ZERO,
                enclave_sign: None,
                authorization_sign: auth,
            },
        )?;
    }
    expect_status(&s.state, &t2, TaskStatus::Revealing)?;
    s.step(format!("deal {deal2} (trust 3): 4 contributions, worker 4 lied, consensus reached"));
    for w in &workers[..3] {
        s.send(w, Call::Reveal { taskid: t2, result_digest: digest })?;
    }
    s.send(
        pool_owner,
        Call::Finalize { taskid: t2, results: Bytes::from_static(b"veil://result/2"), results_callback: Bytes::new() },
    )?;
    expect_status(&s.state, &t2, TaskStatus::Completed)?;
    s.step("3 honest workers revealed, the scheduler finalized: honest paid, liar slashed".into());

    let mut rows = vec![];
    let mut total_delta: i128 = 0;
    for ((name, k), before) in names.iter().zip(&keys).zip(&balances_before) {
        let after = s.state.account(&k.address());
        let delta =
            nrlc_i128(after.balance) - nrlc_i128(before.balance) + nrlc_i128(after.locked) - nrlc_i128(before.locked);
        total_delta += delta;
        rows.push(json!({
            "party": name,
            "address": k.address().to_checksum(None),
            "before": before.balance.to_string(),
            "after": after.balance.to_string(),
            "locked": after.locked.to_string(),
            "change": delta.to_string(),
            "score": after.score,
        }));
        if !json {
            let sign = if delta < 0 { "-" } else { "+" };
            let change = Nrlc(U256::from(delta.unsigned_abs())).to_rlc_string();
            println!(
                "             {name:<17} {:>14} → {:>14}   {sign}{change:<14} score {}",
                before.balance.to_rlc_string(),
                after.balance.to_rlc_string(),
                after.score
            );
        }
    }
    if total_delta != 0 {
        bail!("RLC was not conserved: the balances changed by {total_delta} nRLC in total");
    }
    s.step("RLC conserved: the changes above sum to 0".into());
    let total_ms = started.elapsed().as_secs_f64() * 1000.0;
    if json {
        emit(true, &json!({ "steps": s.steps, "balances": rows, "totalMs": total_ms }), "");
    } else {
        println!("done in {total_ms:.1} ms");
    }
    Ok(())
}

fn nrlc_i128(n: Nrlc) -> i128 {
    i128::try_from(n.0).unwrap_or(i128::MAX)
}

fn expect_status(state: &State, t: &B256, want: TaskStatus) -> Result<()> {
    let got = state.tasks.get(t).map(|t| t.status).unwrap_or(TaskStatus::Unset);
    if got != want {
        bail!("task {t} is {got}, expected {want}");
    }
    Ok(())
}
