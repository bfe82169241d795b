//! Load through real processes: 50 concurrent requesters make 20 deals each (1,000 paid tasks of the
//! trivial WASM app) on a pool of 4 workers. Every task completes (no deadlock, nothing stuck), and
//! RLC is conserved across every account involved, read back through the node's API.

mod common;
use common::{ok, spawn_worker};
use futures_util::StreamExt;
use serde_json::Value;
use std::collections::HashSet;
use std::time::Duration;
use veil_core::book::BookQuery;
use veil_core::events::Event;
use veil_core::orders::OrderKind;
use veil_core::state::{KITTY, task_id};
use veil_core::tx::AnyOrder;
use veil_core::{Address, B256, Call, Nrlc, PrivateKey, RequestOrder, Signed, U256};
use veil_node::dev::dev_key;
use veil_sdk::Client;

const REQUESTERS: usize = 50;
const DEALS_EACH: usize = 20;

fn addr(v: &Value) -> String {
    v["address"].as_str().unwrap().to_string()
}

async fn holdings(c: &Client, accounts: &[Address]) -> u128 {
    let mut sum = 0u128;
    for a in accounts {
        let acc = c.account(a).await.unwrap().account;
        sum += (acc.wallet.0 + acc.balance.0 + acc.locked.0).to::<u128>();
    }
    sum
}

/// One requester's deals, one after the other (each waits for its receipt); returns the task ids.
async fn deals(
    c: Client,
    key: PrivateKey,
    app: Signed<veil_core::AppOrder>,
    pool: Signed<veil_core::WorkerpoolOrder>,
) -> Vec<B256> {
    let domain = c.chain().await.unwrap().domain;
    let mut tasks = vec![];
    for i in 0..DEALS_EACH {
        let z = Address::ZERO;
        let request = RequestOrder {
            app: app.order.app,
            appmaxprice: app.order.appprice,
            dataset: z,
            datasetmaxprice: U256::ZERO,
            workerpool: z,
            workerpoolmaxprice: pool.order.workerpoolprice,
            requester: key.address(),
            volume: U256::from(1),
            tag: B256::ZERO,
            category: U256::ZERO,
            trust: U256::ZERO,
            beneficiary: key.address(),
            callback: z,
            params: format!("{{\"iexec_args\":\"deal {i}\"}}"),
            salt: B256::from(U256::from(i as u64 + 1)),
        };
        let call = Call::MatchOrders {
            app_order: app.clone(),
            dataset_order: None,
            workerpool_order: pool.clone(),
            request_order: Signed::new(request, &key, &domain),
        };
        let r = c.send(&key, call).await.expect("matchOrders under load");
        let dealid = r
            .events
            .iter()
            .find_map(|e| match e {
                Event::OrdersMatched { dealid, .. } => Some(*dealid),
                _ => None,
            })
            .expect("a deal");
        tasks.push(task_id(&dealid, U256::ZERO));
    }
    tasks
}

#[test]
fn fifty_requesters_twenty_deals_each_four_workers_every_task_completes_and_rlc_is_conserved() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let net = common::pool_network(d, &["1", "3", "5", "6", "7", "8"], "1000 RLC");
    let (url, pool, scheduler) = (net.url.clone(), net.pool.clone(), &net.scheduler);
    let _workers: Vec<_> = ["5", "6", "7", "8"]
        .iter()
        .map(|acc| spawn_worker(&scheduler.url, &url, acc, &d.join(format!("w{acc}"))))
        .collect();
    let bundle = common::wasm_app_dir(&d.join("app"));
    let app = addr(&ok(&url, &["app", "deploy", "--bundle", &bundle, "--dev-account", "1"]));
    ok(&url, &["app", "publish", "--app", &app, "--price", "0.001 RLC", "--volume", "5000", "--dev-account", "1"]);
    let pool_args = ["workerpool", "publish", "--workerpool", &pool, "--price", "0.01 RLC", "--volume", "5000"];
    ok(&url, &[&pool_args[..], &["--dev-account", "3"]].concat());

    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = Client::new(&url);
    let requesters: Vec<PrivateKey> =
        (0..REQUESTERS).map(|i| PrivateKey::from_seed(&format!("load requester {i}"))).collect();
    let accounts: Vec<Address> =
        (0..10).map(|i| dev_key(i).address()).chain(requesters.iter().map(|k| k.address())).chain([KITTY]).collect();
    let (before, app_order, pool_order) = rt.block_on(async {
        let faucet = dev_key(0);
        c.send(&faucet, Call::Deposit { amount: Nrlc::rlc(REQUESTERS as u64) }).await.unwrap();
        for k in &requesters {
            c.send(&faucet, Call::Transfer { to: k.address(), amount: Nrlc::rlc(1) }).await.unwrap();
        }
        let best = |kind| {
            let c = c.clone();
            async move { c.orderbook(kind, &BookQuery::default()).await.unwrap().orders.into_iter().next().unwrap() }
        };
        let (a, w) = (best(OrderKind::App).await, best(OrderKind::Workerpool).await);
        let (AnyOrder::App(ao), AnyOrder::Workerpool(wo)) = (a.order, w.order) else { panic!("orderbook kinds") };
        (holdings(&c, &accounts).await, Signed { order: ao, sign: a.sign }, Signed { order: wo, sign: w.sign })
    });

    let all: HashSet<B256> = rt.block_on(async {
        let from = c.chain().await.unwrap().head + 1;
        let mut events = Box::pin(c.events(from).await.unwrap());
        let lanes: Vec<_> = requesters
            .iter()
            .map(|k| tokio::spawn(deals(c.clone(), k.clone(), app_order.clone(), pool_order.clone())))
            .collect();
        let mut all = HashSet::new();
        for l in lanes {
            all.extend(l.await.unwrap());
        }
        assert_eq!(all.len(), REQUESTERS * DEALS_EACH);
        let mut pending = all.clone();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
        while !pending.is_empty() {
            let Ok(Some(b)) = tokio::time::timeout_at(deadline, events.next()).await else {
                let stuck: Vec<_> = pending.iter().take(5).collect();
                panic!("{} of {} tasks unfinished after 240 s, e.g. {stuck:?}", pending.len(), all.len());
            };
            for e in b.unwrap().receipts.iter().flat_map(|r| r.events.iter()) {
                if let Event::TaskFinalize { taskid, .. } = e {
                    pending.remove(taskid);
                }
            }
        }
        all
    });
    rt.block_on(async {
        for t in all.iter().take(50) {
            assert_eq!(c.task(t).await.unwrap().task.status.to_string(), "COMPLETED");
        }
        let after = holdings(&c, &accounts).await;
        assert_eq!(after, before, "RLC conserved across every account involved");
        let spent: u128 = {
            let mut s = 0;
            for k in &requesters {
                let a = c.account(&k.address()).await.unwrap().account;
                s += 1_000_000_000u128 - (a.wallet.0 + a.balance.0 + a.locked.0).to::<u128>();
            }
            s
        };
        assert_eq!(spent, (REQUESTERS * DEALS_EACH) as u128 * 11_000_000, "each task paid exactly once (0.011 RLC)");
    });
}
