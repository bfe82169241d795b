//! `veil bench protect`: `veil data protect` of a large file against `openssl enc -aes-256-cbc`
//! followed by `sha256sum` on the same file, side by side in one run, with peak memory.

use crate::cli_io::emit;
use anyhow::{Context, Result, bail};
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Peak resident memory (MB) of the children waited for so far.
fn children_peak_mb() -> f64 {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    u.ru_maxrss as f64 / 1024.0
}

fn make_file(path: &Path, mb: u64) -> Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut x = 0x9e3779b97f4a7c15u64;
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..mb {
        for c in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            c.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&buf)?;
    }
    f.flush()?;
    Ok(())
}

fn run(cmd: &mut Command) -> Result<f64> {
    let t = Instant::now();
    let out =
        cmd.stdout(Stdio::null()).stderr(Stdio::piped()).output().with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(t.elapsed().as_secs_f64())
}

pub fn bench(size_mb: u64, runs: usize, json: bool) -> Result<()> {
    if cfg!(debug_assertions) && !json {
        eprintln!("warning: debug build; run `cargo run --release -p veil -- bench protect` for real numbers");
    }
    let dir = std::env::temp_dir().join(format!("veil-bench-protect-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let _cleanup = Cleanup(dir.clone());
    let exe = std::env::current_exe()?;
    let input = dir.join("input.bin");
    if !json {
        eprintln!("writing a {size_mb} MiB test file…");
    }
    make_file(&input, size_mb)?;
    let mut node = Command::new(&exe)
        .args(["node", "--dev", "--json", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("node"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(node.stdout.take().context("node stdout")?).read_line(&mut line)?;
    let url = serde_json::from_str::<serde_json::Value>(&line)?["url"].as_str().context("node url")?.to_string();
    let (mut veil_s, mut ref_s, mut peak) = (vec![], vec![], 0.0f64);
    for r in 0..runs {
        // Veil first, so the children's peak memory read right after is Veil's.
        let secs = run(Command::new(&exe)
            .args(["data", "protect"])
            .arg(&input)
            .args(["--name", &format!("bench-{r}"), "--dev-account", "1", "--node", &url])
            .env("VEIL_HOME", dir.join("home")))?;
        peak = peak.max(children_peak_mb());
        let key = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
        let enc = dir.join("openssl.enc");
        let t1 = run(Command::new("openssl")
            .args(["enc", "-aes-256-cbc", "-K", key, "-iv", "000102030405060708090a0b0c0d0e0f", "-in"])
            .arg(&input)
            .arg("-out")
            .arg(&enc))?;
        let t2 = run(Command::new("sha256sum").arg(&enc))?;
        let _ = std::fs::remove_file(&enc);
        if !json {
            eprintln!(
                "  run {}: veil data protect {secs:.2} s   openssl + sha256sum {:.2} s (ratio {:.2})",
                r + 1,
                t1 + t2,
                secs / (t1 + t2)
            );
        }
        veil_s.push(secs);
        ref_s.push(t1 + t2);
    }
    let _ = node.kill();
    let _ = node.wait();
    let (vs, os) = (crate::bench::Stats::of(&veil_s), crate::bench::Stats::of(&ref_s));
    let (v, o) = (vs.median, os.median);
    let out = json!({
        "scenario": "protect",
        "sizeMiB": size_mb,
        "runs": runs,
        "veilSeconds": vs.json(),
        "opensslSha256sumSeconds": os.json(),
        "ratio": v / o,
        "veilPeakRssMb": peak,
        "targets": { "ratio": 1.5, "peakRssMb": 64 },
    });
    let human = format!(
        "protect: {size_mb} MiB, {runs} runs, side by side in each run\n  veil data protect (encrypt + upload + register + SMS)  {}\n  openssl enc -aes-256-cbc + sha256sum                  {}\n  ratio of medians {:.2} (target ≤ 1.5)   veil peak RSS {peak:.1} MB (target < 64)",
        vs.human("s", 2),
        os.human("s", 2),
        v / o
    );
    emit(json, &out, &human);
    Ok(())
}

struct Cleanup(std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
