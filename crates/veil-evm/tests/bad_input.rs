//! Bad input and failures on the EVM backend: each gives one error naming the cause and what to
//! do, and nothing is sent (a refused call is estimated first, so the chain does not change).

mod common;

use alloy::primitives::{Address, U256};
use common::*;
use veil_core::{Call, Nrlc, PrivateKey};
use veil_evm::EvmLedger;
use veil_sdk::Ledger;

fn check(what: &str, got: String, needles: &[&str]) {
    for n in needles {
        assert!(got.contains(n), "{what}: `{got}` should say `{n}`");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_input_is_one_clear_error() {
    let t = start().await;
    let url = t.evm.rpc.url.clone();
    let hub = t.evm.deployment.hub;
    let err = |r: Result<EvmLedger, veil_evm::EvmError>| r.err().map(|e| e.to_string()).unwrap_or_default();

    check(
        "unreachable RPC",
        err(EvmLedger::connect("http://127.0.0.1:1", Some(hub)).await),
        &["cannot reach", "veil evm anvil"],
    );
    check("not a URL", err(EvmLedger::connect("not a url", Some(hub)).await), &["not an RPC URL"]);
    check(
        "no code at the hub",
        err(EvmLedger::connect(&url, Some(Address::repeat_byte(1))).await),
        &["no contract at", "--hub"],
    );
    let rlc = t.evm.deployment.rlc;
    check("a contract that is not PoCo", err(EvmLedger::connect(&url, Some(rlc)).await), &["not iExec's PoCo hub"]);
    check("no hub on an unknown chain", err(EvmLedger::connect(&url, None).await), &["no known PoCo hub", "--hub"]);

    let head = t.evm.rpc.latest().await.unwrap().0;
    let stranger = PrivateKey::from_seed("no ETH, no RLC");
    let r = t.evm.send(&stranger, Call::CreateWorkerpool { description: "x".into() }).await;
    check("a sender without ETH", r.err().map(|e| e.to_string()).unwrap_or_default(), &["no ETH for gas"]);
    let rich = key(OTHER);
    let amount = Nrlc(U256::from(10u64).pow(U256::from(30u64)));
    let r = t.evm.send(&rich, Call::Deposit { amount }).await;
    check(
        "more RLC than the wallet holds",
        r.err().map(|e| e.to_string()).unwrap_or_default(),
        &["PoCo refused deposit", "wallet holds"],
    );
    let r = t.evm.send(&rich, Call::Withdraw { amount }).await;
    check(
        "more than the escrow",
        r.err().map(|e| e.to_string()).unwrap_or_default(),
        &["PoCo refused withdraw", "escrow balance"],
    );
    let r = t.evm.send(&rich, Call::Claim { taskid: Default::default() }).await;
    check(
        "claim of an unknown task",
        r.err().map(|e| e.to_string()).unwrap_or_default(),
        &["PoCo refused claim", "final deadline"],
    );
    assert_eq!(t.evm.rpc.latest().await.unwrap().0, head, "refused calls are never mined");
    check(
        "unknown deal",
        t.evm.deal(&Default::default()).await.err().map(|e| e.to_string()).unwrap_or_default(),
        &["no deal"],
    );
}

/// Two independent clients (two processes in real life) send from one account at once: nonce
/// conflicts are resolved by signing again with the chain's next nonce, and every call lands once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_of_one_account_all_land() {
    let t = start().await;
    let other = EvmLedger::connect(&t.evm.rpc.url, Some(t.evm.deployment.hub)).await.unwrap();
    let k = key(OTHER);
    let before = t.evm.account(&k.address()).await.unwrap().account;
    let amount = Nrlc(U256::from(1_000u64));
    let calls = || (0..10).map(|_| Call::Deposit { amount }).collect::<Vec<_>>();
    let (a, b) = tokio::join!(t.evm.send_batch(&k, calls()), other.send_batch(&k, calls()));
    for r in a.iter().chain(&b) {
        assert!(r.is_ok(), "{r:?}");
    }
    let after = t.evm.account(&k.address()).await.unwrap().account;
    assert_eq!(after.balance.0 - before.balance.0, U256::from(20_000u64), "every deposit landed once");
    assert_eq!(after.nonce, before.nonce + 20);
}

/// The node drops pending transactions (mempool eviction, a restart that lost its pool): the sender
/// notices the node no longer knows them, sends the same signed bytes again, and each lands once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_transactions_are_sent_again_and_land_once() {
    let t = start().await;
    let k = key(OTHER);
    let before = t.evm.account(&k.address()).await.unwrap().account;
    t.evm.rpc.raw("evm_setAutomine", serde_json::json!([false])).await.unwrap();
    let evm = t.evm.clone();
    let amount = Nrlc(U256::from(1_000u64));
    let calls = (0..3).map(|_| Call::Deposit { amount }).collect::<Vec<_>>();
    let sender = tokio::spawn(async move { evm.send_batch(&k, calls).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    t.evm.rpc.raw("anvil_dropAllTransactions", serde_json::json!([])).await.unwrap();
    t.evm.rpc.raw("evm_setAutomine", serde_json::json!([true])).await.unwrap();
    let answers =
        tokio::time::timeout(std::time::Duration::from_secs(30), sender).await.expect("the sends finish").unwrap();
    for r in &answers {
        assert!(r.is_ok(), "{r:?}");
    }
    let after = t.evm.account(&key(OTHER).address()).await.unwrap().account;
    assert_eq!(after.balance.0 - before.balance.0, U256::from(3_000u64), "each deposit landed once");
}
