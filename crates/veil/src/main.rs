//! # veil — the one binary
//!
//! Owns the command line: parses flags, reads files and passwords, calls the libraries, and prints
//! human or `--json` output. Protocol rules never live here: they belong to `veil-core`.

mod bench;
mod cli_io;
mod local;
mod order_cmd;
mod quickstart;
mod wallet_cmd;

use clap::{Parser, Subcommand};

const LIFECYCLE: &str = "\
Veil runs iExec's confidential-computing protocol (PoCo) in Rust.

The lifecycle, and the commands for each step:
  1. Wallets       veil wallet create | import | show
  2. Orders        veil order hash | sign   (EIP-712, byte-identical to iExec)
  3. Try it all    veil quickstart          (the whole protocol story, end to end)
  4. Measure       veil bench core

Every command takes --json for machine-readable output.";

#[derive(Parser)]
#[command(name = "veil", version, about = "Veil: iExec's confidential-computing protocol in Rust", long_about = LIFECYCLE)]
struct Cli {
    /// Print machine-readable JSON instead of human text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create, import and inspect Ethereum keystore v3 wallets.
    #[command(subcommand)]
    Wallet(wallet_cmd::WalletCmd),
    /// Hash and sign PoCo orders (app, dataset, workerpool, request).
    #[command(subcommand)]
    Order(order_cmd::OrderCmd),
    /// Run the whole protocol story once and print each step with its time.
    Quickstart(quickstart::QuickstartArgs),
    /// Measure Veil's performance.
    #[command(subcommand)]
    Bench(bench::BenchCmd),
}

fn main() {
    let cli = Cli::parse();
    let json = cli.json;
    let result = match cli.cmd {
        Cmd::Wallet(c) => wallet_cmd::run(c, json),
        Cmd::Order(c) => order_cmd::run(c, json),
        Cmd::Quickstart(a) => quickstart::run(a, json),
        Cmd::Bench(c) => bench::run(c, json),
    };
    if let Err(e) = result {
        cli_io::fail(&e, json);
    }
}
