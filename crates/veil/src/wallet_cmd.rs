//! `veil wallet create | import | show`.

use crate::cli_io::{emit, password, read_text, veil_home, write_file};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use std::path::{Path, PathBuf};
use veil_core::PrivateKey;
use veil_wallet::Kdf;

#[derive(Subcommand)]
pub enum WalletCmd {
    /// Create a new random wallet and save it as an encrypted keystore v3 file.
    Create(SaveArgs),
    /// Save an existing private key (read from a file or $VEIL_PRIVATE_KEY) as a keystore file.
    Import {
        /// File holding the private key as 64 hex characters ("-" reads standard input).
        #[arg(long)]
        private_key_file: Option<PathBuf>,
        #[command(flatten)]
        save: SaveArgs,
    },
    /// Show a keystore's address; with a password, check that it opens.
    Show {
        /// The keystore file.
        wallet: PathBuf,
        /// File whose first line is the password: decrypts to verify the file.
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// Also print the private key (needs the password). Keep the output secret.
        #[arg(long)]
        show_private_key: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum KdfName {
    Scrypt,
    Pbkdf2,
}

#[derive(Args)]
pub struct SaveArgs {
    /// Where to write the keystore (default: $VEIL_HOME/wallets/<address>.json).
    #[arg(long)]
    out: Option<PathBuf>,
    /// File whose first line is the password (else $VEIL_PASSWORD, else a prompt).
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// Key derivation function.
    #[arg(long, value_enum, default_value = "scrypt")]
    kdf: KdfName,
    /// Faster, weaker scrypt settings (n = 2^12): for tests and throwaway keys only.
    #[arg(long)]
    light: bool,
    /// Overwrite an existing file.
    #[arg(long)]
    force: bool,
}

pub fn run(cmd: WalletCmd, json: bool) -> Result<()> {
    match cmd {
        WalletCmd::Create(save) => save_key(&veil_wallet::random_key(), &save, json, "created"),
        WalletCmd::Import { private_key_file, save } => {
            let text = match private_key_file.as_deref() {
                Some(p) if p == Path::new("-") => std::io::read_to_string(std::io::stdin())?,
                Some(p) => read_text(p, "private key file")?,
                None => std::env::var("VEIL_PRIVATE_KEY").map_err(|_| {
                    anyhow::anyhow!("no key given: pass --private-key-file FILE or set VEIL_PRIVATE_KEY")
                })?,
            };
            let key = PrivateKey::from_hex(text.trim()).map_err(|_| {
                anyhow::anyhow!(
                    "the private key must be 64 hex characters (optionally 0x-prefixed) of a valid secp256k1 key"
                )
            })?;
            save_key(&key, &save, json, "imported")
        }
        WalletCmd::Show { wallet, password_file, show_private_key } => {
            show(&wallet, password_file.as_deref(), show_private_key, json)
        }
    }
}

fn save_key(key: &PrivateKey, a: &SaveArgs, json: bool, verb: &str) -> Result<()> {
    let address = key.address().to_checksum(None);
    let path = a.out.clone().unwrap_or_else(|| veil_home().join("wallets").join(format!("{address}.json")));
    if path.exists() && !a.force {
        bail!("{} already exists; choose another --out or pass --force to overwrite", path.display());
    }
    let pw = password(a.password_file.as_deref(), true)?;
    let kdf = match (a.kdf, a.light) {
        (KdfName::Scrypt, false) => Kdf::STANDARD,
        (KdfName::Scrypt, true) => Kdf::LIGHT,
        (KdfName::Pbkdf2, false) => Kdf::Pbkdf2 { c: 262_144 },
        (KdfName::Pbkdf2, true) => Kdf::Pbkdf2 { c: 4096 },
    };
    let doc = veil_wallet::encrypt(key, pw.as_bytes(), kdf)?;
    if path.exists() {
        std::fs::remove_file(&path).with_context(|| format!("cannot replace {}", path.display()))?;
    }
    write_file(&path, doc.as_bytes(), true)?;
    emit(
        json,
        &json!({ "address": address, "wallet": path }),
        &format!("wallet {verb}\n  address  {address}\n  file     {}", path.display()),
    );
    Ok(())
}

fn show(path: &Path, password_file: Option<&Path>, show_key: bool, json: bool) -> Result<()> {
    let doc = read_text(path, "keystore")?;
    let claimed = veil_wallet::claimed_address(&doc);
    if password_file.is_none() && !show_key {
        let a = claimed.ok_or_else(|| {
            anyhow::anyhow!("{} names no address; pass --password-file to decrypt it", path.display())
        })?;
        let a = a.to_checksum(None);
        emit(json, &json!({ "address": a, "verified": false }), &format!("address  {a}  (not decrypted)"));
        return Ok(());
    }
    let key = load_key(path, password_file)?;
    let a = key.address().to_checksum(None);
    if claimed.is_some_and(|c| c != key.address()) {
        bail!("{} claims an address that differs from its key ({a}); the file was edited", path.display());
    }
    let mut v = json!({ "address": a, "verified": true });
    let mut human = format!("address  {a}  (decrypted and verified)");
    if show_key {
        let k = format!("0x{}", hex::encode(key.secret_bytes()));
        v["privateKey"] = json!(k);
        human.push_str(&format!("\nprivate key  {k}"));
    }
    emit(json, &v, &human);
    Ok(())
}

/// Opens a keystore with the password from `password_file` (or $VEIL_PASSWORD, or a prompt).
pub fn load_key(path: &Path, password_file: Option<&Path>) -> Result<PrivateKey> {
    let doc = read_text(path, "keystore")?;
    let pw = password(password_file, false)?;
    veil_wallet::decrypt(&doc, pw.as_bytes()).with_context(|| format!("cannot open wallet {}", path.display()))
}
