//! `veil dataset encrypt | decrypt`: iExec's dataset format on local files.

use crate::cli_io::{emit, read_text};
use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::json;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::time::Instant;
use veil_protect::dataset::{self, DatasetKey};

#[derive(Args)]
pub struct EncryptArgs {
    /// The plaintext file.
    pub file: PathBuf,
    /// Encrypted output (default: FILE.enc).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Where to write the key, base64 (default: OUT.key, mode 0600).
    #[arg(long)]
    pub key_out: Option<PathBuf>,
    /// Overwrite existing outputs.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args)]
pub struct DecryptArgs {
    /// The encrypted file (IV first).
    pub file: PathBuf,
    /// The key: base64 (iExec) or hex (openssl -K).
    #[arg(long, conflicts_with = "key_file")]
    pub key: Option<String>,
    /// File holding the key.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// Refuse to decrypt unless the file's sha256 equals this checksum (0x + 64 hex).
    #[arg(long)]
    pub checksum: Option<String>,
    /// Plaintext output (default: FILE without .enc, or FILE.dec).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long)]
    pub force: bool,
}

fn refuse_existing(p: &Path, force: bool) -> Result<()> {
    if p.exists() && !force {
        bail!("{} already exists; pass --force to overwrite or choose another path", p.display());
    }
    Ok(())
}

/// Encrypts `file` to `out` (through a temporary file renamed at the end) with a fresh key.
pub fn encrypt_file(file: &Path, out: &Path, json: bool) -> Result<(DatasetKey, dataset::EncryptSummary)> {
    let input = File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let tmp = out.with_extension(format!("partial{}", std::process::id()));
    let output = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let key = DatasetKey::random();
    let size = input.metadata().map(|m| m.len()).ok();
    let progress = crate::progress::Progress::start(&format!("encrypting {}", file.display()), size, json);
    let reader = progress.reader(BufReader::with_capacity(1 << 20, input));
    let r = dataset::encrypt(&key, reader, BufWriter::with_capacity(1 << 20, &output));
    progress.finish();
    let summary = match r {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
    };
    output.sync_all()?;
    std::fs::rename(&tmp, out)?;
    Ok((key, summary))
}

pub fn encrypt(a: EncryptArgs, json: bool) -> Result<()> {
    let out = a.out.unwrap_or_else(|| PathBuf::from(format!("{}.enc", a.file.display())));
    let key_out = a.key_out.unwrap_or_else(|| PathBuf::from(format!("{}.key", out.display())));
    refuse_existing(&out, a.force)?;
    refuse_existing(&key_out, a.force)?;
    let t = Instant::now();
    let (key, s) = encrypt_file(&a.file, &out, json)?;
    if key_out.exists() {
        std::fs::remove_file(&key_out)?;
    }
    crate::cli_io::write_file(&key_out, key.to_base64().as_bytes(), true)?;
    let secs = t.elapsed().as_secs_f64();
    emit(
        json,
        &json!({ "encrypted": out, "keyFile": key_out, "checksum": s.checksum_hex(), "plainBytes": s.plain_bytes, "encryptedBytes": s.encrypted_bytes, "seconds": secs }),
        &format!(
            "encrypted {} → {}  ({} bytes in {secs:.2} s)\n  checksum  {}\n  key       {} (base64, keep it secret)",
            a.file.display(),
            out.display(),
            s.plain_bytes,
            s.checksum_hex(),
            key_out.display()
        ),
    );
    Ok(())
}

pub fn decrypt(a: DecryptArgs, json: bool) -> Result<()> {
    let key_text = match (&a.key, &a.key_file) {
        (Some(k), _) => k.clone(),
        (None, Some(f)) => read_text(f, "key file")?,
        (None, None) => bail!("pass --key KEY (base64 or hex) or --key-file FILE"),
    };
    let key = DatasetKey::parse(&key_text)?;
    let out = a.out.unwrap_or_else(|| {
        let s = a.file.display().to_string();
        PathBuf::from(s.strip_suffix(".enc").map(str::to_string).unwrap_or(format!("{s}.dec")))
    });
    refuse_existing(&out, a.force)?;
    if let Some(c) = &a.checksum {
        let f = File::open(&a.file).with_context(|| format!("cannot open {}", a.file.display()))?;
        dataset::verify_checksum(BufReader::new(f), c)?;
    }
    let input = File::open(&a.file).with_context(|| format!("cannot open {}", a.file.display()))?;
    let tmp = out.with_extension(format!("partial{}", std::process::id()));
    let output = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    match dataset::decrypt(&key, BufReader::with_capacity(1 << 20, input), BufWriter::with_capacity(1 << 20, &output)) {
        Ok(n) => {
            output.sync_all()?;
            std::fs::rename(&tmp, &out)?;
            emit(
                json,
                &json!({ "decrypted": out, "bytes": n }),
                &format!("decrypted {} → {} ({n} bytes)", a.file.display(), out.display()),
            );
            Ok(())
        }
        Err(e) => {
            // Never leave partial plaintext behind.
            let _ = std::fs::remove_file(&tmp);
            Err(e.into())
        }
    }
}
