//! {{name}}: an iApp for Veil (and iExec), compiled to WebAssembly (WASI preview 1). Change
//! `compute`; keep the rest.
//!
//! What a worker gives the app:
//!   args             std::env::args().skip(1)
//!   protected data   $IEXEC_IN/$IEXEC_DATASET_FILENAME (TEE tasks): a DataProtector zip, or any file
//!   input files      $IEXEC_IN/$IEXEC_INPUT_FILE_NAME_1 … _$IEXEC_INPUT_FILES_NUMBER
//!   secrets          $IEXEC_REQUESTER_SECRET_<n>, $IEXEC_APP_DEVELOPER_SECRET (TEE tasks)
//! What it must leave: its result files in $IEXEC_OUT, and $IEXEC_OUT/computed.json naming the file
//! whose content is the task's deterministic result.

use std::env;
use std::fs;

fn u16_at(b: &[u8], p: usize) -> Option<usize> {
    Some(u16::from_le_bytes(b.get(p..p + 2)?.try_into().ok()?) as usize)
}

fn u32_at(b: &[u8], p: usize) -> Option<usize> {
    Some(u32::from_le_bytes(b.get(p..p + 4)?.try_into().ok()?) as usize)
}

/// The stored (uncompressed) entries of a zip archive, as DataProtector writes them.
fn unzip(b: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let eocd = (0..b.len().checked_sub(21)?).rev().find(|&p| u32_at(b, p) == Some(0x0605_4b50))?;
    let (count, mut p) = (u16_at(b, eocd + 10)?, u32_at(b, eocd + 16)?);
    let mut out = vec![];
    for _ in 0..count {
        let (method, size, name_len) = (u16_at(b, p + 10)?, u32_at(b, p + 20)?, u16_at(b, p + 28)?);
        let skip = name_len + u16_at(b, p + 30)? + u16_at(b, p + 32)?;
        let name = String::from_utf8_lossy(b.get(p + 46..p + 46 + name_len)?).to_string();
        let local = u32_at(b, p + 42)?;
        let start = local + 30 + u16_at(b, local + 26)? + u16_at(b, local + 28)?;
        if method == 0 && !name.ends_with('/') {
            out.push((name, b.get(start..start + size)?.to_vec()));
        }
        p += 46 + skip;
    }
    Some(out)
}

/// A DataProtector value: string (u32 length + UTF-8), bool (1 byte), number (f64) or i128.
fn borsh(b: &[u8]) -> String {
    match b.len() {
        n if n >= 4 && u32_at(b, 0) == Some(n - 4) => String::from_utf8_lossy(&b[4..]).to_string(),
        1 => (b[0] != 0).to_string(),
        8 => f64::from_le_bytes(b.try_into().unwrap_or_default()).to_string(),
        16 => i128::from_le_bytes(b.try_into().unwrap_or_default()).to_string(),
        _ => b.iter().map(|x| format!("{x:02x}")).collect(),
    }
}

fn protected_data(iexec_in: &str) -> Option<Vec<(String, String)>> {
    let name = env::var("IEXEC_DATASET_FILENAME").ok().filter(|n| !n.is_empty())?;
    let bytes = fs::read(format!("{iexec_in}/{name}")).ok()?;
    match unzip(&bytes) {
        Some(entries) => Some(entries.iter().map(|(k, v)| (k.clone(), borsh(v))).collect()),
        None => Some(vec![("file".into(), format!("{} bytes", bytes.len()))]),
    }
}

fn input_files(iexec_in: &str) -> Vec<(String, u64)> {
    let n: usize = env::var("IEXEC_INPUT_FILES_NUMBER").ok().and_then(|n| n.parse().ok()).unwrap_or(0);
    (1..=n)
        .filter_map(|i| env::var(format!("IEXEC_INPUT_FILE_NAME_{i}")).ok())
        .map(|f| {
            let size = fs::metadata(format!("{iexec_in}/{f}")).map(|m| m.len()).unwrap_or(0);
            (f, size)
        })
        .collect()
}

/// Secret lengths only: a secret's value never belongs in logs or results.
fn requester_secrets() -> Vec<(u32, usize)> {
    let mut found: Vec<(u32, usize)> = env::vars()
        .filter_map(|(k, v)| Some((k.strip_prefix("IEXEC_REQUESTER_SECRET_")?.parse().ok()?, v.len())))
        .collect();
    found.sort();
    found
}

fn compute(
    args: &[String],
    data: Option<Vec<(String, String)>>,
    files: &[(String, u64)],
    secrets: &[(u32, usize)],
) -> String {
    let who = if args.is_empty() { "World".to_string() } else { args.join(" ") };
    let mut lines = vec![format!("Hello, {who}!")];
    if let Some(mut data) = data {
        data.sort();
        let kv: Vec<String> = data.iter().map(|(k, v)| format!("{k}={v}")).collect();
        lines.push(format!("protected data: {}", kv.join(", ")));
    }
    for (name, size) in files {
        lines.push(format!("input file {name}: {size} bytes"));
    }
    for (i, len) in secrets {
        lines.push(format!("requester secret {i}: {len} characters"));
    }
    lines.join("\n") + "\n"
}

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    let (iexec_in, iexec_out) = (env::var("IEXEC_IN").unwrap_or_default(), env::var("IEXEC_OUT").unwrap_or_default());
    println!("{{name}} starts with {} argument(s)", args.len());
    let text = compute(&args, protected_data(&iexec_in), &input_files(&iexec_in), &requester_secrets());
    let result = format!("{iexec_out}/result.txt");
    fs::write(&result, &text).expect("cannot write result.txt");
    let computed = format!("{{\"deterministic-output-path\":\"{result}\"}}");
    fs::write(format!("{iexec_out}/computed.json"), computed).expect("cannot write computed.json");
    println!("result written: {} bytes", text.len());
}
