//! Workerpool and execution commands: `veil scheduler`, `veil worker`, `veil workerpool publish`,
//! `veil app publish`, `veil run`, `veil result get`.

use crate::chain_cmd::{Conn, SignerArgs, parse_amount, runtime};
use crate::cli_io::{emit, veil_home};
use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::json;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use veil_core::state::TaskStatus;
use veil_core::tx::AnyOrder;
use veil_core::{Address, AppOrder, B256, U256, WorkerpoolOrder};
use veil_sdk::flows::RunProgress;

#[derive(Args)]
pub struct SchedulerArgs {
    /// The workerpool this scheduler runs (its key must own it).
    #[arg(long)]
    workerpool: Address,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1:8648")]
    listen: SocketAddr,
    /// Seconds of silence after which a worker's assignments go to another worker.
    #[arg(long, default_value_t = 10)]
    worker_timeout: u64,
    /// The SMS keeping TEE tasks' enclave challenges (default: the node's embedded SMS).
    #[arg(long, env = "VEIL_SMS")]
    sms: Option<String>,
    /// Where clients reach this scheduler's API (iExec's workerpool API for `iexec task debug`),
    /// announced to the node for iExec's compass (default: http://LISTEN).
    #[arg(long)]
    api_url: Option<String>,
    #[command(flatten)]
    signer: SignerArgs,
    #[command(flatten)]
    conn: Conn,
}

pub fn scheduler(a: SchedulerArgs, json: bool) -> Result<()> {
    crate::logging(json);
    let key = a.signer.key()?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let ledger = crate::chain_cmd::service_ledger(&a.conn).await?;
        let cfg = veil_pool::SchedulerConfig {
            workerpool: a.workerpool,
            key,
            data_dir: a.data_dir.unwrap_or_else(|| veil_home().join(format!("scheduler-{}", a.workerpool))),
            worker_timeout: Duration::from_secs(a.worker_timeout),
            sms: a.sms.clone().unwrap_or_else(|| a.conn.node.clone()).trim_end_matches('/').to_string(),
        };
        let s = veil_pool::Scheduler::open(cfg, ledger).await?;
        tokio::spawn(s.clone().follow());
        tokio::spawn(s.clone().watch());
        let listener =
            tokio::net::TcpListener::bind(a.listen).await.with_context(|| format!("cannot listen on {}", a.listen))?;
        let url = format!("http://{}", listener.local_addr()?);
        let api_url = a.api_url.clone().unwrap_or_else(|| url.clone());
        if let Err(e) = s.announce_api(&a.conn.node, &api_url).await {
            tracing::warn!("iExec compass: {e} (`iexec task debug` cannot find this pool until it is accepted)");
        }
        tokio::spawn(s.clone().announce_forever(a.conn.node.clone(), api_url));
        if json {
            println!("{}", json!({ "ready": true, "url": url, "workerpool": a.workerpool }));
        } else {
            println!("veil scheduler for workerpool {} on {url}", a.workerpool);
        }
        let _ = std::io::stdout().flush();
        axum::serve(veil_node::node::nodelay(listener), veil_pool::http::router(s)).await?;
        Ok(())
    })
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum TeeKind {
    Sim,
    Tdx,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Args)]
pub struct WorkerArgs {
    /// The scheduler's URL.
    #[arg(long, env = "VEIL_SCHEDULER")]
    scheduler: String,
    /// Tasks run at once.
    #[arg(long, default_value_t = 1)]
    slots: u32,
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Memory limit of an app, MiB.
    #[arg(long, default_value_t = 2048)]
    memory_limit_mb: u64,
    /// Largest app output (IEXEC_OUT) uploaded as a result, MiB; larger ones fail the task.
    #[arg(long, default_value_t = 100)]
    max_result_mb: u64,
    /// Where results are stored (default: the node's embedded storage).
    #[arg(long, env = "VEIL_STORAGE")]
    storage: Option<String>,
    /// Whether image apps may reach the network (iExec's apps send email and call APIs); `off`
    /// gives each container a network namespace with only loopback.
    #[arg(long, value_enum, default_value = "on")]
    app_network: OnOff,
    /// Largest size of the image cache (unpacked images and their layers), MiB.
    #[arg(long, default_value_t = veil_pool::image::DEFAULT_CACHE >> 20)]
    image_cache_mb: u64,
    /// The enclave platform for TEE tasks: `sim` (no hardware protection) or `tdx` (this worker
    /// runs inside a TDX trust domain; quotes from configfs-tsm). The worker says at start what it
    /// found and refuses TEE tasks it cannot serve.
    #[arg(long, value_enum, default_value = "sim")]
    tee_platform: TeeKind,
    /// With `--tee-platform tdx`: the configfs-tsm report folder.
    #[arg(long, default_value = veil_tee::tdx::DEFAULT_TSM)]
    tsm_dir: PathBuf,
    /// With `--tee-platform tdx`: where RTMR3 takes extensions.
    #[arg(long, default_value = veil_tee::tdx::DEFAULT_RTMR3)]
    rtmr3: PathBuf,
    /// With `--tee-platform tdx`: Intel's collateral for this platform (dcap-qvl JSON, from your
    /// PCCS), which the SMS checks is valid; keep it fresh.
    #[arg(long)]
    tdx_collateral: Option<PathBuf>,
    /// The SMS that releases TEE tasks' secrets to enclaves (default: the node's embedded SMS).
    #[arg(long, env = "VEIL_SMS")]
    sms: Option<String>,
    #[command(flatten)]
    signer: SignerArgs,
    #[command(flatten)]
    conn: Conn,
}

pub fn worker(a: WorkerArgs, json: bool) -> Result<()> {
    crate::logging(json);
    let key = a.signer.key()?;
    let address = key.address();
    let cfg = veil_pool::WorkerConfig {
        scheduler: a.scheduler.trim_end_matches('/').to_string(),
        storage: a.storage.unwrap_or_else(|| a.conn.node.clone()),
        key,
        slots: a.slots.max(1),
        work_dir: a.work_dir.unwrap_or_else(|| veil_home().join(format!("worker-{address}"))),
        memory_limit: a.memory_limit_mb << 20,
        max_output: a.max_result_mb << 20,
        sms: a.sms.unwrap_or_else(|| a.conn.node.clone()).trim_end_matches('/').to_string(),
        enclave_program: std::env::current_exe().context("cannot find the veil program to run enclaves")?,
        app_network: a.app_network == OnOff::On,
        image_cache: a.image_cache_mb << 20,
        tee: veil_pool::tee::TeeChoice::Sim,
    };
    let mut cfg = cfg;
    if a.tee_platform == TeeKind::Tdx {
        cfg.tee = veil_pool::tee::TeeChoice::Tdx {
            tsm: a.tsm_dir.clone(),
            rtmr3: a.rtmr3.clone(),
            rtmr3_log: cfg.work_dir.join("rtmr3.log"),
            collateral: a.tdx_collateral.clone().unwrap_or_else(|| cfg.work_dir.join("tdx-collateral.json")),
        };
    }
    if json {
        println!("{}", json!({ "ready": true, "worker": address, "scheduler": cfg.scheduler }));
    } else {
        println!("veil worker {address} → scheduler {}", cfg.scheduler);
    }
    let _ = std::io::stdout().flush();
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let ledger = crate::chain_cmd::service_ledger(&a.conn).await?;
        veil_pool::Worker::new(cfg, ledger).run().await;
        Ok(())
    })
}

pub(crate) use veil_sdk::flows::salt;

#[derive(Args)]
pub struct PoolPublishArgs {
    #[arg(long)]
    workerpool: Address,
    /// Price per task (nRLC, or e.g. "0.1 RLC").
    #[arg(long, default_value = "0")]
    price: String,
    #[arg(long, default_value_t = 100)]
    volume: u64,
    #[arg(long, default_value_t = 0)]
    category: u64,
    #[arg(long, default_value_t = 1)]
    trust: u64,
    /// Tag offered (hex or names, e.g. tee,scone).
    #[arg(long, default_value = "0x0", value_parser = veil_core::tag::parse)]
    tag: B256,
    /// Keep running and publish a fresh order whenever deals use up the current one (below a
    /// quarter of its volume).
    #[arg(long)]
    keep: bool,
    #[command(flatten)]
    signer: SignerArgs,
}

pub fn workerpool_publish(a: PoolPublishArgs, conn: &Conn, json: bool) -> Result<()> {
    let z = Address::ZERO;
    let price = parse_amount(&a.price)?.0;
    let order = || WorkerpoolOrder {
        workerpool: a.workerpool,
        workerpoolprice: price,
        volume: U256::from(a.volume),
        tag: a.tag,
        category: U256::from(a.category),
        trust: U256::from(a.trust),
        apprestrict: z,
        datasetrestrict: z,
        requesterrestrict: z,
        salt: salt(),
    };
    if !a.keep {
        return publish(AnyOrder::Workerpool(order()), &a.signer, conn, json).map(|_| ());
    }
    let key = a.signer.key()?;
    runtime()?.block_on(async {
        let ledger = crate::chain_cmd::ledger(conn).await?;
        keep_pool_order(ledger.as_ref(), &conn.client(), &key, order, Some(json), None).await
    })
}

/// Keeps a workerpool order published ([`veil_sdk::flows::keep_pool_order`]). `print`: show each
/// publication (as JSON lines when `Some(true)`); `published` hears of the first one.
pub async fn keep_pool_order(
    ledger: &dyn veil_sdk::Ledger,
    c: &veil_sdk::Client,
    key: &veil_core::PrivateKey,
    order: impl Fn() -> WorkerpoolOrder,
    print: Option<bool>,
    published: Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<()> {
    let mut published = published;
    let mut on_publish = |e: &veil_core::book::BookEntry| {
        if let Some(json) = print {
            show_published(e, json);
        }
        if let Some(tell) = published.take() {
            let _ = tell.send(());
        }
    };
    Ok(veil_sdk::flows::keep_pool_order(ledger, c, key, order, &mut on_publish).await?)
}

#[derive(Args)]
pub struct AppPublishArgs {
    /// The app (default: the one `veil app deploy` deployed from this folder).
    #[arg(long)]
    app: Option<Address>,
    #[arg(long, default_value = "0")]
    price: String,
    #[arg(long, default_value_t = 1000)]
    volume: u64,
    #[arg(long, default_value = "0x0", value_parser = veil_core::tag::parse)]
    tag: B256,
    #[command(flatten)]
    signer: SignerArgs,
}

pub fn app_publish(a: AppPublishArgs, conn: &Conn, json: bool) -> Result<()> {
    let z = Address::ZERO;
    let o = AppOrder {
        app: crate::app_cmd::app_or_deployed(a.app, conn)?,
        appprice: parse_amount(&a.price)?.0,
        volume: U256::from(a.volume),
        tag: a.tag,
        datasetrestrict: z,
        workerpoolrestrict: z,
        requesterrestrict: z,
        salt: salt(),
    };
    publish(AnyOrder::App(o), &a.signer, conn, json).map(|_| ())
}

/// Signs and publishes `order`; prints it and returns its hash.
fn publish(order: AnyOrder, signer: &SignerArgs, conn: &Conn, json: bool) -> Result<B256> {
    let key = signer.key()?;
    runtime()?.block_on(publish_async(&conn.client(), order, &key, json))
}

async fn publish_async(c: &veil_sdk::Client, order: AnyOrder, key: &veil_core::PrivateKey, json: bool) -> Result<B256> {
    let e = veil_sdk::flows::publish(c, key, order).await?;
    show_published(&e, json);
    Ok(e.order_hash)
}

/// One line per order, so `--keep --json` is a stream of JSON lines.
fn show_published(e: &veil_core::book::BookEntry, json: bool) {
    if json {
        println!("{}", serde_json::to_string(e).unwrap_or_default());
    } else {
        println!("{} order published: {} (volume {})", e.kind, e.order_hash, e.remaining);
    }
    let _ = std::io::Write::flush(&mut std::io::stdout());
}

#[derive(Args)]
pub struct RunArgs {
    /// The app to run (default: the one `veil app deploy` deployed from this folder).
    pub app: Option<Address>,
    #[arg(long)]
    pub dataset: Option<Address>,
    /// Arguments for the app.
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub args: String,
    /// Input file URL (repeat for several).
    #[arg(long = "input-file")]
    pub input_files: Vec<String>,
    #[arg(long, default_value_t = 0)]
    pub trust: u64,
    #[arg(long, default_value_t = 0)]
    pub category: u64,
    #[arg(long, default_value_t = 1)]
    pub volume: u64,
    /// Follow the tasks until they end (the default; kept for iExec familiarity).
    #[arg(long)]
    pub watch: bool,
    /// Return once the deal is made, without following its tasks.
    #[arg(long, conflicts_with = "watch")]
    pub no_watch: bool,
    /// Give up following after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Run in an enclave (TEE tag): needed for protected data and secrets.
    #[arg(long)]
    pub tee: bool,
    /// A requester secret for the app, as INDEX=NAME (pushed with `veil requester push-secret NAME`).
    #[arg(long = "secret", value_parser = parse_secret)]
    pub secrets: Vec<(u32, String)>,
    /// Encrypt the result for the beneficiary's key (pushed with `veil result push-key`).
    #[arg(long)]
    pub encrypt_result: bool,
    #[command(flatten)]
    pub signer: SignerArgs,
}

fn parse_secret(s: &str) -> Result<(u32, String), String> {
    let (i, name) = s.split_once('=').ok_or_else(|| format!("`{s}`: write a secret as INDEX=NAME, e.g. 1=api-key"))?;
    let i: u32 = i.parse().map_err(|_| format!("`{i}` is not a secret index (1, 2, …)"))?;
    if i == 0 || name.is_empty() {
        return Err(format!("`{s}`: indexes start at 1 and names are not empty"));
    }
    Ok((i, name.to_string()))
}

pub fn run(a: RunArgs, conn: &Conn, json: bool) -> Result<()> {
    run_deal(a, conn, json, false).map(|_| ())
}

/// Makes the deal and follows it; `quiet` prints nothing (the caller uses the returned summary).
pub fn run_deal(a: RunArgs, conn: &Conn, json: bool, quiet: bool) -> Result<serde_json::Value> {
    let key = a.signer.key()?;
    run_deal_as(a, &key, conn, json, quiet)
}

/// [`run_deal`] signed by `key`: [`veil_sdk::flows::run_deal`] on the chosen ledger, printed.
pub fn run_deal_as(
    a: RunArgs,
    key: &veil_core::PrivateKey,
    conn: &Conn,
    json: bool,
    quiet: bool,
) -> Result<serde_json::Value> {
    let json = json || quiet;
    let req = veil_sdk::flows::RunRequest {
        app: crate::app_cmd::app_or_deployed(a.app, conn)?,
        dataset: a.dataset,
        args: a.args,
        input_files: a.input_files,
        trust: a.trust,
        category: a.category,
        volume: a.volume,
        tee: a.tee,
        secrets: a.secrets,
        encrypt_result: a.encrypt_result,
        watch: !a.no_watch,
        timeout: Duration::from_secs(a.timeout),
    };
    let book = conn.client();
    let rt = tokio::runtime::Runtime::new()?;
    let mut progress = |p: RunProgress| {
        if json {
            return;
        }
        match p {
            RunProgress::Tee => {
                println!("TEE task: on this network's `sim` platform it runs in a {}", veil_tee::SIM_NOTICE)
            }
            RunProgress::DealMade { dealid, volume, workerpool } => {
                println!("deal {dealid}: {volume} task(s) on workerpool {workerpool}")
            }
            RunProgress::Task { taskid, what, elapsed } => {
                println!("  {:>8.0} ms  task {taskid}  {what}", elapsed.as_secs_f64() * 1000.0)
            }
        }
    };
    let outcome = rt.block_on(async {
        let ledger = crate::chain_cmd::ledger(conn).await?;
        Ok::<_, anyhow::Error>(veil_sdk::flows::run_deal(&*ledger, &book, key, &req, &mut progress).await?)
    })?;
    let dealid = outcome.dealid;
    if !req.watch {
        let v = json!({ "dealid": dealid, "block": outcome.block });
        if !quiet {
            emit(json, &v, &format!("deal {dealid} made"));
        }
        return Ok(v);
    }
    if !json {
        for t in &outcome.tasks {
            let at = veil_storage::cid::results_url(t.results.as_bytes(), &conn.node).unwrap_or(t.results.clone());
            println!("task {}: {}  result {at}", t.taskid, t.status);
        }
    }
    let summary = json!({ "dealid": dealid, "tasks": outcome.tasks, "ms": outcome.ms });
    if json && !quiet {
        emit(true, &summary, "");
    } else if !json {
        println!("done in {:.0} ms; fetch a result with: veil result get TASKID", outcome.ms);
    }
    let failed = outcome.tasks.iter().filter(|t| t.status != TaskStatus::Completed).count();
    if failed > 0 {
        bail!("{failed} task(s) did not complete");
    }
    Ok(summary)
}

#[derive(Args)]
pub struct ResultGetArgs {
    pub taskid: B256,
    /// Folder to unpack the result into (default: ./result-TASKID).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The beneficiary's private key (PEM), to decrypt an encrypted result.
    #[arg(long)]
    pub key: Option<PathBuf>,
}

pub fn result_get(a: ResultGetArgs, conn: &Conn, json: bool) -> Result<()> {
    let rt = runtime()?;
    let c = conn.client();
    let task = rt.block_on(c.task(&a.taskid))?.task;
    if task.status != TaskStatus::Completed {
        bail!("task {} is {}: no result yet", a.taskid, task.status);
    }
    let url = veil_storage::cid::results_url(&task.results, &conn.node).map_err(anyhow::Error::msg)?;
    let bytes = rt
        .block_on(async { reqwest::get(&url).await?.error_for_status()?.bytes().await })
        .with_context(|| format!("cannot download {url}"))?;
    let out = a.out.unwrap_or_else(|| PathBuf::from(format!("result-{}", a.taskid)));
    let encrypted = crate::tee_cmd::is_encrypted_result(&bytes);
    let plain = match (&a.key, encrypted) {
        (Some(k), true) => crate::tee_cmd::decrypt_with(&bytes, k)?,
        (None, true) => bail!("the result of {} is encrypted for its beneficiary: add --key PRIVATE_KEY.pem", a.taskid),
        (_, false) => bytes.to_vec(),
    };
    unzip_safe(&plain, &out)?;
    emit(
        json,
        &json!({ "taskid": a.taskid, "results": url, "out": out, "decrypted": encrypted }),
        &format!("result of {} unpacked into {}", a.taskid, out.display()),
    );
    Ok(())
}

/// Unpacks a result zip, refusing entries that would land outside `dest`.
pub fn unzip_safe(bytes: &[u8], dest: &std::path::Path) -> Result<()> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).context("the result is not a zip archive")?;
    std::fs::create_dir_all(dest)?;
    for i in 0..z.len() {
        let mut f = z.by_index(i)?;
        let Some(rel) = f.enclosed_name() else { bail!("unsafe entry `{}` in the result archive: refused", f.name()) };
        if f.is_symlink() {
            bail!("link `{}` in the result archive: refused", f.name());
        }
        let p = dest.join(rel);
        if f.is_dir() {
            std::fs::create_dir_all(&p)?;
            continue;
        }
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::io::copy(&mut f, &mut std::fs::File::create(&p)?)?;
    }
    Ok(())
}

/// `veil app deploy --bundle DIR`: pack, store, register with checksum and measurement.
pub fn deploy_bundle(
    dir: &std::path::Path,
    storage: Option<String>,
    args: &crate::chain_cmd::DeployArgs,
    conn: &Conn,
    json: bool,
) -> Result<()> {
    let name = (!args.name.is_empty()).then(|| args.name.clone());
    let key = args.signer.key()?;
    let bundle = crate::app_cmd::pack(dir, json)?;
    let rt = runtime()?;
    let c = rt.block_on(crate::chain_cmd::ledger(conn))?;
    let store = veil_sdk::Client::new(storage.as_deref().unwrap_or(&conn.node));
    let name = name.unwrap_or_else(|| bundle.manifest.name.clone());
    let (checksum, measurement) = (bundle.checksum(), bundle.measurement());
    let d =
        rt.block_on(veil_sdk::flows::deploy_bundle(&*c, &store, &key, name, bundle.bytes, checksum, measurement))?;
    crate::app_cmd::remember_deployment(dir, d.app, &conn.node)?;
    emit(
        json,
        &json!({ "address": d.app, "app": d.app, "multiaddr": d.multiaddr, "checksum": d.checksum, "measurement": d.measurement, "block": d.block }),
        &format!(
            "app {} deployed\n  bundle       {}\n  checksum     {}\n  measurement  {}",
            d.app, d.multiaddr, d.checksum, d.measurement
        ),
    );
    Ok(())
}
