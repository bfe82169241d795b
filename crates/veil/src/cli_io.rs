//! Shared command-line plumbing: output, passwords, files.

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

/// Prints `value` as JSON, or `human` as text.
pub fn emit(json: bool, value: &Value, human: &str) {
    if json {
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
    } else {
        println!("{human}");
    }
}

/// Prints the error (as `{"error": …}` with --json) and exits with status 1.
pub fn fail(e: &anyhow::Error, json: bool) -> ! {
    let msg = format!("{e:#}");
    if json {
        println!("{}", serde_json::json!({ "error": msg }));
    } else {
        eprintln!("error: {msg}");
    }
    std::process::exit(1)
}

/// Veil's home folder: `$VEIL_HOME`, else `~/.veil`.
pub fn veil_home() -> PathBuf {
    if let Some(h) = std::env::var_os("VEIL_HOME") {
        return PathBuf::from(h);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".veil")
}

/// Reads a password: the first line of `file`, else `$VEIL_PASSWORD`, else a prompt on a terminal.
pub fn password(file: Option<&Path>, confirm: bool) -> Result<String> {
    if let Some(f) = file {
        let text = std::fs::read_to_string(f).with_context(|| format!("cannot read password file {}", f.display()))?;
        let line = text.lines().next().unwrap_or("").to_string();
        if line.is_empty() {
            bail!("password file {} is empty; put the password on its first line", f.display());
        }
        return Ok(line);
    }
    if let Ok(p) = std::env::var("VEIL_PASSWORD") {
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no password given: pass --password-file FILE or set VEIL_PASSWORD");
    }
    let p = rpassword::prompt_password("Password: ")?;
    if confirm && rpassword::prompt_password("Repeat password: ")? != p {
        bail!("the two passwords differ");
    }
    Ok(p)
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename); `private` makes it 0600.
pub fn write_file(path: &Path, bytes: &[u8], private: bool) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create folder {}", dir.display()))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

pub fn read_text(path: &Path, what: &str) -> Result<String> {
    const MAX: u64 = 16 * 1024 * 1024;
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {what} {}", path.display()))?;
    if meta.len() > MAX {
        bail!("{what} {} is {} bytes, more than the {MAX} accepted", path.display(), meta.len());
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read {what} {}", path.display()))
}
