//! `veil data …`: protected data (DataProtector semantics) and the storage and SMS services.

use crate::chain_cmd::{Conn, SignerArgs, runtime};
use crate::cli_io::{emit, veil_home, write_file};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use veil_core::book::BookQuery;
use veil_core::orders::OrderKind;
use veil_core::tx::AnyOrder;
use veil_core::{Address, B256, Call, DatasetOrder, U256};
use veil_sdk::Client;

#[derive(Args, Clone)]
pub struct Services {
    /// Blob storage URL (default: the node's embedded storage).
    #[arg(long, env = "VEIL_STORAGE")]
    pub storage: Option<String>,
    /// SMS URL (default: the node's embedded SMS).
    #[arg(long, env = "VEIL_SMS")]
    pub sms: Option<String>,
}

impl Services {
    fn storage(&self, conn: &Conn) -> Client {
        Client::new(self.storage.as_deref().unwrap_or(&conn.node))
    }

    fn sms(&self, conn: &Conn) -> Client {
        Client::new(self.sms.as_deref().unwrap_or(&conn.node))
    }
}

#[derive(Subcommand)]
pub enum DataCmd {
    /// Run an app on protected data in an enclave, wait, download and decrypt the result, print it.
    Process(crate::tee_cmd::ProcessArgs),
    /// Encrypt a file (or a JSON object with --json FILE), store it, register it, give its key to the SMS.
    Protect(ProtectArgs),
    /// Let an app and a requester use a dataset: sign and publish a TEE dataset order.
    Grant {
        #[arg(long)]
        dataset: Address,
        /// The app allowed, or `any`.
        #[arg(long, default_value = "any")]
        app: String,
        /// The requester allowed, or `any`.
        #[arg(long, default_value = "any")]
        requester: String,
        /// Price per use (nRLC, or e.g. "0.1 RLC").
        #[arg(long, default_value = "0")]
        price: String,
        /// How many times it may be used.
        #[arg(long, default_value_t = 1)]
        access_count: u64,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Withdraw grants: cancel the dataset's orders on the ledger.
    Revoke {
        #[arg(long)]
        dataset: Address,
        /// One grant, by order hash.
        #[arg(long, conflicts_with = "all")]
        order: Option<B256>,
        /// Every grant of the dataset in the orderbook.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// List a dataset's grants with their remaining uses.
    Access {
        #[arg(long)]
        dataset: Address,
    },
    /// List protected data of an owner (default: the signer).
    List {
        #[arg(long)]
        owner: Option<Address>,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Give a dataset to another owner.
    Transfer {
        #[arg(long)]
        dataset: Address,
        #[arg(long)]
        to: Address,
        #[command(flatten)]
        signer: SignerArgs,
    },
}

#[derive(Args)]
pub struct ProtectArgs {
    /// The file to protect.
    #[arg(required_unless_present = "json_object")]
    pub file: Option<PathBuf>,
    /// Protect this JSON object as a DataProtector payload (written `--json FILE`).
    #[arg(long, hide = true)]
    pub json_object: Option<PathBuf>,
    /// The dataset's name on the ledger.
    #[arg(long)]
    pub name: String,
    /// Also keep a copy of the key here (mode 0600). By default only the SMS holds it.
    #[arg(long)]
    pub key_out: Option<PathBuf>,
    #[command(flatten)]
    pub services: Services,
    #[command(flatten)]
    pub signer: SignerArgs,
}

/// `veil data protect --json FILE` names a JSON object to protect, while `--json` elsewhere asks for
/// JSON output; this turns the first `--json FILE` after `data protect` into `--json-object FILE`.
pub fn rewrite_args(mut args: Vec<String>) -> Vec<String> {
    let Some(p) = args.windows(2).position(|w| w[0] == "data" && w[1] == "protect") else { return args };
    if let Some(i) =
        (p + 2..args.len().saturating_sub(1)).find(|&i| args[i] == "--json" && !args[i + 1].starts_with('-'))
    {
        args[i] = "--json-object".into();
    }
    args
}

pub fn run(cmd: DataCmd, conn: &Conn, json: bool) -> Result<()> {
    let rt = runtime()?;
    let c = conn.client();
    match cmd {
        DataCmd::Protect(a) => protect(a, conn, json),
        DataCmd::Process(a) => crate::tee_cmd::process(a, conn, json),
        DataCmd::Grant { dataset, app, requester, price, access_count, signer } => {
            let key = signer.key()?;
            let any = |s: &str, what: &str| -> Result<Address> {
                if s.eq_ignore_ascii_case("any") {
                    Ok(Address::ZERO)
                } else {
                    s.parse().with_context(|| format!("--{what} must be an address or `any`"))
                }
            };
            if access_count == 0 {
                bail!("--access-count must be at least 1");
            }
            let mut salt = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut salt);
            let order = DatasetOrder {
                dataset,
                datasetprice: crate::chain_cmd::parse_amount(&price)?.0,
                volume: U256::from(access_count),
                tag: veil_core::tag::parse("tee").map_err(anyhow::Error::msg)?,
                apprestrict: any(&app, "app")?,
                workerpoolrestrict: Address::ZERO,
                requesterrestrict: any(&requester, "requester")?,
                salt: B256::from(salt),
            };
            let domain = rt.block_on(crate::chain_cmd::ledger(conn))?;
            let domain = rt.block_on(domain.chain())?.domain;
            let any_order = AnyOrder::Dataset(order);
            let sign = key.sign_hash(&any_order.typed_hash(&domain));
            let e = rt.block_on(c.publish(any_order, Some(sign)))?;
            let human = format!(
                "access granted on {dataset}\n  grant (order hash)  {}\n  app {app}  requester {requester}  price {price}  uses {access_count}",
                e.order_hash
            );
            emit(json, &serde_json::to_value(&e)?, &human);
            Ok(())
        }
        DataCmd::Revoke { dataset, order, all, signer } => {
            let key = signer.key()?;
            let targets: Vec<_> = match (order, all) {
                (Some(h), _) => {
                    vec![rt.block_on(c.order(&h)).with_context(|| format!("grant {h} is not in the orderbook"))?]
                }
                (None, true) => grants(&rt, &c, dataset)?,
                (None, false) => bail!("say which grant: --order HASH, or --all"),
            };
            let mut revoked = vec![];
            let l = rt.block_on(crate::chain_cmd::ledger(conn))?;
            for e in targets {
                if e.order.asset() != dataset {
                    bail!("order {} is not a grant of {dataset}", e.order_hash);
                }
                rt.block_on(l.send(&key, Call::CancelOrder { order: e.order.clone() }))?;
                revoked.push(e.order_hash);
            }
            let human = format!("{} grant(s) of {dataset} revoked on the ledger", revoked.len());
            emit(json, &json!({ "dataset": dataset, "revoked": revoked }), &human);
            Ok(())
        }
        DataCmd::Access { dataset } => {
            let g = grants(&rt, &c, dataset)?;
            let mut human = format!("{} grant(s) of {dataset}", g.len());
            for e in &g {
                if let AnyOrder::Dataset(o) = &e.order {
                    let show = |a: Address| if a == Address::ZERO { "any".to_string() } else { a.to_checksum(None) };
                    human.push_str(&format!(
                        "\n  {}  app {}  requester {}  price {}  remaining {}",
                        e.order_hash,
                        show(o.apprestrict),
                        show(o.requesterrestrict),
                        o.datasetprice,
                        e.remaining
                    ));
                }
            }
            emit(json, &serde_json::to_value(&g)?, &human);
            Ok(())
        }
        DataCmd::List { owner, signer } => {
            let owner = match owner {
                Some(o) => o,
                None => signer.key()?.address(),
            };
            let l = rt.block_on(crate::chain_cmd::ledger(conn))?;
            let list = rt.block_on(l.datasets_of(&owner))?;
            let mut human = format!("{} protected data owned by {owner}", list.len());
            for d in &list {
                human.push_str(&format!("\n  {}  {}  {}", d.address, d.asset.name, d.asset.multiaddr));
            }
            emit(json, &serde_json::to_value(&list)?, &human);
            Ok(())
        }
        DataCmd::Transfer { dataset, to, signer } => {
            let l = rt.block_on(crate::chain_cmd::ledger(conn))?;
            let r = rt.block_on(l.send(&signer.key()?, Call::TransferOwnership { asset: dataset, to }))?;
            emit(json, &serde_json::to_value(&r)?, &format!("{dataset} now belongs to {to} (block {})", r.block));
            Ok(())
        }
    }
}

/// Every dataset order of `dataset` in the orderbook.
fn grants(rt: &tokio::runtime::Runtime, c: &Client, dataset: Address) -> Result<Vec<veil_core::book::BookEntry>> {
    let mut out = vec![];
    let mut page = 0;
    loop {
        let q = BookQuery { dataset: Some(dataset), page: Some(page), page_size: Some(1000), ..Default::default() };
        let p = rt.block_on(c.orderbook(OrderKind::Dataset, &q))?;
        out.extend(p.orders);
        match p.next_page {
            Some(n) => page = n,
            None => return Ok(out),
        }
    }
}

fn protect(a: ProtectArgs, conn: &Conn, json: bool) -> Result<()> {
    let key_signer = a.signer.key()?;
    let rt = runtime()?;
    let t0 = Instant::now();
    let mut steps = vec![];
    let mut step = |name: &str, t: &mut Instant| {
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if !json {
            eprintln!("  {ms:>9.1} ms  {name}");
        }
        steps.push(json!({ "step": name, "ms": ms }));
        *t = Instant::now();
    };
    let mut t = Instant::now();
    let tmp_dir = veil_home().join("tmp");
    std::fs::create_dir_all(&tmp_dir)?;
    let enc_path = tmp_dir.join(format!("protect-{}-{}.enc", std::process::id(), t0.elapsed().as_nanos()));
    let result = (|| -> Result<serde_json::Value> {
        let (key, summary) = match (&a.file, &a.json_object) {
            (_, Some(jf)) => {
                let text = crate::cli_io::read_text(jf, "JSON file")?;
                let v: serde_json::Value =
                    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", jf.display()))?;
                let zip = veil_protect::payload::zip_json(&v)?;
                let zip_path = enc_path.with_extension("zip");
                std::fs::write(&zip_path, &zip)?;
                let r = crate::dataset_cmd::encrypt_file(&zip_path, &enc_path, json);
                let _ = std::fs::remove_file(&zip_path);
                r?
            }
            (Some(f), None) => crate::dataset_cmd::encrypt_file(f, &enc_path, json)?,
            (None, None) => bail!("give a FILE to protect, or --json FILE"),
        };
        step("encrypted (AES-256-CBC, iExec format)", &mut t);
        let (storage, sms) = (a.services.storage(conn), a.services.sms(conn));
        let ledger = rt.block_on(crate::chain_cmd::ledger(conn))?;
        let mut flow_step = |name: &str| step(name, &mut t);
        let p = rt.block_on(veil_sdk::flows::protect_encrypted(
            &*ledger,
            &storage,
            &sms,
            &key_signer,
            &a.name,
            &enc_path,
            summary.checksum,
            &key.to_base64(),
            &mut flow_step,
        ))?;
        let (dataset, blob_url, block) = (p.dataset, p.multiaddr, p.block);
        if let Some(p) = &a.key_out {
            write_file(p, key.to_base64().as_bytes(), true)?;
        }
        Ok(json!({
            "address": dataset,
            "dataset": dataset,
            "name": a.name,
            "owner": key_signer.address(),
            "multiaddr": blob_url,
            "checksum": summary.checksum_hex(),
            "plainBytes": summary.plain_bytes,
            "encryptedBytes": summary.encrypted_bytes,
            "block": block,
        }))
    })();
    let _ = std::fs::remove_file(&enc_path);
    let mut v = result?;
    let total = t0.elapsed().as_secs_f64();
    v["seconds"] = json!(total);
    v["steps"] = json!(steps);
    let human = format!(
        "protected data {}\n  name      {}\n  stored    {}\n  checksum  {}\n  {} bytes in {total:.2} s; the key is only in the SMS",
        v["address"].as_str().unwrap_or_default(),
        a.name,
        v["multiaddr"].as_str().unwrap_or_default(),
        v["checksum"].as_str().unwrap_or_default(),
        v["plainBytes"]
    );
    emit(json, &v, &human);
    Ok(())
}

/// A service's ready line: one compact JSON line (for scripts that read the first line), or text.
fn ready(json: bool, v: serde_json::Value, human: String) {
    use std::io::Write;
    if json {
        println!("{v}");
    } else {
        println!("{human}");
    }
    let _ = std::io::stdout().flush();
}

#[derive(Args)]
pub struct StorageArgs {
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1:8646")]
    listen: SocketAddr,
    /// Largest blob accepted, in bytes.
    #[arg(long, default_value_t = 16 << 30)]
    max_blob_size: u64,
}

/// `veil storage`: the blob store on its own.
pub fn storage(a: StorageArgs, json: bool) -> Result<()> {
    crate::logging(json);
    let dir = a.data_dir.unwrap_or_else(|| veil_home().join("storage"));
    let store = veil_storage::BlobStore::open(&dir, a.max_blob_size)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let listener =
            tokio::net::TcpListener::bind(a.listen).await.with_context(|| format!("cannot listen on {}", a.listen))?;
        let url = format!("http://{}", listener.local_addr()?);
        ready(
            json,
            json!({ "ready": true, "url": url, "dataDir": dir }),
            format!("veil storage on {url}  (data {})", dir.display()),
        );
        axum::serve(veil_node::node::nodelay(listener), veil_storage::http::router(Arc::new(store))).await?;
        Ok(())
    })
}

#[derive(Args)]
pub struct SmsArgs {
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1:8647")]
    listen: SocketAddr,
    /// Master key file (32 bytes; created when missing). Keep it outside the data folder in production.
    #[arg(long)]
    master_key_file: Option<PathBuf>,
    /// Development mode: accepts `sim` enclave evidence (no hardware protection).
    #[arg(long)]
    dev: bool,
    /// Real enclaves: a JSON file with `tcbPolicy` (allowedStatuses, rejectedAdvisories,
    /// allowDynamicPlatform, allowCachedKeys, allowSmt) and `tdImages` (name, mrtd, rtmr0–2 of the TD
    /// images TDX workers may run). Default: strict TCB policy, no TD image (TDX refused).
    #[arg(long)]
    tee_policy: Option<PathBuf>,
    /// A PCCS or Intel PCS base URL (e.g. https://api.trustedservices.intel.com) the SMS fetches
    /// Intel's collateral for SGX/TDX quotes from, caching it and refreshing it when stale or a day
    /// old. Stale collateral is never used.
    #[arg(long, env = "VEIL_PCCS_URL")]
    pccs_url: Option<String>,
    /// The collateral cache (default with --pccs-url: DATA_DIR/collateral). Given alone: an offline
    /// cache, used while fresh. With neither, quotes are verified with the collateral the enclave carries.
    #[arg(long)]
    collateral_cache: Option<PathBuf>,
    #[command(flatten)]
    conn: Conn,
}

/// `veil sms`: the secret management service on its own, asking the chosen ledger (the node, or
/// PoCo with --rpc) about owners, deals and tasks.
pub fn sms(a: SmsArgs, json: bool) -> Result<()> {
    crate::logging(json);
    let dir = a.data_dir.unwrap_or_else(|| veil_home().join("sms"));
    let master = a.master_key_file.unwrap_or_else(|| dir.join("master.key"));
    let rt = tokio::runtime::Runtime::new()?;
    let chosen = rt.block_on(crate::chain_cmd::ledger(&a.conn))?;
    let described = chosen.describe();
    let ledger: Arc<dyn veil_sms::LedgerLookup> = Arc::new(veil_sms::ledger::Via(chosen));
    let mut sms = veil_sms::Sms::open(&dir, &master, ledger, a.dev)?;
    if let Some(p) = &a.tee_policy {
        let bytes = std::fs::read(p).with_context(|| format!("cannot read the TEE policy {}", p.display()))?;
        let settings = veil_tee::appraise::TeeSettings::parse(&bytes)
            .map_err(|e| anyhow::anyhow!("{} is not a TEE policy: {e}", p.display()))?;
        sms.tee = settings.appraiser(a.dev);
    }
    let cache = a.collateral_cache.clone().or_else(|| a.pccs_url.as_ref().map(|_| dir.join("collateral")));
    if let Some(cache) = &cache {
        sms.collateral = Some(veil_sms::collateral::CollateralStore::open(cache, a.pccs_url.clone())?);
    }
    rt.block_on(async {
        let listener =
            tokio::net::TcpListener::bind(a.listen).await.with_context(|| format!("cannot listen on {}", a.listen))?;
        let url = format!("http://{}", listener.local_addr()?);
        let v = json!({ "ready": true, "url": url, "dataDir": dir, "node": a.conn.node, "ledger": described,
            "collateralCache": cache, "pccs": a.pccs_url });
        ready(json, v, format!("veil sms on {url}  (data {}, ledger: {described})", dir.display()));
        axum::serve(veil_node::node::nodelay(listener), veil_sms::http::router(Arc::new(sms))).await?;
        Ok(())
    })
}
