//! Confidential computing commands: the enclave process, result keys, secrets for enclaves, and
//! DataProtector's processProtectedData (`veil data process`).

use crate::chain_cmd::{Conn, SignerArgs, runtime};
use crate::cli_io::{emit, veil_home};
use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::json;
use std::io::Read;
use std::path::{Path, PathBuf};
use veil_core::Address;
use veil_sdk::{Client, SecretKind};

/// `veil enclave`: run by a worker as a child process; request on stdin, outcome on stdout.
pub fn enclave() -> Result<()> {
    let mut input = vec![];
    std::io::stdin().read_to_end(&mut input)?;
    let req: veil_pool::enclave::EnclaveRequest =
        serde_json::from_slice(&input).context("the enclave expects its request (JSON) on standard input")?;
    let (out, logs) = runtime()?.block_on(veil_pool::enclave::run(req));
    match out {
        Ok(o) => println!("{}", json!({ "outcome": o, "logs": logs })),
        Err(e) => {
            println!("{}", json!({ "error": e, "logs": logs }));
            std::process::exit(1);
        }
    }
    Ok(())
}

/// Where the SMS is: `--sms`, `VEIL_SMS`, or the node's embedded one.
#[derive(Args)]
pub struct SmsConn {
    #[arg(long, env = "VEIL_SMS")]
    pub sms: Option<String>,
}

impl SmsConn {
    fn client(&self, conn: &Conn) -> Client {
        Client::new(self.sms.as_deref().unwrap_or(&conn.node))
    }
}

/// A secret's value: `--value`, or standard input (so it stays out of the shell history).
fn secret_value(value: Option<String>) -> Result<String> {
    let v = match value {
        Some(v) => v,
        None => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).context("reading the secret from standard input")?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
    };
    if v.is_empty() {
        bail!("the secret is empty: give --value V or pipe it on standard input");
    }
    Ok(v)
}

/// Signs (with `key`, opened once by the caller) and stores one secret.
fn push(
    kind: SecretKind,
    target: Address,
    name: &str,
    value: &str,
    key: &veil_core::PrivateKey,
    sms: &SmsConn,
    conn: &Conn,
) -> Result<()> {
    runtime()?.block_on(sms.client(conn).sms_push(kind, &target, name, value, key))?;
    Ok(())
}

#[derive(Args)]
pub struct PushSecretArgs {
    /// The secret's name (apps ask for it with `veil run --secret N=NAME`).
    pub name: String,
    /// The value (default: read from standard input).
    #[arg(long)]
    pub value: Option<String>,
    #[command(flatten)]
    pub signer: SignerArgs,
    #[command(flatten)]
    pub sms: SmsConn,
}

/// `veil requester push-secret NAME`.
pub fn requester_push_secret(a: PushSecretArgs, conn: &Conn, json: bool) -> Result<()> {
    let key = a.signer.key()?;
    let me = key.address();
    let value = secret_value(a.value)?;
    push(SecretKind::RequesterSecret, me, &a.name, &value, &key, &a.sms, conn)?;
    let human =
        format!("requester secret `{}` of {me} stored in the SMS (sealed; only enclaves of your deals get it)", a.name);
    emit(json, &json!({ "requester": me, "name": a.name, "stored": true }), &human);
    Ok(())
}

#[derive(Args)]
pub struct AppPushSecretArgs {
    #[arg(long)]
    pub app: Address,
    #[arg(long)]
    pub value: Option<String>,
    #[command(flatten)]
    pub signer: SignerArgs,
    #[command(flatten)]
    pub sms: SmsConn,
}

/// `veil app push-secret --app A`: the developer secret every enclave of the app receives.
pub fn app_push_secret(a: AppPushSecretArgs, conn: &Conn, json: bool) -> Result<()> {
    let value = secret_value(a.value)?;
    push(SecretKind::AppSecret, a.app, "", &value, &a.signer.key()?, &a.sms, conn)?;
    emit(
        json,
        &json!({ "app": a.app, "stored": true }),
        &format!("developer secret of app {} stored in the SMS", a.app),
    );
    Ok(())
}

#[derive(Args)]
pub struct KeypairArgs {
    /// Folder for `result-key.pem` (private) and `result-key.pub.pem` (default: $VEIL_HOME/result-keys).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// RSA modulus size (iExec's SDK uses 4096).
    #[arg(long, default_value_t = 4096)]
    pub bits: usize,
}

/// `veil result generate-keypair`.
pub fn generate_keypair(a: KeypairArgs, json: bool) -> Result<()> {
    if !(2048..=8192).contains(&a.bits) {
        bail!("--bits must be between 2048 and 8192");
    }
    let dir = a.out.unwrap_or_else(|| veil_home().join("result-keys"));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let progress = crate::progress::Progress::start(&format!("generating an RSA-{} key pair", a.bits), None, json);
    let (private, public) = veil_protect::result::generate_keypair(a.bits)?;
    progress.finish();
    let (priv_path, pub_path) = (dir.join("result-key.pem"), dir.join("result-key.pub.pem"));
    if priv_path.exists() {
        bail!("{} exists already: move it away or choose another --out", priv_path.display());
    }
    crate::cli_io::write_file(&priv_path, private.as_bytes(), true)?;
    std::fs::write(&pub_path, public)?;
    let human = format!(
        "RSA-{} key pair written\n  private  {}\n  public   {}\nnext: veil result push-key --key-file {}",
        a.bits,
        priv_path.display(),
        pub_path.display(),
        pub_path.display()
    );
    emit(json, &json!({ "private": priv_path, "public": pub_path, "bits": a.bits }), &human);
    Ok(())
}

#[derive(Args)]
pub struct PushKeyArgs {
    /// The public key (SPKI PEM; default: $VEIL_HOME/result-keys/result-key.pub.pem).
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    #[command(flatten)]
    pub signer: SignerArgs,
    #[command(flatten)]
    pub sms: SmsConn,
}

/// `veil result push-key`: results of your deals can then be encrypted for you.
pub fn push_key(a: PushKeyArgs, conn: &Conn, json: bool) -> Result<()> {
    let path = a.key_file.unwrap_or_else(|| veil_home().join("result-keys").join("result-key.pub.pem"));
    let pem = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {} (make one with veil result generate-keypair)", path.display()))?;
    let key = a.signer.key()?;
    let me = key.address();
    push(SecretKind::ResultKey, me, "", &pem, &key, &a.sms, conn)?;
    emit(
        json,
        &json!({ "beneficiary": me, "stored": true }),
        &format!("result-encryption key of {me} stored in the SMS"),
    );
    Ok(())
}

pub fn is_encrypted_result(bytes: &[u8]) -> bool {
    zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map(|z| z.file_names().any(|n| n == "aes-key.rsa"))
        .unwrap_or(false)
}

/// The result zip inside an encrypted result, opened with the private key at `key`.
pub fn decrypt_with(bytes: &[u8], key: &Path) -> Result<Vec<u8>> {
    let pem = std::fs::read_to_string(key).with_context(|| format!("cannot read the private key {}", key.display()))?;
    veil_protect::result::decrypt_result(bytes, &pem).map_err(|e| anyhow::anyhow!("cannot decrypt the result: {e}"))
}

#[derive(Args)]
pub struct DecryptArgs {
    /// An encrypted result (`encrypted-iexec_out.zip`, as `veil result get` or iExec's storage gives it).
    pub file: PathBuf,
    /// The beneficiary's private key (default: $VEIL_HOME/result-keys/result-key.pem).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Folder to unpack into (default: ./result).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `veil result decrypt FILE`.
pub fn decrypt(a: DecryptArgs, json: bool) -> Result<()> {
    let bytes = std::fs::read(&a.file).with_context(|| format!("cannot read {}", a.file.display()))?;
    let key = a.key.unwrap_or_else(|| veil_home().join("result-keys").join("result-key.pem"));
    let zip = decrypt_with(&bytes, &key)?;
    let out = a.out.unwrap_or_else(|| PathBuf::from("result"));
    crate::pool_cmd::unzip_safe(&zip, &out)?;
    emit(json, &json!({ "out": out }), &format!("result decrypted into {}", out.display()));
    Ok(())
}

#[derive(Args)]
pub struct ProcessArgs {
    #[arg(long)]
    pub dataset: Address,
    #[arg(long)]
    pub app: Address,
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub args: String,
    #[arg(long = "input-file")]
    pub input_files: Vec<String>,
    /// INDEX=NAME of a requester secret.
    #[arg(long = "secret")]
    pub secrets: Vec<String>,
    #[arg(long, default_value_t = 0)]
    pub category: u64,
    /// Save the decrypted result here instead of printing it.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    #[command(flatten)]
    pub signer: SignerArgs,
    #[command(flatten)]
    pub sms: SmsConn,
}

/// `veil data process`: runs the app on the protected data in an enclave with the result encrypted
/// for a fresh key pair, waits, downloads, decrypts, prints (or saves) the result.
pub fn process(a: ProcessArgs, conn: &Conn, json: bool) -> Result<()> {
    let (private, public) = veil_protect::result::generate_keypair(2048)?;
    let key = a.signer.key()?;
    let me = key.address();
    push(SecretKind::ResultKey, me, "", &public, &key, &a.sms, conn)?;
    let secrets = a
        .secrets
        .iter()
        .map(|s| {
            let (i, n) = s.split_once('=').context("write a secret as INDEX=NAME")?;
            Ok((i.parse().context("secret index")?, n.to_string()))
        })
        .collect::<Result<Vec<(u32, String)>>>()?;
    let run = crate::pool_cmd::RunArgs {
        app: Some(a.app),
        dataset: Some(a.dataset),
        args: a.args,
        input_files: a.input_files,
        trust: 0,
        category: a.category,
        volume: 1,
        watch: true,
        no_watch: false,
        timeout: a.timeout,
        tee: true,
        secrets,
        encrypt_result: true,
        signer: a.signer.clone(),
    };
    if !json {
        println!("processing {} with app {} in a {}", a.dataset, a.app, veil_tee::SIM_NOTICE);
    }
    let summary = crate::pool_cmd::run_deal_as(run, &key, conn, json, true)?;
    let task = &summary["tasks"][0];
    let results = task["results"].as_str().context("the task has no result")?;
    let url = veil_storage::cid::results_url(results.as_bytes(), &conn.node).map_err(anyhow::Error::msg)?;
    let bytes = runtime()?
        .block_on(async { reqwest::get(&url).await?.error_for_status()?.bytes().await })
        .with_context(|| format!("cannot download {url}"))?;
    let zip = veil_protect::result::decrypt_result(&bytes, &private)?;
    let dir = tempfile::tempdir()?;
    crate::pool_cmd::unzip_safe(&zip, dir.path())?;
    let computed: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("computed.json"))?)?;
    let det = computed["deterministic-output-path"].as_str().unwrap_or_default().to_string();
    let names: Vec<String> =
        zip::ZipArchive::new(std::io::Cursor::new(&zip[..]))?.file_names().map(String::from).collect();
    // The path was the enclave's: the entry it names is the longest one it ends with.
    let rel = names.iter().filter(|n| det.ends_with(&format!("/{n}")) || det == **n).max_by_key(|n| n.len()).cloned();
    match a.out {
        Some(out) => {
            crate::pool_cmd::unzip_safe(&zip, &out)?;
            emit(
                json,
                &json!({ "taskid": task["taskid"], "out": out }),
                &format!("result saved into {}", out.display()),
            );
        }
        None => {
            let rel = rel.context("the result's computed.json names no file of the result")?;
            let text = String::from_utf8_lossy(&std::fs::read(dir.path().join(rel))?).into_owned();
            emit(json, &json!({ "taskid": task["taskid"], "result": text }), &text);
        }
    }
    Ok(())
}
