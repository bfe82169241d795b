//! `veil bench image`: what a worker pays the first time it meets an image: pull from a registry
//! (Debian's docker-registry on loopback; every blob hashed as it streams), keep it in the cache,
//! unpack it; side by side with `skopeo copy` of the same image when skopeo is installed.

use crate::bench::Stats;
use crate::cli_io::emit;
use anyhow::{Context, Result, bail};
use serde_json::json;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Debian's docker-registry on a free loopback port, storing in `dir`; its host:port.
fn registry(dir: &Path) -> Result<(Killed, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let config = dir.join("registry.yml");
    let yml = format!(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
        dir.join("registry").display()
    );
    std::fs::write(&config, yml)?;
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("this benchmark pulls from Debian's docker-registry: apt-get install docker-registry")?;
    let host = format!("127.0.0.1:{port}");
    let child = Killed(child);
    for _ in 0..200 {
        if std::net::TcpStream::connect(&host).is_ok() {
            return Ok((child, host));
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    bail!("docker-registry did not start")
}

/// `n` MiB of incompressible bytes (xorshift), as files of 1 MiB.
fn payload(n: u64) -> Vec<(String, Vec<u8>)> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|i| {
            let mut b = Vec::with_capacity(1 << 20);
            while b.len() < 1 << 20 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b.extend_from_slice(&x.to_le_bytes());
            }
            (format!("data/file-{i:03}"), b)
        })
        .collect()
}

pub fn run(size_mb: u64, runs: usize, json: bool) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("veil-bench-image-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let r = measure(&dir, size_mb, runs.max(1), json);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

fn measure(dir: &Path, size_mb: u64, runs: usize, json: bool) -> Result<()> {
    let files = payload(size_mb);
    let new: Vec<veil_oci::write::NewFile> =
        files.iter().map(|(p, b)| veil_oci::write::NewFile { path: p, bytes: b, mode: 0o644 }).collect();
    let image = veil_oci::write::image_from_files(&dir.join("src"), &new, &["/bin/true"], true)?;
    drop(new);
    drop(files);
    let (_registry, host) = registry(dir)?;
    let reference = format!("{host}/bench:1");
    let r = veil_oci::ImageRef::parse(&reference)?;
    let rt = tokio::runtime::Runtime::new()?;
    let reg = veil_oci::Registry::new(veil_sdk::http(), None);
    let t = Instant::now();
    rt.block_on(reg.push(&image, &r))?;
    let push_ms = t.elapsed().as_secs_f64() * 1000.0;
    let (mut pull, mut unpack, mut total, mut skopeo) = (vec![], vec![], vec![], vec![]);
    for i in 0..runs {
        let store = veil_oci::ImageStore::open(&dir.join(format!("cache-{i}")), u64::MAX)?;
        let scratch = store.scratch()?;
        let t0 = Instant::now();
        let pulled = rt.block_on(reg.pull(
            &r,
            &scratch.join("pulled"),
            Some(&image.manifest_digest),
            veil_pool::image::MAX_IMAGE,
        ))?;
        let kept = store.keep(&pulled)?;
        let t1 = Instant::now();
        let lease = store.rootfs(&kept)?;
        let t2 = Instant::now();
        drop(lease);
        pull.push((t1 - t0).as_secs_f64() * 1000.0);
        unpack.push((t2 - t1).as_secs_f64() * 1000.0);
        total.push((t2 - t0).as_secs_f64() * 1000.0);
        if which_skopeo() {
            let dest = dir.join(format!("skopeo-{i}"));
            let t = Instant::now();
            let st = Command::new("skopeo")
                .args(["copy", "-q", "--src-tls-verify=false", &format!("docker://{reference}")])
                .arg(format!("oci:{}:bench", dest.display()))
                .status()?;
            if st.success() {
                skopeo.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        let _ = std::fs::remove_dir_all(dir.join(format!("cache-{i}")));
    }
    let (p, u, t) = (Stats::of(&pull), Stats::of(&unpack), Stats::of(&total));
    let mut human = format!(
        "image: {size_mb} MiB of incompressible files in one gzip layer ({} bytes), from docker-registry on loopback, empty cache, {runs} runs\n  push (Veil)          {push_ms:.0} ms\n  pull + verify + keep {}\n  unpack               {}\n  pull + unpack        {}",
        image.layers_size(),
        p.human("ms", 0),
        u.human("ms", 0),
        t.human("ms", 0)
    );
    let mut v = json!({ "scenario": "image", "sizeMb": size_mb, "layerBytes": image.layers_size(), "pushMs": push_ms, "pullMs": p.json(), "unpackMs": u.json(), "totalMs": t.json() });
    if !skopeo.is_empty() {
        let s = Stats::of(&skopeo);
        human.push_str(&format!("\n  skopeo copy (pull only, same registry) {}", s.human("ms", 0)));
        v["skopeoPullMs"] = s.json();
    }
    emit(json, &v, &human);
    Ok(())
}

fn which_skopeo() -> bool {
    Command::new("skopeo").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}
