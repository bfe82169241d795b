//! `veil order hash | sign`: iExec-identical EIP-712 hashes and signatures of order files.

use crate::chain_cmd::{Conn, SignerArgs, runtime};
use crate::cli_io::{emit, read_text, write_file};
use crate::wallet_cmd::load_key;
use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use veil_core::eip712::{self, Domain};
use veil_core::orders::parse_order;
use veil_core::tx::AnyOrder;
use veil_core::{
    Address, AppOrder, B256, Call, DatasetOrder, Order, OrderKind, RequestOrder, Signature, Signed, WorkerpoolOrder,
    crypto,
};

#[derive(Subcommand)]
pub enum OrderCmd {
    /// Print an order's EIP-712 struct hash and typed hash (the order hash iExec uses).
    Hash {
        /// app, dataset, workerpool or request.
        kind: OrderKind,
        /// JSON order file with PoCo's field names.
        file: PathBuf,
        #[command(flatten)]
        domain: DomainArgs,
    },
    /// Sign an order with a wallet; prints the typed hash and the 65-byte signature.
    /// Publish an order in the node's orderbook (signed with the wallet when the file has no `sign`).
    Publish {
        kind: OrderKind,
        file: PathBuf,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Remove a published order from the orderbook (signer of the order only).
    Unpublish {
        order_hash: B256,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Cancel an order on the ledger: it can never be matched again (owner or requester only).
    Cancel {
        kind: OrderKind,
        file: PathBuf,
        #[command(flatten)]
        signer: SignerArgs,
    },
    /// Match signed orders into a deal (matchOrders), sent by the signer.
    Match {
        #[arg(long)]
        app: PathBuf,
        #[arg(long)]
        dataset: Option<PathBuf>,
        #[arg(long)]
        workerpool: PathBuf,
        #[arg(long)]
        request: PathBuf,
        #[command(flatten)]
        signer: SignerArgs,
    },
    Sign {
        kind: OrderKind,
        file: PathBuf,
        /// Keystore v3 file of the signer (the asset owner, or the requester).
        #[arg(long)]
        wallet: PathBuf,
        /// File whose first line is the wallet password.
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// Write the signed order (fields + `sign`) to this file.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        domain: DomainArgs,
    },
}

#[derive(Args)]
pub struct DomainArgs {
    /// EIP-712 chain id (default: the hub's with --rpc, else Veil's dev ledger, 65535). Known iExec
    /// chains (134, 42161, 421614) also set their verifying contract.
    #[arg(long)]
    chain_id: Option<u64>,
    /// EIP-712 verifying contract: the PoCo hub address.
    #[arg(long)]
    verifying_contract: Option<Address>,
}

impl DomainArgs {
    fn domain(&self) -> Result<Domain> {
        if self.chain_id.is_none() && self.verifying_contract.is_none() {
            // With --rpc, the domain is the hub's: its chain id and address.
            if let Some(d) = crate::chain_cmd::evm_domain()? {
                return Ok(d);
            }
        }
        let dev = eip712::veil_dev_domain();
        let chain_id = self.chain_id.unwrap_or(dev.chain_id);
        let verifying_contract = match (self.verifying_contract, self.chain_id) {
            (Some(a), _) => a,
            (None, None) => dev.verifying_contract,
            (None, Some(id)) if id == dev.chain_id => dev.verifying_contract,
            (None, Some(id)) => eip712::known_verifying_contract(id).ok_or_else(|| {
                anyhow::anyhow!(
                    "chain {id} is not a known iExec deployment: pass --verifying-contract with its PoCo hub address"
                )
            })?,
        };
        Ok(Domain { chain_id, verifying_contract })
    }
}

/// An order of any kind read from a file, with what hashing needs.
struct Loaded {
    order: Value,
    struct_hash: veil_core::B256,
    sign: Option<Signature>,
}

fn load(kind: OrderKind, file: &Path) -> Result<Loaded> {
    let text = read_text(file, "order file")?;
    fn go<O: Order>(text: &str) -> Result<Loaded> {
        let (o, sign) = parse_order::<O>(text)?;
        Ok(Loaded { order: serde_json::to_value(&o)?, struct_hash: o.struct_hash(), sign })
    }
    match kind {
        OrderKind::App => go::<AppOrder>(&text),
        OrderKind::Dataset => go::<DatasetOrder>(&text),
        OrderKind::Workerpool => go::<WorkerpoolOrder>(&text),
        OrderKind::Request => go::<RequestOrder>(&text),
    }
}

fn domain_json(d: &Domain) -> Value {
    json!({
        "name": eip712::DOMAIN_NAME,
        "version": eip712::DOMAIN_VERSION,
        "chainId": d.chain_id,
        "verifyingContract": d.verifying_contract.to_checksum(None),
        "separator": format!("{:?}", d.separator()),
    })
}

/// Reads an order file of `kind` as an order of any kind with its signature, if any.
fn load_any(kind: OrderKind, file: &Path) -> Result<(AnyOrder, Option<Signature>)> {
    let text = read_text(file, "order file")?;
    Ok(match kind {
        OrderKind::App => parse_order::<AppOrder>(&text).map(|(o, s)| (AnyOrder::App(o), s))?,
        OrderKind::Dataset => parse_order::<DatasetOrder>(&text).map(|(o, s)| (AnyOrder::Dataset(o), s))?,
        OrderKind::Workerpool => parse_order::<WorkerpoolOrder>(&text).map(|(o, s)| (AnyOrder::Workerpool(o), s))?,
        OrderKind::Request => parse_order::<RequestOrder>(&text).map(|(o, s)| (AnyOrder::Request(o), s))?,
    })
}

fn load_signed<O: Order>(file: &Path) -> Result<Signed<O>> {
    let (order, sign) = parse_order::<O>(&read_text(file, "order file")?)?;
    Ok(Signed { order, sign })
}

pub fn run_online(cmd: OrderCmd, conn: &Conn, json: bool) -> Result<()> {
    let c = conn.client();
    let rt = runtime()?;

    match cmd {
        OrderCmd::Publish { kind, file, signer } => {
            let (order, mut sign) = load_any(kind, &file)?;
            if sign.is_none() && (signer.wallet.is_some() || signer.dev_account.is_some()) {
                let domain = rt.block_on(c.chain())?.domain;
                sign = Some(signer.key()?.sign_hash(&order.typed_hash(&domain)));
            }
            let e = rt.block_on(c.publish(order, sign))?;
            let human = format!("{kind} order published\n  hash       {}\n  remaining  {}", e.order_hash, e.remaining);
            emit(json, &serde_json::to_value(&e)?, &human);
        }
        OrderCmd::Unpublish { order_hash, signer } => {
            let e = rt.block_on(c.unpublish(&order_hash, &signer.key()?))?;
            emit(json, &serde_json::to_value(&e)?, &format!("order {} removed from the orderbook", e.order_hash));
        }
        OrderCmd::Cancel { kind, file, signer } => {
            let (order, _) = load_any(kind, &file)?;
            let l = rt.block_on(crate::chain_cmd::ledger(conn))?;
            let r = rt.block_on(l.send(&signer.key()?, Call::CancelOrder { order }))?;
            emit(
                json,
                &serde_json::to_value(&r)?,
                &format!("{kind} order cancelled on the ledger (block {})", r.block),
            );
        }
        OrderCmd::Match { app, dataset, workerpool, request, signer } => {
            let call = Call::MatchOrders {
                app_order: load_signed(&app)?,
                dataset_order: dataset.as_deref().map(load_signed).transpose()?,
                workerpool_order: load_signed(&workerpool)?,
                request_order: load_signed(&request)?,
            };
            let l = rt.block_on(crate::chain_cmd::ledger(conn))?;
            let r = rt.block_on(l.send(&signer.key()?, call))?;
            let dealid = crate::local::dealid(&r.events)?;
            emit(json, &json!({ "dealid": dealid, "receipt": r }), &format!("deal {dealid} (block {})", r.block));
        }
        other => return run(other, json),
    }
    Ok(())
}

pub fn run(cmd: OrderCmd, json: bool) -> Result<()> {
    match cmd {
        OrderCmd::Publish { .. } | OrderCmd::Unpublish { .. } | OrderCmd::Cancel { .. } | OrderCmd::Match { .. } => {
            bail!("this order command needs a node: internal routing error")
        }
        OrderCmd::Hash { kind, file, domain } => {
            let d = domain.domain()?;
            let l = load(kind, &file)?;
            let typed = d.typed_hash(&l.struct_hash);
            let mut v = json!({
                "kind": kind,
                "hash": format!("{typed:?}"),
                "orderHash": format!("{typed:?}"),
                "structHash": format!("{:?}", l.struct_hash),
                "domain": domain_json(&d),
            });
            let mut human = format!("{kind} order\n  hash         {typed:?}\n  struct hash  {:?}", l.struct_hash);
            if let Some(sig) = l.sign {
                match crypto::recover(&typed, &sig) {
                    Ok(a) => {
                        v["signer"] = json!(a.to_checksum(None));
                        human.push_str(&format!("\n  signed by    {}", a.to_checksum(None)));
                    }
                    Err(e) => {
                        v["signatureError"] = json!(e.to_string());
                        human.push_str(&format!("\n  signature    invalid: {e}"));
                    }
                }
            }
            emit(json, &v, &human);
            Ok(())
        }
        OrderCmd::Sign { kind, file, wallet, password_file, out, domain } => {
            let d = domain.domain()?;
            let l = load(kind, &file)?;
            let key = load_key(&wallet, password_file.as_deref())?;
            let typed = d.typed_hash(&l.struct_hash);
            let sig = key.sign_hash(&typed);
            if crypto::recover(&typed, &sig).ok() != Some(key.address()) {
                bail!("internal check failed: the signature does not recover to the wallet address");
            }
            let mut signed = l.order.clone();
            signed["sign"] = json!(sig.to_hex());
            if let Some(p) = &out {
                write_file(p, serde_json::to_string_pretty(&signed)?.as_bytes(), false)?;
            }
            let signer = key.address().to_checksum(None);
            let v = json!({
                "kind": kind,
                "hash": format!("{typed:?}"),
                "orderHash": format!("{typed:?}"),
                "structHash": format!("{:?}", l.struct_hash),
                "signature": sig.to_hex(),
                "sign": sig.to_hex(),
                "signer": signer,
                "domain": domain_json(&d),
                "order": signed,
            });
            let mut human = format!(
                "{kind} order signed\n  hash       {typed:?}\n  signature  {}\n  signer     {signer}",
                sig.to_hex()
            );
            if let Some(p) = out {
                human.push_str(&format!("\n  written    {}", p.display()));
            }
            emit(json, &v, &human);
            Ok(())
        }
    }
}
