//! `veil.toml`: defaults for the flags every command shares, so a project or a machine need not
//! repeat `--node`, `--scheduler` or `--wallet`.
//!
//! Precedence, highest first: a flag on the command line; an environment variable (`VEIL_NODE`, …);
//! `./veil.toml` (the current folder: a project's settings); `$VEIL_HOME/veil.toml` (the user's);
//! the built-in default. A file's value reaches the command as its environment variable when that
//! variable is unset, so flags and the environment keep their rank. Relative paths in a file are
//! relative to the file's folder.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// Key in `veil.toml` → environment variable, and whether its value is a path.
pub const KEYS: &[(&str, &str, bool)] = &[
    ("node", "VEIL_NODE", false),
    ("rpc", "VEIL_RPC", false),
    ("hub", "VEIL_HUB", false),
    ("scheduler", "VEIL_SCHEDULER", false),
    ("sms", "VEIL_SMS", false),
    ("storage", "VEIL_STORAGE", false),
    ("wallet", "VEIL_WALLET", true),
    ("password-file", "VEIL_PASSWORD_FILE", true),
    ("dev-account", "VEIL_DEV_ACCOUNT", false),
];

/// Keys that together pick who signs.
const SIGNER: [&str; 2] = ["wallet", "dev-account"];

/// Where each setting came from (for `veil config`).
#[derive(Debug, Clone)]
pub struct Setting {
    pub key: &'static str,
    pub env: &'static str,
    pub value: Option<String>,
    pub source: String,
}

/// The config files, most important first.
pub fn files() -> Vec<PathBuf> {
    vec![PathBuf::from("veil.toml"), crate::cli_io::veil_home().join("veil.toml")]
}

/// Reads the config files and exports their values as environment variables where unset.
pub fn apply() -> Result<Vec<Setting>> {
    let mut settings: Vec<Setting> = KEYS
        .iter()
        .map(|(key, env, _)| {
            let value = std::env::var(env).ok().filter(|v| !v.is_empty());
            let source = if value.is_some() { format!("environment ({env})") } else { "default".into() };
            Setting { key, env, value, source }
        })
        .collect();
    for file in files() {
        let Some(values) = read(&file)? else { continue };
        let has = |k: &str| values.iter().any(|(key, _)| key == k);
        if has("wallet") && has("dev-account") {
            bail!("{}: set `wallet` or `dev-account`, not both", file.display());
        }
        // The signer is one choice: a wallet from a stronger source hides a file's dev account.
        let signer_chosen = settings.iter().any(|s| SIGNER.contains(&s.key) && s.value.is_some());
        for s in settings.iter_mut().filter(|s| s.value.is_none() && !(signer_chosen && SIGNER.contains(&s.key))) {
            if let Some(v) = values.iter().find(|(k, _)| k == s.key).map(|(_, v)| v.clone()) {
                // SAFETY: called at the very start of `main`, before any other thread exists.
                unsafe { std::env::set_var(s.env, &v) };
                s.value = Some(v);
                s.source = file.display().to_string();
            }
        }
    }
    Ok(settings)
}

/// One file's settings (None when it does not exist).
fn read(file: &Path) -> Result<Option<Vec<(String, String)>>> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
    };
    let table: toml::Table = text.parse().with_context(|| format!("{} is not valid TOML", file.display()))?;
    let base = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut out = vec![];
    for (k, v) in table {
        let Some((key, _, is_path)) = KEYS.iter().find(|(key, _, _)| *key == k) else {
            let known: Vec<&str> = KEYS.iter().map(|k| k.0).collect();
            bail!("{}: unknown setting `{k}` (known: {})", file.display(), known.join(", "));
        };
        let value = match v {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            other => bail!("{}: `{key}` must be a string or a number, not {}", file.display(), other.type_str()),
        };
        let value = if *is_path { base.join(&value).display().to_string() } else { value };
        out.push((key.to_string(), value));
    }
    Ok(Some(out))
}

/// `veil config`: every setting, its value and where it came from.
pub fn show(settings: &[Setting], json: bool) -> Result<()> {
    let rows: Vec<Value> =
        settings.iter().map(|s| json!({ "key": s.key, "env": s.env, "value": s.value, "source": s.source })).collect();
    let mut human = String::from(
        "Settings (a flag beats the environment, which beats ./veil.toml, then $VEIL_HOME/veil.toml, then the default):",
    );
    for s in settings {
        human.push_str(&format!(
            "\n  {:<14} {:<36} {}",
            s.key,
            s.value.as_deref().unwrap_or("(default)"),
            if s.value.is_some() { s.source.as_str() } else { "" }
        ));
    }
    let files: Vec<String> = files().iter().map(|f| f.display().to_string()).collect();
    human.push_str(&format!("\nFiles read: {}", files.join(", ")));
    crate::cli_io::emit(json, &json!({ "settings": rows, "files": files }), &human);
    Ok(())
}
