//! `veil quickstart`: the whole story on a temporary real network, one readable line per step.
//!
//! Starts the same network `veil dev` runs (node, storage, SMS in dev mode, a workerpool's
//! scheduler and worker) in a temporary folder, then goes through it as its users would: wallets,
//! protect a sample dataset, deploy a sample iApp, grant it to one requester, run a confidential
//! task, fetch and decrypt its result, and every party's RLC before and after. `--core` runs the
//! protocol rules alone, in process ([`crate::quickstart_core`]).

use crate::dev_cmd::{ChainKind, NetOptions, Network};
use crate::pool_cmd::RunArgs;
use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Instant;
use veil_core::tx::AnyOrder;
use veil_core::{Address, AppOrder, B256, Call, DatasetOrder, Nrlc, PrivateKey, U256};
use veil_sdk::{Client, Ledger, SecretKind};

#[derive(Args)]
pub struct QuickstartArgs {
    /// Only the protocol rules, in process: no network and no app (adds a replicated deal with a
    /// dishonest worker).
    #[arg(long)]
    core: bool,
    /// Keep the network running after the task (until Ctrl-C) and its folder afterwards; prints the
    /// explorer page of the task.
    #[arg(long)]
    keep: bool,
    /// The ledger: Veil's embedded one, or iExec's PoCo contracts on a local anvil.
    #[arg(long, value_enum, default_value = "embedded", conflicts_with = "core")]
    chain: ChainKind,
}

/// The protected sample: a DataProtector-style JSON object.
const SAMPLE_DATA: &str = r#"{"name": "Alice", "email": "alice@example.com", "favouriteNumber": 42}"#;

/// The sample iApp: reads the protected data (a DataProtector zip, strings Borsh-encoded) and its
/// args, writes a greeting and `computed.json`.
const SAMPLE_APP: &str = r#"import json, os, struct, sys, zipfile
i, o = os.environ["IEXEC_IN"], os.environ["IEXEC_OUT"]
fields = {}
with zipfile.ZipFile(os.path.join(i, os.environ["IEXEC_DATASET_FILENAME"])) as z:
    for n in z.namelist():
        b = z.read(n)
        if len(b) >= 4 and struct.unpack("<I", b[:4])[0] == len(b) - 4:
            fields[n] = b[4:].decode()
text = "Hello %s! %s read your protected data inside an enclave; only you can read this." % (
    fields.get("name", "?"), " ".join(sys.argv[1:]) or "An iApp")
open(os.path.join(o, "result.txt"), "w").write(text + "\n")
json.dump({"deterministic-output-path": os.path.join(o, "result.txt")}, open(os.path.join(o, "computed.json"), "w"))
"#;

const APP_PRICE_RLC: u64 = 1;
const DATASET_PRICE_RLC: u64 = 2;
const POOL_PRICE_RLC: u64 = 1;
const FUNDS_RLC: u64 = 10;

pub fn run(a: QuickstartArgs, json: bool) -> Result<()> {
    if a.core {
        return crate::quickstart_core::run(json);
    }
    veil_exec::process::ProcessRuntime::new()
        .interpreter("python3")
        .context("the sample iApp is a Python script: install python3 (or try `veil quickstart --core`)")?;
    let dir = tempfile::Builder::new().prefix("veil-quickstart-").tempdir()?;
    let mut story =
        Story { json, clock: Instant::now(), started: Instant::now(), steps: vec![], chain: a.chain, keep: a.keep };
    if !json {
        println!("Veil quickstart: a whole network on this machine, then one confidential task through it.");
    }
    let result = story.tell(dir.path());
    let dir_path = dir.path().to_path_buf();
    if a.keep {
        let _ = dir.keep();
    }
    let (mut v, running) = result?;
    v["steps"] = json!(story.steps);
    v["seconds"] = json!(story.started.elapsed().as_secs_f64());
    if a.keep {
        v["dataDir"] = json!(dir_path);
    }
    if json {
        println!("{v}");
    } else {
        println!("done in {:.2} s", story.started.elapsed().as_secs_f64());
    }
    if let Some(wait) = running {
        if !json {
            println!("Explorer: {}", v["explorer"].as_str().unwrap_or_default());
            println!("The network keeps running (folder {}); Ctrl-C stops it.", dir_path.display());
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        wait();
    }
    Ok(())
}

/// Keeps a `--keep` network up until Ctrl-C, then stops it.
type Running = Box<dyn FnOnce()>;

struct Story {
    json: bool,
    clock: Instant,
    started: Instant,
    steps: Vec<Value>,
    chain: ChainKind,
    keep: bool,
}

struct Party {
    role: &'static str,
    key: PrivateKey,
}

impl Story {
    fn step(&mut self, name: &str, text: String) {
        let ms = self.clock.elapsed().as_secs_f64() * 1000.0;
        if !self.json {
            println!("  {ms:>8.1} ms  {name:<9} {text}");
        }
        self.steps.push(json!({ "step": name, "ms": ms, "text": text }));
        self.clock = Instant::now();
    }

    fn tell(&mut self, dir: &Path) -> Result<(Value, Option<Running>)> {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let opts = NetOptions {
            dir: dir.join("network"),
            workers: 1,
            slots: 2,
            listen: "127.0.0.1:0".parse()?,
            scheduler_listen: "127.0.0.1:0".parse()?,
            pool_price: Nrlc::rlc(POOL_PRICE_RLC).0,
            chain: self.chain,
            anvil_port: 0,
            app_network: true,
        };
        let net = rt.block_on(crate::dev_cmd::start(&opts)).context("the local network did not start")?;
        let c = Client::new(&net.node);
        let l = net.ledger.as_ref();
        let ledger_text = match (&net.anvil, net.hub) {
            (Some(a), Some(hub)) => format!("iExec's PoCo on anvil {} (hub {hub}); orderbook + storage + SMS", a.url),
            _ => "node + storage + SMS".into(),
        };
        self.step(
            "network",
            format!("{ledger_text} {}, scheduler {}, 1 worker ({})", net.node, net.scheduler, veil_tee::SIM_NOTICE),
        );

        let (developer, owner, requester) = (party("app developer"), party("data owner"), party("requester"));
        rt.block_on(fund(l, net.chain.dev_key(0), [&developer.key, &owner.key, &requester.key]))?;
        if let Some(evm) = &net.evm {
            // New keys on an EVM chain also need ETH for gas: a test chain just sets it.
            for p in [&developer, &owner, &requester] {
                rt.block_on(evm.set_gas_balance(p.key.address(), U256::from(10u64).pow(U256::from(19u64))))?;
            }
        }
        for p in [&developer, &owner, &requester] {
            let file = dir.join(format!("{}.json", p.role.replace(' ', "-")));
            let doc = veil_wallet::encrypt(&p.key, b"quickstart", veil_wallet::Kdf::LIGHT)?;
            crate::cli_io::write_file(&file, doc.as_bytes(), true)?;
        }
        self.step(
            "wallets",
            format!("keystores for the app developer, data owner and requester, {FUNDS_RLC} RLC each in the escrow"),
        );
        let mut parties = vec![developer, owner, requester, Party { role: "pool owner", key: net.pool_owner() }];
        parties.extend(net.worker_keys(1).into_iter().map(|key| Party { role: "worker", key }));
        let before = rt.block_on(balances(l, &parties))?;

        let dataset = rt.block_on(protect(l, &c, &parties[1].key, dir))?;
        self.step(
            "protect",
            format!("dataset {dataset}: {SAMPLE_DATA} encrypted (AES-256-CBC), stored, key in the SMS"),
        );

        let (app, measurement) = rt.block_on(deploy(l, &c, &parties[0].key, dir))?;
        self.step(
            "deploy",
            format!("iApp {app} (Python, measurement {measurement}), TEE app order at {APP_PRICE_RLC} RLC"),
        );

        rt.block_on(grant(l, &c, &parties[1].key, dataset, app, parties[2].key.address()))?;
        self.step(
            "grant",
            format!(
                "only app {app} and requester {} may use it, {DATASET_PRICE_RLC} RLC, once",
                parties[2].key.address()
            ),
        );

        let (private_pem, public_pem) = veil_protect::result::generate_keypair(2048)?;
        rt.block_on(c.sms_push(SecretKind::ResultKey, &parties[2].key.address(), "", &public_pem, &parties[2].key))?;
        self.step("keys", "the requester's RSA-2048 result key made; public half given to the SMS".into());

        let run = run_task(&net, &parties[2].key, app, dataset)?;
        let task: B256 = run["tasks"][0]["taskid"].as_str().unwrap_or_default().parse()?;
        self.step(
            "run",
            format!("deal {}, task {task} COMPLETED in an enclave", run["dealid"].as_str().unwrap_or("?")),
        );

        let text = rt.block_on(fetch_and_decrypt(l, &task, &private_pem))?;
        self.step("result", format!("downloaded (encrypted for the requester) and decrypted: {}", text.trim_end()));

        let after = rt.block_on(balances(l, &parties))?;
        let table = self.balances(&parties, &before, &after)?;
        let v = json!({
            "network": { "node": net.node, "scheduler": net.scheduler, "workerpool": net.workerpool },
            "dataset": dataset,
            "app": app,
            "dealid": run["dealid"],
            "taskid": task,
            "result": text,
            "balances": table,
            "explorer": format!("{}/explorer/tasks/{task}", net.node),
        });
        let mut anvil = net.anvil;
        let stop = move || {
            if let Some(a) = anvil.as_mut() {
                a.stop();
            }
            rt.shutdown_background();
        };
        if self.keep {
            let wait = move || {
                let _ = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map(|r| r.block_on(tokio::signal::ctrl_c()));
                stop();
            };
            return Ok((v, Some(Box::new(wait))));
        }
        stop();
        Ok((v, None))
    }

    /// Prints the table of balances and checks that RLC moved between the parties only.
    fn balances(&mut self, parties: &[Party], before: &[Nrlc], after: &[Nrlc]) -> Result<Vec<Value>> {
        let mut rows = vec![];
        if !self.json {
            println!("  RLC of every party (wallet + escrow, free and locked):");
            println!("    {:<14} {:<42} {:>14} {:>14} {:>10}", "party", "address", "before", "after", "change");
        }
        for ((p, b), a) in parties.iter().zip(before).zip(after) {
            let change = a.0.to::<u128>() as i128 - b.0.to::<u128>() as i128;
            if !self.json {
                println!(
                    "    {:<14} {:<42} {:>14} {:>14} {:>+10.2}",
                    p.role,
                    p.key.address().to_checksum(None),
                    rlc(b.0.to::<u128>() as i128),
                    rlc(a.0.to::<u128>() as i128),
                    change as f64 / 1e9
                );
            }
            rows.push(json!({ "party": p.role, "address": p.key.address(), "before": b, "after": a, "changeNrlc": change.to_string() }));
        }
        let sum = |v: &[Nrlc]| v.iter().map(|x| x.0.to::<u128>()).sum::<u128>();
        if sum(before) != sum(after) {
            bail!("RLC is not conserved: the parties held {} nRLC before and {} after", sum(before), sum(after));
        }
        self.step(
            "balances",
            format!(
                "the requester paid {} RLC (app, dataset, workerpool); the parties hold {} RLC before and after",
                APP_PRICE_RLC + DATASET_PRICE_RLC + POOL_PRICE_RLC,
                rlc(sum(after) as i128)
            ),
        );
        Ok(rows)
    }
}

/// nRLC as RLC with two decimals, for people.
fn rlc(n: i128) -> String {
    format!("{:.2}", n as f64 / 1e9)
}

fn party(role: &'static str) -> Party {
    Party { role, key: veil_wallet::random_key() }
}

/// Dev account 0 (the faucet) moves RLC into each new party's escrow.
async fn fund<const N: usize>(l: &dyn Ledger, faucet: PrivateKey, keys: [&PrivateKey; N]) -> Result<()> {
    let amount = Nrlc::rlc(FUNDS_RLC);
    let mut calls = vec![Call::Deposit { amount: Nrlc(amount.0 * U256::from(N)) }];
    calls.extend(keys.iter().map(|k| Call::Transfer { to: k.address(), amount }));
    for r in l.send_batch(&faucet, calls).await {
        r?;
    }
    Ok(())
}

async fn balances(l: &dyn Ledger, parties: &[Party]) -> Result<Vec<Nrlc>> {
    let mut out = vec![];
    for p in parties {
        let a = l.account(&p.key.address()).await?.account;
        out.push(Nrlc(a.wallet.0 + a.balance.0 + a.locked.0));
    }
    Ok(out)
}

async fn protect(l: &dyn Ledger, c: &Client, owner: &PrivateKey, dir: &Path) -> Result<Address> {
    let value: Value = serde_json::from_str(SAMPLE_DATA)?;
    let zip = veil_protect::payload::zip_json(&value)?;
    let key = veil_protect::DatasetKey::random();
    let mut encrypted = vec![];
    let summary = veil_protect::dataset::encrypt(&key, zip.as_slice(), &mut encrypted)?;
    std::fs::write(dir.join("protected-data.enc"), &encrypted)?;
    let blob = c.upload_bytes(encrypted).await?;
    let call = Call::CreateDataset {
        name: "quickstart sample".into(),
        multiaddr: blob.url,
        checksum: B256::from(summary.checksum),
    };
    let dataset = crate::local::created(&l.send(owner, call).await?.events)?;
    c.sms_push(SecretKind::DatasetKey, &dataset, "", &key.to_base64(), owner).await?;
    Ok(dataset)
}

async fn deploy(l: &dyn Ledger, c: &Client, developer: &PrivateKey, dir: &Path) -> Result<(Address, String)> {
    let app_dir = dir.join("sample-iapp");
    std::fs::create_dir_all(&app_dir)?;
    std::fs::write(
        app_dir.join("iapp.toml"),
        "name = \"quickstart-greeter\"\nruntime = \"process\"\nentrypoint = \"app.py\"\ninterpreter = \"python3\"\n",
    )?;
    std::fs::write(app_dir.join("app.py"), SAMPLE_APP)?;
    let bundle = veil_exec::Bundle::pack(&app_dir)?;
    let measurement = format!("0x{}", hex::encode(bundle.measurement()));
    let blob = c.upload_bytes(bundle.bytes.clone()).await?;
    let call = Call::CreateApp {
        name: bundle.manifest.name.clone(),
        app_type: "VEIL".into(),
        multiaddr: blob.url,
        checksum: B256::from(bundle.checksum()),
        mrenclave: measurement.clone(),
    };
    let app = crate::local::created(&l.send(developer, call).await?.events)?;
    let z = Address::ZERO;
    let order = AppOrder {
        app,
        appprice: Nrlc::rlc(APP_PRICE_RLC).0,
        volume: U256::from(100),
        tag: B256::with_last_byte(1),
        datasetrestrict: z,
        workerpoolrestrict: z,
        requesterrestrict: z,
        salt: crate::pool_cmd::salt(),
    };
    sign_and_publish(l, c, AnyOrder::App(order), developer).await?;
    Ok((app, measurement))
}

async fn grant(
    l: &dyn Ledger,
    c: &Client,
    owner: &PrivateKey,
    dataset: Address,
    app: Address,
    requester: Address,
) -> Result<()> {
    let order = DatasetOrder {
        dataset,
        datasetprice: Nrlc::rlc(DATASET_PRICE_RLC).0,
        volume: U256::from(1),
        tag: B256::with_last_byte(1),
        apprestrict: app,
        workerpoolrestrict: Address::ZERO,
        requesterrestrict: requester,
        salt: crate::pool_cmd::salt(),
    };
    sign_and_publish(l, c, AnyOrder::Dataset(order), owner).await
}

async fn sign_and_publish(l: &dyn Ledger, c: &Client, order: AnyOrder, key: &PrivateKey) -> Result<()> {
    let domain = l.chain().await?.domain;
    let sign = key.sign_hash(&order.typed_hash(&domain));
    c.publish(order, Some(sign)).await?;
    Ok(())
}

/// `veil run --tee --dataset D --encrypt-result`, as the requester, on this network.
fn run_task(net: &Network, requester: &PrivateKey, app: Address, dataset: Address) -> Result<Value> {
    let args = RunArgs {
        app: Some(app),
        dataset: Some(dataset),
        args: "The quickstart iApp".into(),
        input_files: vec![],
        trust: 0,
        category: 0,
        volume: 1,
        watch: false,
        no_watch: false,
        timeout: 120,
        tee: true,
        secrets: vec![],
        encrypt_result: true,
        signer: crate::chain_cmd::SignerArgs { wallet: None, password_file: None, dev_account: None },
    };
    crate::pool_cmd::run_deal_as(args, requester, &net.conn(), true, true)
}

async fn fetch_and_decrypt(l: &dyn Ledger, task: &B256, private_pem: &str) -> Result<String> {
    let t = l.task(task).await?.task;
    // Records name their storage's URL; an iExec-only record has no gateway here.
    let url = veil_storage::cid::results_url(&t.results, "").map_err(anyhow::Error::msg)?;
    let bytes = reqwest::get(&url).await?.error_for_status()?.bytes().await?;
    if !crate::tee_cmd::is_encrypted_result(&bytes) {
        bail!("the result at {url} is not encrypted: the enclave should have encrypted it for the requester");
    }
    let zip = veil_protect::result::decrypt_result(&bytes, private_pem)
        .map_err(|e| anyhow::anyhow!("cannot decrypt the result: {e}"))?;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).context("the decrypted result is not a zip")?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut archive.by_name("result.txt")?, &mut text)?;
    Ok(text)
}
