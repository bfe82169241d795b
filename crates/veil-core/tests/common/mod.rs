//! A small world for tests: funded parties, registered assets, order builders, and a `send` helper
//! that signs with the right nonce.
#![allow(dead_code)]

use veil_core::state::{Genesis, default_categories};
use veil_core::*;

pub const T0: u64 = 1_700_000_000;

pub struct World {
    pub state: State,
    pub now: u64,
    pub app_owner: PrivateKey,
    pub dataset_owner: PrivateKey,
    pub scheduler: PrivateKey,
    pub requester: PrivateKey,
    pub workers: Vec<PrivateKey>,
    pub admin: PrivateKey,
    pub app: Address,
    pub dataset: Address,
    pub pool: Address,
}

pub fn domain() -> Domain {
    Domain { chain_id: 65535, verifying_contract: Address::repeat_byte(0xee) }
}

impl World {
    pub fn new() -> World {
        let k = PrivateKey::from_seed;
        let workers: Vec<_> = (0..5).map(|i| k(&format!("worker{i}"))).collect();
        let (app_owner, dataset_owner, scheduler, requester, admin) =
            (k("app owner"), k("dataset owner"), k("scheduler"), k("requester"), k("admin"));
        let mut allocations = vec![];
        for p in [&app_owner, &dataset_owner, &scheduler, &requester, &admin].into_iter().chain(&workers) {
            allocations.push((p.address(), Nrlc::rlc(1000)));
        }
        let genesis =
            Genesis { domain: domain(), admin: admin.address(), categories: default_categories(), allocations };
        let mut w = World {
            state: State::genesis(&genesis),
            now: T0,
            app_owner,
            dataset_owner,
            scheduler,
            requester,
            workers,
            admin,
            app: Address::ZERO,
            dataset: Address::ZERO,
            pool: Address::ZERO,
        };
        for p in [w.app_owner.clone(), w.dataset_owner.clone(), w.scheduler.clone(), w.requester.clone()]
            .iter()
            .chain(w.workers.clone().iter())
        {
            w.ok(p, Call::Deposit { amount: Nrlc::rlc(100) });
        }
        let ev = w.ok(
            &w.app_owner.clone(),
            Call::CreateApp {
                name: "hello".into(),
                app_type: "VEIL".into(),
                multiaddr: "veil://app".into(),
                checksum: B256::repeat_byte(1),
                mrenclave: String::new(),
            },
        );
        w.app = match ev[0] {
            Event::AppCreated { app, .. } => app,
            _ => panic!(),
        };
        let ev = w.ok(
            &w.dataset_owner.clone(),
            Call::CreateDataset {
                name: "data".into(),
                multiaddr: "veil://data".into(),
                checksum: B256::repeat_byte(2),
            },
        );
        w.dataset = match ev[0] {
            Event::DatasetCreated { dataset, .. } => dataset,
            _ => panic!(),
        };
        let ev = w.ok(&w.scheduler.clone(), Call::CreateWorkerpool { description: "pool".into() });
        w.pool = match ev[0] {
            Event::WorkerpoolCreated { workerpool, .. } => workerpool,
            _ => panic!(),
        };
        w
    }

    pub fn tx(&self, key: &PrivateKey, call: Call) -> SignedTx {
        let nonce = self.state.account(&key.address()).nonce;
        Tx { chain_id: self.state.domain.chain_id, from: key.address(), nonce, call }.sign(key)
    }

    pub fn send(&mut self, key: &PrivateKey, call: Call) -> Result<Vec<Event>, CoreError> {
        let stx = self.tx(key, call);
        apply(&mut self.state, &stx, self.now)
    }

    pub fn ok(&mut self, key: &PrivateKey, call: Call) -> Vec<Event> {
        self.send(key, call.clone()).unwrap_or_else(|e| panic!("{call:?} failed: {e}"))
    }

    pub fn orders(&self) -> Orders {
        Orders {
            app: AppOrder {
                app: self.app,
                appprice: U256::from(3),
                volume: U256::from(10),
                tag: B256::ZERO,
                datasetrestrict: Address::ZERO,
                workerpoolrestrict: Address::ZERO,
                requesterrestrict: Address::ZERO,
                salt: B256::repeat_byte(0xa1),
            },
            dataset: Some(DatasetOrder {
                dataset: self.dataset,
                datasetprice: U256::from(2),
                volume: U256::from(10),
                tag: B256::ZERO,
                apprestrict: Address::ZERO,
                workerpoolrestrict: Address::ZERO,
                requesterrestrict: Address::ZERO,
                salt: B256::repeat_byte(0xa2),
            }),
            pool: WorkerpoolOrder {
                workerpool: self.pool,
                workerpoolprice: U256::from(1_000_000_000u64),
                volume: U256::from(10),
                tag: B256::ZERO,
                category: U256::ZERO,
                trust: U256::from(10),
                apprestrict: Address::ZERO,
                datasetrestrict: Address::ZERO,
                requesterrestrict: Address::ZERO,
                salt: B256::repeat_byte(0xa3),
            },
            request: RequestOrder {
                app: self.app,
                appmaxprice: U256::from(3),
                dataset: self.dataset,
                datasetmaxprice: U256::from(2),
                workerpool: Address::ZERO,
                workerpoolmaxprice: U256::from(1_000_000_000u64),
                requester: self.requester.address(),
                volume: U256::from(1),
                tag: B256::ZERO,
                category: U256::ZERO,
                trust: U256::ZERO,
                beneficiary: self.requester.address(),
                callback: Address::ZERO,
                params: "{\"iexec_args\":\"hi\"}".into(),
                salt: B256::repeat_byte(0xa4),
            },
        }
    }

    /// Signs the orders with their owners' keys and builds the matchOrders call.
    pub fn match_call(&self, o: &Orders) -> Call {
        let d = self.state.domain;
        Call::MatchOrders {
            app_order: Signed::new(o.app.clone(), &self.app_owner, &d),
            dataset_order: o.dataset.clone().map(|x| Signed::new(x, &self.dataset_owner, &d)),
            workerpool_order: Signed::new(o.pool.clone(), &self.scheduler, &d),
            request_order: Signed::new(o.request.clone(), &self.requester, &d),
        }
    }

    /// Matches the orders (sent by the requester) and returns the deal id.
    pub fn deal(&mut self, o: &Orders) -> B256 {
        let call = self.match_call(o);
        let ev = self.ok(&self.requester.clone(), call);
        ev.iter()
            .find_map(|e| match e {
                Event::OrdersMatched { dealid, .. } => Some(*dealid),
                _ => None,
            })
            .unwrap()
    }

    pub fn init_task(&mut self, dealid: B256, idx: u64) -> B256 {
        self.ok(&self.scheduler.clone(), Call::Initialize { dealid, idx: U256::from(idx) });
        veil_core::state::task_id(&dealid, U256::from(idx))
    }

    pub fn authorization(&self, worker: &Address, taskid: &B256, challenge: &Address) -> Signature {
        self.scheduler.sign_message_hash(&veil_core::tx::authorization_hash(worker, taskid, challenge))
    }

    pub fn contribute_call(&self, worker: &PrivateKey, taskid: B256, digest: B256) -> Call {
        let w = worker.address();
        Call::Contribute {
            taskid,
            result_hash: veil_core::tx::result_hash(&taskid, &digest),
            result_seal: veil_core::tx::result_seal(&w, &taskid, &digest),
            enclave_challenge: Address::ZERO,
            enclave_sign: None,
            authorization_sign: self.authorization(&w, &taskid, &Address::ZERO),
        }
    }

    pub fn balance(&self, k: &PrivateKey) -> (Nrlc, Nrlc) {
        let a = self.state.account(&k.address());
        (a.balance, a.locked)
    }

    pub fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(&self.state).unwrap()
    }
}

#[derive(Clone, Debug)]
pub struct Orders {
    pub app: AppOrder,
    pub dataset: Option<DatasetOrder>,
    pub pool: WorkerpoolOrder,
    pub request: RequestOrder,
}
