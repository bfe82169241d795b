//! PoCo 6.1.0 deployed from iExec's package on anvil: the addresses DESIGN.md §9 measured, the
//! checks iExec's deployment makes, the dev accounts funded.

use veil_evm::anvil;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poco_deploys_from_the_package_and_answers_like_poco() {
    let bin = anvil::find_anvil(None).expect("anvil (scripts/evm-deps installs it)");
    let poco = anvil::find_poco(None).expect("PoCo package (scripts/evm-deps installs it)");
    let fixture = anvil::fixture(&bin, &poco, &mut |m| eprintln!("{m}")).await.expect("fixture");
    let d = &fixture.deployment;
    assert_eq!(format!("{:?}", d.rlc), "0x5fbdb2315678afecb367f032d93f642f64180aa3");
    assert_eq!(format!("{:?}", d.hub), "0x5fc8d32690cc91d4c39d9d3abcbd16989f875707");
    assert_eq!(d.chain_id, 31337);
    let dir = tempfile::tempdir().unwrap();
    let node = anvil::start_from_fixture(&bin, &fixture, dir.path(), 0).await.expect("anvil from the fixture");
    let ledger = veil_evm::EvmLedger::connect(&node.url, Some(d.hub)).await.expect("connect");
    assert_eq!(ledger.deployment.rlc, d.rlc);
    assert_eq!(ledger.deployment.app_registry, d.app_registry);
    for i in 1..10 {
        let a = anvil::dev_key(i).unwrap().address();
        let rlc = ledger.rlc_balance(a).await.unwrap();
        assert_eq!(
            rlc,
            alloy::primitives::U256::from(anvil::DEV_RLC) * alloy::primitives::U256::from(1_000_000_000u64),
            "account {i}"
        );
    }
}
