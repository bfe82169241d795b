//! `veil bench ledger --chain anvil`: the same matchOrders workload through the ledger trait on the
//! embedded ledger (a real node process) and on iExec's PoCo on anvil, side by side in one run;
//! then PoCo's gas per call along a standard trust-1 task and a TEE task.

use crate::bench::{BenchMarket, Stats};
use crate::cli_io::emit;
use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;
use veil_core::*;
use veil_evm::EvmLedger;
use veil_evm::anvil;
use veil_sdk::{Client, Ledger};

/// Calls sent together (pipelined) by one lane.
const BATCH: usize = 16;

/// A backend under test: its ledger and its dev keys.
struct Backend {
    name: &'static str,
    ledger: Arc<dyn Ledger>,
    key: fn(usize) -> PrivateKey,
}

fn veil_key(i: usize) -> PrivateKey {
    veil_node::dev::dev_key(i)
}

fn anvil_key(i: usize) -> PrivateKey {
    // Indexes are constants below 10.
    anvil::dev_key(i).unwrap_or_else(|_| PrivateKey::from_seed("unreachable"))
}

async fn created(l: &dyn Ledger, key: &PrivateKey, call: Call) -> Result<Address> {
    crate::local::created(&l.send(key, call).await?.events)
}

/// Registers assets and funds `lanes` requesters; returns each lane's matchOrders calls.
async fn prepare(b: &Backend, lanes: usize, per_lane: usize, tag: &str) -> Result<Vec<(PrivateKey, Vec<Call>)>> {
    let l = &*b.ledger;
    let (dev, owner, pool_owner, funder) = ((b.key)(1), (b.key)(2), (b.key)(3), (b.key)(4));
    for k in [&dev, &owner, &pool_owner, &funder] {
        l.send(k, Call::Deposit { amount: Nrlc::rlc(10_000) }).await?;
    }
    let app = created(
        l,
        &dev,
        Call::CreateApp {
            name: format!("bench {tag}"),
            app_type: "VEIL".into(),
            multiaddr: "m".into(),
            checksum: B256::ZERO,
            mrenclave: String::new(),
        },
    )
    .await?;
    let ds = Call::CreateDataset { name: format!("bench {tag}"), multiaddr: "m".into(), checksum: B256::ZERO };
    let dataset = created(l, &owner, ds).await?;
    let pool = created(l, &pool_owner, Call::CreateWorkerpool { description: format!("bench {tag}") }).await?;
    let domain = l.chain().await?.domain;
    let market = BenchMarket::new([&dev, &owner, &pool_owner], (app, dataset, pool), &domain);
    let mut out = vec![];
    for lane in 0..lanes {
        let req = PrivateKey::from_seed(&format!("veil chain bench {tag} requester {lane}"));
        l.send(&funder, Call::Transfer { to: req.address(), amount: Nrlc::rlc(100) }).await?;
        out.push((req.clone(), (0..per_lane as u64).map(|i| market.match_call(&req, i)).collect()));
    }
    Ok(out)
}

/// Sends every lane's calls (lanes in parallel, BATCH calls pipelined at a time); returns
/// (matchOrders per second, per-call latency in ms).
async fn measure(b: &Backend, lanes: Vec<(PrivateKey, Vec<Call>)>) -> Result<(f64, Vec<f64>)> {
    let total: usize = lanes.iter().map(|(_, c)| c.len()).sum();
    let t = Instant::now();
    let mut tasks = vec![];
    for (key, calls) in lanes {
        let l = b.ledger.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = vec![];
            for chunk in calls.chunks(BATCH) {
                let t = Instant::now();
                for r in l.send_batch(&key, chunk.to_vec()).await {
                    r.map_err(|e| anyhow!("matchOrders refused: {e}"))?;
                }
                let ms = t.elapsed().as_secs_f64() * 1000.0 / chunk.len() as f64;
                lat.extend(std::iter::repeat_n(ms, chunk.len()));
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut lat = vec![];
    for t in tasks {
        lat.extend(t.await??);
    }
    Ok((total as f64 / t.elapsed().as_secs_f64(), lat))
}

/// Gives the lanes' requesters ETH for gas (anvil only: `anvil_setBalance`).
async fn fund_gas(evm: &EvmLedger, lanes: &[(PrivateKey, Vec<Call>)]) -> Result<()> {
    for (k, _) in lanes {
        let addr = format!("{:?}", k.address());
        evm.rpc.raw("anvil_setBalance", json!([addr, "0x56BC75E2D63100000"])).await?;
    }
    Ok(())
}

/// PoCo's gas along a standard trust-1 task (with a dataset) and a TEE task.
async fn gas_profile(evm: &EvmLedger) -> Result<Vec<(String, u64)>> {
    let k = anvil_key;
    let (dev, owner, pool_owner, requester, worker) = (k(1), k(2), k(3), k(4), k(5));
    let mut gas = vec![];
    let mut send = async |who: &PrivateKey, name: &str, call: Call| -> Result<veil_core::block::Receipt> {
        let (r, g) = evm.send_with_gas(who, vec![call]).await.pop().context("no answer")??;
        gas.push((name.to_string(), g));
        Ok(r)
    };
    send(&requester, "deposit (RLC approveAndCall)", Call::Deposit { amount: Nrlc::rlc(100) }).await?;
    send(&worker, "deposit (RLC approveAndCall)", Call::Deposit { amount: Nrlc::rlc(100) }).await?;
    let app = crate::local::created(
        &send(
            &dev,
            "createApp",
            Call::CreateApp {
                name: "gas".into(),
                app_type: "DOCKER".into(),
                multiaddr: "registry/app:1".into(),
                checksum: B256::ZERO,
                mrenclave: String::new(),
            },
        )
        .await?
        .events,
    )?;
    let ds = Call::CreateDataset { name: "gas".into(), multiaddr: "/ipfs/x".into(), checksum: B256::ZERO };
    let dataset = crate::local::created(&send(&owner, "createDataset", ds).await?.events)?;
    let pool_call = Call::CreateWorkerpool { description: "gas".into() };
    let pool = crate::local::created(&send(&pool_owner, "createWorkerpool", pool_call).await?.events)?;
    send(&pool_owner, "deposit (RLC approveAndCall)", Call::Deposit { amount: Nrlc::rlc(100) }).await?;
    let domain = Domain { chain_id: evm.rpc.chain_id, verifying_contract: evm.deployment.hub };
    let market = BenchMarket::new([&dev, &owner, &pool_owner], (app, dataset, pool), &domain);
    let r = send(&requester, "matchOrders (with a dataset)", market.match_call(&requester, 1)).await?;
    let dealid = crate::local::dealid(&r.events)?;
    send(&pool_owner, "initialize", Call::Initialize { dealid, idx: U256::ZERO }).await?;
    let taskid = veil_core::state::task_id(&dealid, U256::ZERO);
    let digest = B256::repeat_byte(7);
    let w = worker.address();
    let auth =
        |enclave: &Address| pool_owner.sign_message_hash(&veil_core::tx::authorization_hash(&w, &taskid, enclave));
    let contribute = Call::Contribute {
        taskid,
        result_hash: veil_core::tx::result_hash(&taskid, &digest),
        result_seal: veil_core::tx::result_seal(&w, &taskid, &digest),
        enclave_challenge: Address::ZERO,
        enclave_sign: None,
        authorization_sign: auth(&Address::ZERO),
    };
    send(&worker, "contribute", contribute).await?;
    send(&worker, "reveal", Call::Reveal { taskid, result_digest: digest }).await?;
    let fin = Call::Finalize { taskid, results: b"{}".to_vec().into(), results_callback: Default::default() };
    send(&pool_owner, "finalize", fin).await?;
    // A TEE task: contributeAndFinalize with an enclave signature.
    let tee = B256::with_last_byte(0x09);
    let tee_app = {
        let mut m = BenchMarket::new([&dev, &owner, &pool_owner], (app, dataset, pool), &domain);
        m.set_tag(tee, &[&dev, &owner, &pool_owner]);
        m
    };
    let mut call = tee_app.match_call(&requester, 2);
    if let Call::MatchOrders { request_order, .. } = &mut call {
        request_order.order.tag = tee;
        *request_order = Signed::new(request_order.order.clone(), &requester, &domain);
    }
    let r = send(&requester, "matchOrders (TEE, with a dataset)", call).await?;
    let dealid = crate::local::dealid(&r.events)?;
    send(&pool_owner, "initialize", Call::Initialize { dealid, idx: U256::ZERO }).await?;
    let taskid = veil_core::state::task_id(&dealid, U256::ZERO);
    let enclave = PrivateKey::from_seed("bench enclave");
    let (rh, rs) = (veil_core::tx::result_hash(&taskid, &digest), veil_core::tx::result_seal(&w, &taskid, &digest));
    let auth = pool_owner.sign_message_hash(&veil_core::tx::authorization_hash(&w, &taskid, &enclave.address()));
    let caf = Call::ContributeAndFinalize {
        taskid,
        result_digest: digest,
        results: b"{}".to_vec().into(),
        results_callback: Default::default(),
        enclave_challenge: enclave.address(),
        enclave_sign: Some(enclave.sign_message_hash(&veil_core::tx::enclave_message(&rh, &rs))),
        authorization_sign: auth,
    };
    send(&worker, "contributeAndFinalize", caf).await?;
    Ok(gas)
}

/// iExec's own figures (DESIGN.md §9, PoCo 6.1.0 on anvil), for the table.
fn reference(name: &str) -> &'static str {
    match name {
        "matchOrders (with a dataset)" | "matchOrders (TEE, with a dataset)" => "652 k (no dataset) – 819 k",
        "initialize" => "222 k",
        "contribute" => "365–390 k",
        "reveal" => "93 k",
        "finalize" => "284–323 k",
        "contributeAndFinalize" => "490–610 k",
        "createApp" => "~600 k",
        "deposit (RLC approveAndCall)" => "~100 k",
        _ => "",
    }
}

pub fn run(n: usize, lanes: usize, runs: usize, json: bool) -> Result<()> {
    if n == 0 || lanes == 0 || runs == 0 {
        bail!("--chain-n, --concurrency and --runs must be at least 1");
    }
    if cfg!(debug_assertions) && !json {
        eprintln!(
            "warning: debug build; run `cargo run --release -p veil -- bench ledger --chain anvil` for real numbers"
        );
    }
    let lanes = lanes.min(n);
    let per_lane = n.div_ceil(lanes);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let bin = anvil::find_anvil(None)?;
    let poco = anvil::find_poco(None)?;
    let node = crate::bench_ledger::start_node()?;
    let dir = tempfile::tempdir()?;
    let (evm, _anvil) = rt.block_on(async {
        let fixture = anvil::fixture(&bin, &poco, &mut |m| eprintln!("  {m}")).await?;
        let a = anvil::start_from_fixture(&bin, &fixture, dir.path(), 0).await?;
        let evm = EvmLedger::connect(&a.url, Some(fixture.deployment.hub)).await?;
        anyhow::Ok((Arc::new(evm), a))
    })?;
    let backends = [
        Backend {
            name: "embedded ledger (veil node, HTTP, fsync)",
            ledger: Arc::new(Client::new(&node.url)),
            key: veil_key,
        },
        Backend { name: "PoCo 6.1.0 on anvil (JSON-RPC, automine)", ledger: evm.clone(), key: anvil_key },
    ];
    let mut rows = vec![];
    for (i, b) in backends.iter().enumerate() {
        let (mut rates, mut lat) = (vec![], vec![]);
        for run in 0..runs {
            let lanes_calls = rt.block_on(prepare(b, lanes, per_lane, &format!("{run}")))?;
            if i == 1 {
                rt.block_on(fund_gas(&evm, &lanes_calls))?;
            }
            let (rate, l) = rt.block_on(measure(b, lanes_calls))?;
            if !json {
                eprintln!("  {}: run {}: {rate:.0} matchOrders/s", b.name, run + 1);
            }
            rates.push(rate);
            lat.extend(l);
        }
        rows.push((b.name, Stats::of(&rates), Stats::of(&lat)));
    }
    let gas = rt.block_on(gas_profile(&evm))?;
    let mut human = format!(
        "ledger, side by side: {} matchOrders per run ({lanes} requesters in parallel, {BATCH} calls pipelined per send), {runs} runs, through the ledger trait",
        per_lane * lanes
    );
    for (name, rate, lat) in &rows {
        human.push_str(&format!("\n  {name:<44} {}   per call {}", rate.human("/s", 0), lat.human("ms", 2)));
    }
    human.push_str("\nPoCo gas per call (this run; iExec's figures from DESIGN.md §9 beside):");
    for (name, g) in &gas {
        human.push_str(&format!("\n  {name:<36} {g:>9}   {}", reference(name)));
    }
    let v = json!({
        "scenario": "ledger-side-by-side",
        "matchOrders": per_lane * lanes,
        "concurrency": lanes,
        "runs": runs,
        "backends": rows.iter().map(|(n, r, l)| json!({ "backend": n, "perSecond": r.json(), "perCallMs": l.json() })).collect::<Vec<Value>>(),
        "gas": gas.iter().map(|(n, g)| json!({ "call": n, "gas": g, "iexec": reference(n) })).collect::<Vec<Value>>(),
    });
    emit(json, &v, &human);
    Ok(())
}
