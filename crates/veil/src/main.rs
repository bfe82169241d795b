//! # veil — the one binary
//!
//! Owns the command line: parses flags, reads files and passwords, calls the libraries, and prints
//! human or `--json` output. Protocol rules never live here: they belong to `veil-core`.

mod app_cmd;
mod bench;
mod bench_chain;
mod bench_exec;
mod bench_image;
mod bench_ledger;
mod bench_protect;
mod bench_quote;
mod chain_cmd;
mod cli_io;
mod config;
mod data_cmd;
mod dataset_cmd;
mod dev_cmd;
mod evm_cmd;
mod image_cmd;
mod local;
mod node_cmd;
mod order_cmd;
mod pool_cmd;
mod progress;
mod quickstart;
mod quickstart_core;
mod quote_cmd;
mod tee_cmd;
mod wallet_cmd;

use clap::{Parser, Subcommand};

const LIFECYCLE: &str = "\
Veil runs iExec's confidential-computing protocol (PoCo) in Rust.

Try it:      veil quickstart        a whole network, one confidential task, every step timed
Develop:     veil dev               the whole network in one process (ledger, storage, SMS, workers)

The lifecycle, and the commands for each step:
  1. Wallets       veil wallet create | import | show
  2. A network     veil dev  (or each service alone: veil node | storage | sms | scheduler | worker)
  3. Money         veil account show | deposit | withdraw
  4. Build an iApp veil app init NAME --template python|node|rust-wasm
                   veil app test --args A --protected-data mock    (runs it as a worker would)
  5. Publish it    veil app deploy | veil app publish --price P [--tag tee]
  6. Protect data  veil data protect FILE --name N | grant | revoke | access | list
                   veil dataset encrypt | decrypt     (iExec's format, openssl-compatible)
  7. Run tasks     veil app run | veil run APP [--tee --dataset D --secret 1=NAME --encrypt-result]
                   veil result generate-keypair | push-key | get | decrypt
                   veil requester push-secret NAME
  8. Follow        veil deal show | veil task show | veil task debug (the app's logs, requester only)
  9. Orders        veil order hash | sign | publish | cancel | match, veil orderbook <kind>
 10. Measure       veil bench core | ledger | protect | latency | bag
 11. PoCo on EVM   veil evm anvil | deploy-poco, then any ledger command with --rpc URL --hub ADDRESS

Ledgers: Veil's own node (default, --node), or iExec's PoCo on an EVM chain (--rpc URL --hub ADDRESS).
Settings: a flag beats its environment variable (VEIL_NODE, VEIL_RPC, VEIL_WALLET, …), which
beats ./veil.toml, then $VEIL_HOME/veil.toml (default ~/.veil); `veil config` shows what applies.
Every command takes --json for machine-readable output.";

#[derive(Parser)]
#[command(name = "veil", version, about = "Veil: iExec's confidential-computing protocol in Rust", long_about = LIFECYCLE)]
struct Cli {
    /// Print machine-readable JSON instead of human text.
    #[arg(long, global = true)]
    json: bool,
    /// Use iExec's PoCo contracts on this EVM chain (JSON-RPC URL) as the ledger, instead of a Veil
    /// node [env: VEIL_RPC; `rpc` in veil.toml].
    #[arg(long, global = true, env = "VEIL_RPC", hide_env = true)]
    rpc: Option<String>,
    /// The PoCo hub on that chain (optional for chain ids 42161 and 421614: iExec's own hubs)
    /// [env: VEIL_HUB; `hub` in veil.toml].
    #[arg(long, global = true, env = "VEIL_HUB", hide_env = true)]
    hub: Option<veil_core::Address>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create, import and inspect Ethereum keystore v3 wallets.
    #[command(subcommand)]
    Wallet(wallet_cmd::WalletCmd),
    /// Hash, sign, publish, cancel and match PoCo orders.
    Order {
        #[command(subcommand)]
        cmd: order_cmd::OrderCmd,
        #[command(flatten)]
        conn: chain_cmd::Conn,
    },
    /// Run a ledger node (`veil node --dev` for a development ledger), or verify one.
    Node(node_cmd::NodeArgs),
    /// Account balances, deposits and withdrawals.
    Account {
        #[command(subcommand)]
        cmd: chain_cmd::AccountCmd,
        #[command(flatten)]
        conn: chain_cmd::Conn,
    },
    /// Apps: deploy (a bundle or a registration), publish app orders.
    #[command(subcommand)]
    App(AppCmd),
    /// Datasets: encrypt and decrypt files in iExec's format, register one on the ledger.
    #[command(subcommand)]
    Dataset(DatasetCmd),
    /// Workerpools: register one, publish its orders.
    #[command(subcommand)]
    Workerpool(PoolCmd),
    /// Run a workerpool's scheduler.
    Scheduler(pool_cmd::SchedulerArgs),
    /// Run a worker for a scheduler.
    Worker(pool_cmd::WorkerArgs),
    /// Run an app: pick orders, match a deal, follow its tasks, print where the results are.
    Run {
        #[command(flatten)]
        args: pool_cmd::RunArgs,
        #[command(flatten)]
        conn: chain_cmd::Conn,
    },
    /// Task results.
    #[command(subcommand)]
    Result(ResultCmd),
    /// Browse the orderbook: best price first, then oldest.
    Orderbook {
        #[command(flatten)]
        args: chain_cmd::OrderbookArgs,
        #[command(flatten)]
        conn: chain_cmd::Conn,
    },
    /// Protected data: protect, grant, revoke, access, list, transfer.
    Data {
        #[command(subcommand)]
        cmd: data_cmd::DataCmd,
        #[command(flatten)]
        conn: chain_cmd::Conn,
    },
    /// Run the blob storage service on its own.
    Storage(data_cmd::StorageArgs),
    /// Run the secret management service (SMS) on its own.
    Sms(data_cmd::SmsArgs),
    /// Deals.
    #[command(subcommand)]
    Deal(ShowCmd),
    /// Tasks.
    #[command(subcommand)]
    Task(TaskCmd),
    /// Requester secrets for TEE tasks.
    #[command(subcommand)]
    Requester(RequesterCmd),
    /// The enclave side of a TEE task (run by workers; request on stdin).
    #[command(hide = true)]
    Enclave,
    /// The whole local network in one process: ledger, storage, SMS, a workerpool's scheduler and workers.
    Dev(dev_cmd::DevArgs),
    /// Run the whole protocol story once and print each step with its time.
    Quickstart(quickstart::QuickstartArgs),
    /// Show the settings (node, scheduler, wallet, …) and where each comes from.
    Config,
    /// Measure Veil's performance.
    #[command(subcommand)]
    Bench(bench::BenchCmd),
    /// iExec's PoCo contracts on an EVM chain: deploy them, or start anvil with them.
    #[command(subcommand)]
    Evm(evm_cmd::EvmCmd),
    /// Real enclaves: verify SGX/TDX DCAP quotes, show an SMS's TEE policy.
    #[command(subcommand)]
    Tee(quote_cmd::TeeCmd),
}

#[derive(Subcommand)]
enum AppCmd {
    /// Create an iApp project from a template (python, node, rust-wasm).
    Init(app_cmd::InitArgs),
    /// Run the iApp in this folder here, exactly as a worker would, and show its result and logs.
    Test(app_cmd::TestArgs),
    /// Run a task of the app on the network (as `veil run`; the app defaults to this folder's).
    Run {
        #[command(flatten)]
        args: pool_cmd::RunArgs,
        #[command(flatten)]
        conn: chain_cmd::Conn,
    },
    /// Store the app's developer secret in the SMS (value from --value or standard input).
    PushSecret {
        #[command(flatten)]
        args: tee_cmd::AppPushSecretArgs,
        #[command(flatten)]
        conn: chain_cmd::Conn,
    },
    /// Register an app: the iApp in this folder (or --bundle DIR) built, packed, stored and
    /// registered; an image (--image REF, or this folder's Dockerfile built); or, with --name and
    /// --multiaddr, a registration only.
    Deploy {
        /// An iApp folder (with iapp.toml) to pack, store and register.
        #[arg(long, conflicts_with = "image")]
        bundle: Option<std::path::PathBuf>,
        /// An image app (iExec's DOCKER type): a registry reference (HOST[:PORT]/NAME:TAG or
        /// NAME@sha256:…), or a local image: oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE
        /// (stored in Veil's storage unless --push names a registry).
        #[arg(long)]
        image: Option<String>,
        /// With a local --image: push it to this registry reference (HOST[:PORT]/NAME:TAG) and
        /// register that reference.
        #[arg(long, requires = "image")]
        push: Option<String>,
        /// For a Dockerfile project: a build argument, NAME=VALUE (repeat for several).
        #[arg(long = "build-arg")]
        build_args: Vec<String>,
        /// Where to store the bundle (default: the node's embedded storage).
        #[arg(long, env = "VEIL_STORAGE")]
        storage: Option<String>,
        #[command(flatten)]
        args: chain_cmd::DeployArgs,
        #[command(flatten)]
        conn: chain_cmd::Conn,
    },
    /// Sign and publish an app order.
    Publish {
        #[command(flatten)]
        args: pool_cmd::AppPublishArgs,
        #[command(flatten)]
        conn: chain_cmd::Conn,
    },
}

#[derive(Subcommand)]
enum PoolCmd {
    /// Register a workerpool on the ledger and print its address.
    Deploy {
        #[command(flatten)]
        args: chain_cmd::DeployArgs,
        #[command(flatten)]
        conn: chain_cmd::Conn,
    },
    /// Sign and publish a workerpool order.
    Publish {
        #[command(flatten)]
        args: pool_cmd::PoolPublishArgs,
        #[command(flatten)]
        conn: chain_cmd::Conn,
    },
}

#[derive(Subcommand)]
enum ResultCmd {
    /// Download and unpack a completed task's result (decrypting it with --key when encrypted).
    Get {
        #[command(flatten)]
        args: pool_cmd::ResultGetArgs,
        #[command(flatten)]
        conn: chain_cmd::Conn,
    },
    /// Make an RSA key pair for result encryption.
    GenerateKeypair(tee_cmd::KeypairArgs),
    /// Give the SMS your result-encryption public key.
    PushKey {
        #[command(flatten)]
        args: tee_cmd::PushKeyArgs,
        #[command(flatten)]
        conn: chain_cmd::Conn,
    },
    /// Decrypt an encrypted result with your private key.
    Decrypt(tee_cmd::DecryptArgs),
}

#[derive(Subcommand)]
enum RequesterCmd {
    /// Store a named secret in the SMS for your TEE tasks (value from --value or standard input).
    PushSecret {
        #[command(flatten)]
        args: tee_cmd::PushSecretArgs,
        #[command(flatten)]
        conn: chain_cmd::Conn,
    },
}

#[derive(Subcommand)]
enum DatasetCmd {
    /// Register a dataset on the ledger and print its address.
    Deploy {
        #[command(flatten)]
        args: chain_cmd::DeployArgs,
        #[command(flatten)]
        conn: chain_cmd::Conn,
    },
    /// Encrypt a file in iExec's dataset format (AES-256-CBC, IV first) with a fresh key.
    Encrypt(dataset_cmd::EncryptArgs),
    /// Decrypt a file in iExec's dataset format.
    Decrypt(dataset_cmd::DecryptArgs),
}

#[derive(Subcommand)]
enum ShowCmd {
    /// Show it as the ledger has it.
    Show {
        id: veil_core::B256,
        #[command(flatten)]
        conn: chain_cmd::Conn,
    },
}

#[derive(Subcommand)]
enum TaskCmd {
    /// Show it as the ledger has it (and, with --scheduler, each worker's part while it runs).
    Show {
        id: veil_core::B256,
        /// The workerpool scheduler's URL: adds each replicate's status and failure cause.
        #[arg(long, env = "VEIL_SCHEDULER")]
        scheduler: Option<String>,
        #[command(flatten)]
        conn: chain_cmd::Conn,
    },
    /// The app's stdout and stderr of each run, for the task's requester only (a signed request).
    Debug {
        #[command(flatten)]
        args: chain_cmd::TaskDebugArgs,
        #[command(flatten)]
        conn: chain_cmd::Conn,
    },
}

/// Logs go to standard error; `RUST_LOG` tunes them (default: info).
pub fn logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(!json).try_init();
}

fn main() {
    let wants_json = std::env::args().any(|a| a == "--json");
    // An enclave gets everything in its request and runs with a cleared environment in the
    // worker's folder: no settings file may change (or break) it.
    let is_enclave = std::env::args().nth(1).as_deref() == Some("enclave");
    let settings = if is_enclave { vec![] } else { config::apply().unwrap_or_else(|e| cli_io::fail(&e, wants_json)) };
    let args = data_cmd::rewrite_args(std::env::args().collect());
    let node = chain_cmd::node_in_args(&args);
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) if wants_json && e.use_stderr() => {
            println!("{}", serde_json::json!({ "error": e.to_string().trim() }));
            std::process::exit(2);
        }
        Err(e) => e.exit(),
    };
    let json = cli.json;
    chain_cmd::choose_ledger(cli.rpc.filter(|r| !r.is_empty()), cli.hub, node);
    let result = match cli.cmd {
        Cmd::Wallet(c) => wallet_cmd::run(c, json),
        Cmd::Order { cmd, conn } => order_cmd::run_online(cmd, &conn, json),
        Cmd::Node(a) => node_cmd::run(a, json),
        Cmd::Account { cmd, conn } => chain_cmd::account(cmd, &conn, json),
        Cmd::App(AppCmd::Deploy { image: Some(r), push, storage, args, conn, .. }) => {
            image_cmd::deploy(&r, push.as_deref(), storage, &args, &conn, None, json)
        }
        Cmd::App(AppCmd::Deploy { bundle: Some(dir), storage, args, conn, .. }) => {
            pool_cmd::deploy_bundle(&dir, storage, &args, &conn, json)
        }
        Cmd::App(AppCmd::Deploy { bundle: None, storage, args, conn, .. })
            if args.multiaddr.is_empty() && std::path::Path::new(veil_exec::bundle::MANIFEST).is_file() =>
        {
            pool_cmd::deploy_bundle(std::path::Path::new("."), storage, &args, &conn, json)
        }
        Cmd::App(AppCmd::Deploy { bundle: None, storage, args, conn, build_args, .. })
            if args.multiaddr.is_empty() && image_cmd::is_image_project(std::path::Path::new(".")) =>
        {
            std::path::Path::new(".").canonicalize().map_err(anyhow::Error::from).and_then(|dir| {
                let r = image_cmd::build(&dir, &build_args, json)?;
                image_cmd::deploy(&r, None, storage, &args, &conn, Some(&dir), json)
            })
        }
        Cmd::App(AppCmd::Deploy { bundle: None, args, conn, .. }) => chain_cmd::deploy("app", args, &conn, json),
        Cmd::App(AppCmd::Init(a)) => app_cmd::init(a, json),
        Cmd::App(AppCmd::Test(a)) => app_cmd::test(a, json),
        Cmd::App(AppCmd::Run { args, conn }) => pool_cmd::run(args, &conn, json),
        Cmd::App(AppCmd::Publish { args, conn }) => pool_cmd::app_publish(args, &conn, json),
        Cmd::Workerpool(PoolCmd::Publish { args, conn }) => pool_cmd::workerpool_publish(args, &conn, json),
        Cmd::Scheduler(a) => pool_cmd::scheduler(a, json),
        Cmd::Worker(a) => pool_cmd::worker(a, json),
        Cmd::Run { args, conn } => pool_cmd::run(args, &conn, json),
        Cmd::Result(ResultCmd::Get { args, conn }) => pool_cmd::result_get(args, &conn, json),
        Cmd::Result(ResultCmd::GenerateKeypair(a)) => tee_cmd::generate_keypair(a, json),
        Cmd::Result(ResultCmd::PushKey { args, conn }) => tee_cmd::push_key(args, &conn, json),
        Cmd::Result(ResultCmd::Decrypt(a)) => tee_cmd::decrypt(a, json),
        Cmd::Requester(RequesterCmd::PushSecret { args, conn }) => tee_cmd::requester_push_secret(args, &conn, json),
        Cmd::App(AppCmd::PushSecret { args, conn }) => tee_cmd::app_push_secret(args, &conn, json),
        Cmd::Enclave => tee_cmd::enclave(),
        Cmd::Dev(a) => dev_cmd::run(a, json),
        Cmd::Dataset(DatasetCmd::Deploy { args, conn }) => chain_cmd::deploy("dataset", args, &conn, json),
        Cmd::Dataset(DatasetCmd::Encrypt(a)) => dataset_cmd::encrypt(a, json),
        Cmd::Dataset(DatasetCmd::Decrypt(a)) => dataset_cmd::decrypt(a, json),
        Cmd::Workerpool(PoolCmd::Deploy { args, conn }) => chain_cmd::deploy("workerpool", args, &conn, json),
        Cmd::Orderbook { args, conn } => chain_cmd::orderbook(args, &conn, json),
        Cmd::Data { cmd, conn } => data_cmd::run(cmd, &conn, json),
        Cmd::Storage(a) => data_cmd::storage(a, json),
        Cmd::Sms(a) => data_cmd::sms(a, json),
        Cmd::Deal(ShowCmd::Show { id, conn }) => chain_cmd::deal_show(id, &conn, json),
        Cmd::Task(TaskCmd::Show { id, scheduler, conn }) => chain_cmd::task_show(id, scheduler, &conn, json),
        Cmd::Task(TaskCmd::Debug { args, conn }) => chain_cmd::task_debug(args, &conn, json),
        Cmd::Quickstart(a) => quickstart::run(a, json),
        Cmd::Bench(c) => bench::run(c, json),
        Cmd::Config => config::show(&settings, json),
        Cmd::Evm(c) => evm_cmd::run(c, json),
        Cmd::Tee(c) => quote_cmd::run(c, json),
    };
    if let Err(e) = result {
        cli_io::fail(&e, json);
    }
}
