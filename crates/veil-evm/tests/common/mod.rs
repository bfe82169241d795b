//! Twin: one scripted scenario run through `veil-core` and through PoCo on anvil, step by step.
//!
//! Each step is sent to PoCo first; `veil-core` then applies the same call at the time of the block
//! PoCo mined it in, so deadlines agree. Asset addresses differ by design (Veil derives them from
//! kind, owner and nonce, PoCo's registries use CREATE2): an asset created on both is moved in the
//! core to PoCo's address, so orders, deal ids and task ids are the same bytes on both.

#![allow(dead_code)]

use alloy::primitives::{Address, B256, U256};
use veil_core::events::Event;
use veil_core::orders::{AppOrder, DatasetOrder, RequestOrder, Signed, WorkerpoolOrder};
use veil_core::state::{Genesis, KITTY, State, dev_categories};
use veil_core::{Call, CoreError, Domain, Nrlc, PrivateKey, Tx};
use veil_evm::EvmLedger;
use veil_evm::anvil::{self, Anvil};
use veil_sdk::{Ledger, SdkError};

pub const ADMIN: usize = 0;
pub const DEV: usize = 1;
pub const OWNER: usize = 2;
pub const POOL: usize = 3;
pub const REQUESTER: usize = 4;
pub const WORKERS: [usize; 4] = [5, 6, 7, 9];
pub const OTHER: usize = 8;

pub fn key(i: usize) -> PrivateKey {
    anvil::dev_key(i).expect("dev key")
}

pub fn addr(i: usize) -> Address {
    key(i).address()
}

pub struct Twin {
    pub core: State,
    pub evm: EvmLedger,
    _anvil: Anvil,
    _dir: tempfile::TempDir,
    /// Time of the last block PoCo mined.
    pub now: u64,
    /// Every step, for the failure message.
    pub log: Vec<String>,
}

/// A step's two answers.
pub struct Both {
    pub core: Result<Vec<Event>, CoreError>,
    pub evm: Result<veil_core::block::Receipt, SdkError>,
}

impl Both {
    /// The deal id both sides agree on.
    pub fn dealid(&self) -> B256 {
        let find = |evs: &[Event]| {
            evs.iter().find_map(|e| match e {
                Event::OrdersMatched { dealid, .. } => Some(*dealid),
                _ => None,
            })
        };
        let c = find(self.core.as_ref().expect("core matched")).expect("core OrdersMatched");
        let e = find(&self.evm.as_ref().expect("PoCo matched").events).expect("PoCo OrdersMatched");
        assert_eq!(c, e, "deal ids differ");
        c
    }
}

pub async fn start() -> Twin {
    let bin = anvil::find_anvil(None).expect("anvil: run scripts/evm-deps");
    let poco = anvil::find_poco(None).expect("PoCo package: run scripts/evm-deps");
    let fixture = anvil::fixture(&bin, &poco, &mut |_| {}).await.expect("fixture");
    let dir = tempfile::tempdir().expect("tempdir");
    let node = anvil::start_from_fixture(&bin, &fixture, dir.path(), 0).await.expect("anvil");
    let evm = EvmLedger::connect(&node.url, Some(fixture.deployment.hub)).await.expect("connect");
    let mut allocations = Vec::new();
    for i in 0..10 {
        let a = addr(i);
        allocations.push((a, Nrlc(evm.rlc_balance(a).await.expect("RLC balance"))));
    }
    let genesis = Genesis {
        domain: Domain { chain_id: evm.rpc.chain_id, verifying_contract: evm.deployment.hub },
        admin: addr(ADMIN),
        categories: dev_categories(),
        allocations,
    };
    let (_, _, now) = evm.rpc.latest().await.expect("head");
    Twin { core: State::genesis(&genesis), evm, _anvil: node, _dir: dir, now, log: Vec::new() }
}

impl Twin {
    pub fn domain(&self) -> Domain {
        self.core.domain
    }

    /// Sends `call` from dev account `who` to both; returns both answers without judging them.
    pub async fn step(&mut self, who: usize, call: Call) -> Both {
        let k = key(who);
        let evm = self.evm.send(&k, call.clone()).await;
        let now = match &evm {
            Ok(r) => self.evm.rpc.block_timestamp(r.block).await.expect("block time"),
            Err(_) => self.evm.rpc.latest().await.expect("head").2,
        };
        self.now = now;
        let from = k.address();
        let nonce = self.core.account(&from).nonce;
        let stx = Tx { chain_id: self.core.domain.chain_id, from, nonce, call: call.clone() }.sign(&k);
        let core = veil_core::apply(&mut self.core, &stx, now);
        self.log.push(format!(
            "{} by {who}: core {} / PoCo {}",
            call_name(&call),
            core.as_ref().map(|_| "ok".to_string()).unwrap_or_else(|e| e.to_string()),
            evm.as_ref().map(|_| "ok".to_string()).unwrap_or_else(|e| e.to_string())
        ));
        Both { core, evm }
    }

    /// A step both must accept.
    pub async fn ok(&mut self, who: usize, call: Call) -> Both {
        let b = self.step(who, call).await;
        if b.core.is_err() || b.evm.is_err() {
            panic!("a step that both must accept diverged:\n{}", self.log.join("\n"));
        }
        self.compare_events(&b);
        b
    }

    /// The events of an accepted step, in order: Veil's, and PoCo's logs read back as Veil's events.
    pub fn compare_events(&self, b: &Both) {
        let (Ok(core), Ok(evm)) = (&b.core, &b.evm) else { return };
        let norm = |evs: &[Event]| -> Vec<String> {
            evs.iter().filter(|e| comparable(e)).map(|e| format!("{e:?}")).collect::<Vec<String>>()
        };
        assert_eq!(norm(core), norm(&evm.events), "events differ\n{}", self.log.join("\n"));
    }

    /// A step both must refuse; returns (core's error, PoCo's reason).
    pub async fn refused(&mut self, who: usize, call: Call) -> (String, String) {
        let b = self.step(who, call).await;
        match (b.core, b.evm) {
            (Err(c), Err(e)) => (c.to_string(), e.to_string()),
            _ => panic!("a step that both must refuse diverged:\n{}", self.log.join("\n")),
        }
    }

    /// Creates an app, dataset or workerpool on both; returns PoCo's address (the core's entry is
    /// moved there).
    pub async fn create(&mut self, who: usize, call: Call) -> Address {
        let b = self.ok(who, call).await;
        let created = |evs: &[Event]| {
            evs.iter().find_map(|e| match e {
                Event::AppCreated { app, .. } => Some(*app),
                Event::DatasetCreated { dataset, .. } => Some(*dataset),
                Event::WorkerpoolCreated { workerpool, .. } => Some(*workerpool),
                _ => None,
            })
        };
        let at = created(&b.evm.expect("evm").events).expect("PoCo created an asset");
        let core_at = created(&b.core.expect("core")).expect("core created an asset");
        assert!(self.core.move_asset(&core_at, at));
        at
    }

    pub async fn increase_time(&mut self, seconds: u64) {
        self.evm.increase_time(seconds).await.expect("evm_increaseTime");
        self.log.push(format!("time +{seconds} s"));
    }

    /// Compares every dev account and the reserve (wallet, escrow balance, locked, score).
    pub async fn compare_accounts(&self) {
        let mut who: Vec<(String, Address)> = (0..10).map(|i| (format!("account {i}"), addr(i))).collect();
        who.push(("the reserve (kitty)".into(), KITTY));
        for (name, a) in who {
            let e = self.evm.account(&a).await.expect("PoCo account").account;
            let c = self.core.account(&a);
            let pair = |f: &str, x: &Nrlc, y: &Nrlc| {
                assert_eq!(x, y, "{name} {f}: core {x:?}, PoCo {y:?}\n{}", self.log.join("\n"));
            };
            pair("wallet", &c.wallet, &e.wallet);
            pair("escrow balance", &c.balance, &e.balance);
            pair("locked", &c.locked, &e.locked);
            assert_eq!(c.score, e.score, "{name} score\n{}", self.log.join("\n"));
        }
    }

    pub async fn compare_deal(&self, dealid: B256) {
        let e = self.evm.deal(&dealid).await.expect("PoCo deal").deal;
        let mut c = self.core.deals.get(&dealid).cloned().expect("core deal");
        // PoCo keeps no order hashes in the deal (they are in its OrdersMatched event).
        c.app_order_hash = B256::ZERO;
        c.dataset_order_hash = B256::ZERO;
        c.workerpool_order_hash = B256::ZERO;
        c.request_order_hash = B256::ZERO;
        assert_eq!(c, e, "deal {dealid}\n{}", self.log.join("\n"));
    }

    pub async fn compare_task(&self, taskid: B256) {
        let e = self.evm.task(&taskid).await.expect("PoCo task").task;
        let mut c = self.core.tasks.get(&taskid).cloned().expect("core task");
        // PoCo keeps its consensus groups private.
        c.groups.clear();
        c.total = U256::ZERO;
        assert_eq!(c, e, "task {taskid}\n{}", self.log.join("\n"));
    }

    pub async fn compare_consumed(&self, hashes: &[B256]) {
        for h in hashes {
            let e = self.evm.consumed(h).await.expect("PoCo consumed");
            assert_eq!(self.core.consumed(h), e, "consumed of {h}");
        }
    }

    /// Everything at once.
    pub async fn compare_all(&self, deals: &[B256], tasks: &[B256]) {
        self.compare_accounts().await;
        for d in deals {
            self.compare_deal(*d).await;
        }
        for t in tasks {
            self.compare_task(*t).await;
        }
        let total = self.core.total_rlc().expect("total");
        let mut evm_total = U256::ZERO;
        for i in 0..10 {
            let a = self.evm.account(&addr(i)).await.expect("account").account;
            evm_total += a.wallet.0 + a.balance.0 + a.locked.0;
        }
        evm_total += self.evm.account(&KITTY).await.expect("kitty").account.locked.0;
        assert_eq!(total.0, evm_total, "RLC in all accounts");
    }
}

/// Events both ledgers emit. Asset creation names an address each ledger picks differently.
fn comparable(e: &Event) -> bool {
    !matches!(e, Event::AppCreated { .. } | Event::DatasetCreated { .. } | Event::WorkerpoolCreated { .. })
}

pub fn call_name(c: &Call) -> String {
    let s = format!("{c:?}");
    s.split([' ', '{', '(']).next().unwrap_or("?").to_string()
}

/// A world with an app, a dataset and a workerpool registered and the requester, pool owner and
/// workers funded in the escrow.
pub struct World {
    pub app: Address,
    pub dataset: Address,
    pub pool: Address,
}

pub const PRICE_APP: u64 = 3_000;
pub const PRICE_DATASET: u64 = 2_000;
pub const PRICE_POOL: u64 = 1_000_000_000;

pub async fn world(t: &mut Twin) -> World {
    let app = t
        .create(
            DEV,
            Call::CreateApp {
                name: "hello".into(),
                app_type: "DOCKER".into(),
                multiaddr: "registry.example/hello:1".into(),
                checksum: B256::repeat_byte(0x11),
                mrenclave: String::new(),
            },
        )
        .await;
    let dataset = t
        .create(
            OWNER,
            Call::CreateDataset { name: "data".into(), multiaddr: "/ipfs/x".into(), checksum: B256::repeat_byte(0x22) },
        )
        .await;
    let pool = t.create(POOL, Call::CreateWorkerpool { description: "pool".into() }).await;
    let rlc = |n: u64| Nrlc(U256::from(n) * U256::from(1_000_000_000u64));
    for who in [REQUESTER, POOL, OTHER].into_iter().chain(WORKERS) {
        t.ok(who, Call::Deposit { amount: rlc(1_000) }).await;
    }
    World { app, dataset, pool }
}

/// Orders for a deal (volume 1 each, trust 1, category 0, no tag): tweak them, then [`sign`].
pub struct Orders {
    pub app: AppOrder,
    pub dataset: Option<DatasetOrder>,
    pub pool: WorkerpoolOrder,
    pub request: RequestOrder,
}

pub fn orders(w: &World, salt: u8, with_dataset: bool) -> Orders {
    let s = |k: u8| B256::repeat_byte(salt ^ k);
    Orders {
        app: AppOrder {
            app: w.app,
            appprice: U256::from(PRICE_APP),
            volume: U256::from(10),
            tag: B256::ZERO,
            datasetrestrict: Address::ZERO,
            workerpoolrestrict: Address::ZERO,
            requesterrestrict: Address::ZERO,
            salt: s(1),
        },
        dataset: with_dataset.then(|| DatasetOrder {
            dataset: w.dataset,
            datasetprice: U256::from(PRICE_DATASET),
            volume: U256::from(10),
            tag: B256::ZERO,
            apprestrict: Address::ZERO,
            workerpoolrestrict: Address::ZERO,
            requesterrestrict: Address::ZERO,
            salt: s(2),
        }),
        pool: WorkerpoolOrder {
            workerpool: w.pool,
            workerpoolprice: U256::from(PRICE_POOL),
            volume: U256::from(10),
            tag: B256::ZERO,
            category: U256::ZERO,
            trust: U256::from(10),
            apprestrict: Address::ZERO,
            datasetrestrict: Address::ZERO,
            requesterrestrict: Address::ZERO,
            salt: s(3),
        },
        request: RequestOrder {
            app: w.app,
            appmaxprice: U256::from(PRICE_APP),
            dataset: if with_dataset { w.dataset } else { Address::ZERO },
            datasetmaxprice: U256::from(if with_dataset { PRICE_DATASET } else { 0 }),
            workerpool: Address::ZERO,
            workerpoolmaxprice: U256::from(PRICE_POOL),
            requester: addr(REQUESTER),
            volume: U256::from(1),
            tag: B256::ZERO,
            category: U256::ZERO,
            trust: U256::from(1),
            beneficiary: addr(REQUESTER),
            callback: Address::ZERO,
            params: "{\"iexec_args\":\"hi\"}".into(),
            salt: s(4),
        },
    }
}

/// The matchOrders call with each order signed by its owner (the request by `requester`).
pub fn sign(o: &Orders, domain: &Domain, requester: usize) -> Call {
    Call::MatchOrders {
        app_order: Signed::new(o.app.clone(), &key(DEV), domain),
        dataset_order: o.dataset.clone().map(|d| Signed::new(d, &key(OWNER), domain)),
        workerpool_order: Signed::new(o.pool.clone(), &key(POOL), domain),
        request_order: Signed::new(o.request.clone(), &key(requester), domain),
    }
}

pub fn task_id(dealid: B256, idx: u64) -> B256 {
    veil_core::state::task_id(&dealid, U256::from(idx))
}

pub fn authorization(worker: &Address, taskid: &B256, enclave: &Address) -> veil_core::Signature {
    key(POOL).sign_message_hash(&veil_core::tx::authorization_hash(worker, taskid, enclave))
}

pub fn contribute(worker: usize, taskid: B256, digest: B256) -> Call {
    let w = addr(worker);
    Call::Contribute {
        taskid,
        result_hash: veil_core::tx::result_hash(&taskid, &digest),
        result_seal: veil_core::tx::result_seal(&w, &taskid, &digest),
        enclave_challenge: Address::ZERO,
        enclave_sign: None,
        authorization_sign: authorization(&w, &taskid, &Address::ZERO),
    }
}

pub fn reveal(taskid: B256, digest: B256) -> Call {
    Call::Reveal { taskid, result_digest: digest }
}

pub fn finalize(taskid: B256) -> Call {
    Call::Finalize { taskid, results: b"{\"storage\":\"veil\"}".to_vec().into(), results_callback: Default::default() }
}
