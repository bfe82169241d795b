//! Image apps (iExec's DOCKER type) end to end with the real binaries and real tools: images built
//! here offline (a busybox shell app, a static C binary `FROM scratch`), converted by skopeo into
//! every transport, pushed to a `docker-registry` on loopback, deployed with `veil app deploy
//! --image` and run by a worker with runc; the checksum and layer checks; limits and the network
//! through `veil app test --image`, which runs images exactly as a worker does.

mod common;
use common::{Backend, Service, ok, veil};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The busybox app: prints its arguments one per line (quotes kept), the image's Env, its folder
/// and user, the protected data and the first requester secret; `mem`, `sleep` and `fetch URL`
/// test limits and the network.
const SCRIPT: &str = r#"#!/bin/sh
out="$IEXEC_OUT/result.txt"
case "$1" in
  mem) exec awk 'BEGIN { s = "x"; while (1) s = s s }' ;;
  sleep) exec sleep 600 ;;
  nap) exec sleep 20 ;;
  fetch) wget -q -O "$out" "$2" || exit 3 ;;
  *)
    echo "args=$#" > "$out"
    for a in "$@"; do echo "[$a]" >> "$out"; done
    echo "greeting=$GREETING pwd=$(pwd) uid=$(id -u)" >> "$out"
    echo "scratch" > /tmp/written-by-the-app
    if [ -n "$IEXEC_DATASET_FILENAME" ]; then echo "data=$(cat "$IEXEC_IN/$IEXEC_DATASET_FILENAME")" >> "$out"; fi
    if [ -n "$IEXEC_REQUESTER_SECRET_1" ]; then echo "secret=$IEXEC_REQUESTER_SECRET_1" >> "$out"; fi
    ;;
esac
echo "{\"deterministic-output-path\":\"$out\"}" > "$IEXEC_OUT/computed.json"
"#;

/// The static binary: its arguments and PATH (which a `FROM scratch` image gets from Docker's
/// default) into the result.
const C_APP: &str = r#"#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    const char *o = getenv("IEXEC_OUT");
    char p[4096];
    snprintf(p, sizeof p, "%s/result.txt", o);
    FILE *f = fopen(p, "w");
    if (!f) return 2;
    fprintf(f, "static");
    for (int i = 1; i < argc; i++) fprintf(f, " [%s]", argv[i]);
    fprintf(f, " PATH=%s\n", getenv("PATH"));
    fclose(f);
    snprintf(p, sizeof p, "%s/computed.json", o);
    f = fopen(p, "w");
    fprintf(f, "{\"deterministic-output-path\":\"%s/result.txt\"}", o);
    fclose(f);
    return 0;
}
"#;

enum Entry<'a> {
    File(&'a str, Vec<u8>, u32),
    Link(&'a str, &'a str),
    /// A path written as raw bytes (the tar crate refuses `..` otherwise).
    Raw(&'a [u8], &'a [u8]),
}

fn layer_tar(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        match e {
            Entry::File(p, data, mode) => {
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                h.set_entry_type(tar::EntryType::Regular);
                b.append_data(&mut h, p, data.as_slice()).unwrap();
            }
            Entry::Link(p, target) => {
                h.set_mode(0o777);
                h.set_size(0);
                h.set_entry_type(tar::EntryType::Symlink);
                b.append_link(&mut h, p, target).unwrap();
            }
            Entry::Raw(p, data) => {
                h.set_mode(0o644);
                h.set_size(data.len() as u64);
                h.set_entry_type(tar::EntryType::Regular);
                h.as_old_mut().name[..p.len()].copy_from_slice(p);
                h.set_cksum();
                b.append(&h, *data).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// An OCI layout at `dir` with one layer, the given entrypoint and Env.
fn image(dir: &Path, entries: &[Entry], entrypoint: &[&str], env: &[&str], workdir: &str) -> PathBuf {
    let tar = layer_tar(entries);
    use sha2::Digest;
    let diff_id = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&tar)));
    std::fs::create_dir_all(dir).unwrap();
    let layer = dir.join("layer.tar");
    std::fs::write(&layer, &tar).unwrap();
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Entrypoint": entrypoint, "Env": env, "WorkingDir": workdir },
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
    });
    let layout = dir.join("layout");
    veil_oci::write::write_layout(&layout, &serde_json::to_vec(&config).unwrap(), &[layer]).unwrap();
    layout
}

fn busybox_image(dir: &Path) -> PathBuf {
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static (Debian) at /bin/busybox");
    let mut entries = vec![Entry::File("bin/busybox", busybox, 0o755), Entry::File("app/app.sh", SCRIPT.into(), 0o755)];
    for tool in ["sh", "awk", "wget", "cat", "echo", "id", "sleep", "pwd"] {
        entries.push(Entry::Link(Box::leak(format!("bin/{tool}").into_boxed_str()), "busybox"));
    }
    entries.push(Entry::File("tmp/.keep", vec![], 0o644));
    image(dir, &entries, &["/app/app.sh"], &["PATH=/bin", "GREETING=hello"], "/app")
}

fn static_image(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("app.c"), C_APP).unwrap();
    let bin = dir.join("app");
    let st = Command::new("cc").args(["-static", "-O2", "-o"]).arg(&bin).arg(dir.join("app.c")).status().unwrap();
    assert!(st.success(), "cc -static");
    image(&dir.join("img"), &[Entry::File("app", std::fs::read(&bin).unwrap(), 0o755)], &["/app"], &[], "")
}

fn skopeo(from: &str, to: &str) {
    let out = Command::new("skopeo")
        .args(["copy", "-q", "--dest-tls-verify=false", from, to])
        .output()
        .expect("skopeo (Debian) is installed");
    assert!(out.status.success(), "skopeo copy {from} {to}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Debian's docker-registry (distribution) on a free loopback port, its storage in `dir`.
struct Registry {
    child: std::process::Child,
    host: String,
    storage: PathBuf,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn registry(dir: &Path) -> Registry {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let storage = dir.join("registry");
    std::fs::create_dir_all(&storage).unwrap();
    let config = dir.join("registry.yml");
    let yml = format!(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
        storage.display()
    );
    std::fs::write(&config, yml).unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry (Debian) is installed");
    let host = format!("127.0.0.1:{port}");
    let reg = Registry { child, host, storage };
    for _ in 0..100 {
        if std::net::TcpStream::connect(&reg.host).is_ok() {
            return reg;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("docker-registry did not start");
}

fn addr(v: &Value) -> String {
    v["address"].as_str().unwrap().to_string()
}

struct Net {
    node: common::Chain,
    _scheduler: Service,
    _worker: Service,
    pool: String,
}

fn network(b: Backend, d: &Path) -> Net {
    let node = common::chain(b, &d.join("node"));
    let url = node.url.clone();
    for i in ["1", "2", "3", "4", "5"] {
        ok(&url, &["account", "deposit", "100 RLC", "--dev-account", i]);
    }
    let (pool, scheduler) = common::pool_and_scheduler(&url, &d.join("sched"));
    let worker = common::spawn_worker(&scheduler.url, &url, "5", &d.join("worker"));
    ok(&url, &["workerpool", "publish", "--workerpool", &pool, "--volume", "100", "--dev-account", "3"]);
    ok(
        &url,
        &["workerpool", "publish", "--workerpool", &pool, "--tag", "tee", "--volume", "100", "--dev-account", "3"],
    );
    Net { node, _scheduler: scheduler, _worker: worker, pool }
}

/// Deploys and publishes the image app `reference` as `name` (PoCo refuses a second app with the
/// same name, multiaddr and checksum); its address.
fn deploy(url: &str, reference: &str, tee: bool, name: &str) -> String {
    let app = addr(&ok(url, &["app", "deploy", "--image", reference, "--name", name, "--dev-account", "1"]));
    let mut publish = vec!["app", "publish", "--app", &app, "--volume", "100", "--dev-account", "1"];
    if tee {
        publish.extend(["--tag", "tee"]);
    }
    ok(url, &publish);
    app
}

/// Runs a task of `app` with `args` and returns its result.txt.
fn run(url: &str, d: &Path, app: &str, args: &str) -> String {
    let r = ok(url, &["run", app, "--args", args, "--dev-account", "4", "--timeout", "60"]);
    let task = &r["tasks"][0];
    assert_eq!(task["status"], "COMPLETED", "{r}");
    let out = d.join(format!("result-{}", &app[2..10]));
    ok(url, &["result", "get", task["taskid"].as_str().unwrap(), "--out", out.to_str().unwrap()]);
    std::fs::read_to_string(out.join("result.txt")).unwrap()
}

/// Starts a task of `app` and waits for its first replicate to fail; the cause and attempts.
fn failure(url: &str, scheduler: &str, app: &str) -> (String, Value) {
    let deal = ok(url, &["run", app, "--no-watch", "--dev-account", "4"]);
    let dealid = deal["dealid"].as_str().unwrap();
    let first: u64 = ok(url, &["deal", "show", dealid])["botFirst"].as_str().unwrap().parse().unwrap();
    let taskid = format!("{:?}", veil_core::state::task_id(&dealid.parse().unwrap(), veil_core::U256::from(first)));
    let t0 = std::time::Instant::now();
    loop {
        let t = veil(url, &["task", "show", &taskid, "--scheduler", scheduler]).unwrap_or_default();
        if t["replicates"][0]["status"] == "failed" {
            assert_eq!(t["status"], "ACTIVE", "nothing was contributed: {t}");
            return (
                t["replicates"][0]["cause"].as_str().unwrap_or_default().to_string(),
                t["replicates"][0]["attempts"].clone(),
            );
        }
        assert!(t0.elapsed().as_secs() < 30, "task {taskid} still at {t}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn image_apps_run_from_every_transport_and_bad_images_are_refused(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let reg = registry(d);
    let layout = busybox_image(&d.join("busybox"));
    let oci = format!("oci:{}", layout.display());
    let archive = format!("oci-archive:{}", d.join("bb-oci.tar").display());
    let docker = format!("docker-archive:{}", d.join("bb-docker.tar").display());
    let pushed = format!("{}/busybox-app:1.0", reg.host);
    skopeo(&oci, &archive);
    skopeo(&oci, &format!("{docker}:busybox-app:1.0"));
    skopeo(&oci, &format!("docker://{pushed}"));
    let n = network(b, d);
    let url = &n.node.url;
    let scheduler = &n._scheduler.url;

    // Every transport, the same app: args split shell-style, the image's Env and WorkingDir.
    for (i, reference) in [&oci, &archive, &docker, &pushed].into_iter().enumerate() {
        let app = deploy(url, reference, false, &format!("transport-{i}"));
        let text = run(url, d, &app, r#"'a b' "c d" e"#);
        assert_eq!(text, "args=3\n[a b]\n[c d]\n[e]\ngreeting=hello pwd=/app uid=0\n", "{reference}");
    }

    // A local image pushed by `veil app deploy --push` to the registry, registered there, pulled.
    let target = format!("{}/pushed-by-veil:2.0", reg.host);
    let args = ["app", "deploy", "--image", &oci, "--push", &target, "--name", "pushed", "--dev-account", "1"];
    let v = ok(url, &args);
    assert_eq!(v["multiaddr"], target.as_str(), "{v}");
    let app = addr(&v);
    ok(url, &["app", "publish", "--app", &app, "--volume", "100", "--dev-account", "1"]);
    assert!(run(url, d, &app, "pushed").starts_with("args=1\n[pushed]\n"));

    // A static binary FROM scratch: no PATH in the image, Docker's default given.
    let st = static_image(&d.join("static"));
    let app = deploy(url, &format!("oci:{}", st.display()), false, "static");
    assert_eq!(
        run(url, d, &app, "x 'y z'"),
        "static [x] [y z] PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    );

    // A manifest digest that is not the on-chain checksum: refused, not retried.
    let wrong = format!("0x{}", "11".repeat(32));
    let args = ["app", "deploy", "--name", "bad", "--app-type", "DOCKER", "--multiaddr", &pushed, "--checksum", &wrong];
    let bad = addr(&ok(url, &[&args[..], &["--dev-account", "1"]].concat()));
    ok(url, &["app", "publish", "--app", &bad, "--dev-account", "1"]);
    let (cause, attempts) = failure(url, scheduler, &bad);
    assert!(cause.contains("is not the registered one") && cause.contains(&wrong[2..]), "{cause}");
    assert_eq!(attempts, 1, "a wrong image is not retried");

    // A layer that escapes the root, and a whiteout of the root's parent: refused when unpacked.
    for (name, entry) in [("slip", &b"../escaped.txt"[..]), ("whiteout", &b".wh..."[..])] {
        let evil = image(&d.join(name), &[Entry::Raw(entry, b"x")], &["/x"], &[], "");
        let app = deploy(url, &format!("oci:{}", evil.display()), false, name);
        let (cause, attempts) = failure(url, scheduler, &app);
        assert!(cause.contains("unsafe layer entry"), "{name}: {cause}");
        assert_eq!(attempts, 1, "{name}: not retried");
    }
    assert!(!d.join("worker/images/tmp/escaped.txt").exists() && !d.join("worker").join("escaped.txt").exists());

    // A layer tampered with in the registry after deployment: its digest does not match.
    let other = format!("{}/static-app:1.0", reg.host);
    skopeo(&format!("oci:{}", st.display()), &format!("docker://{other}"));
    let app = deploy(url, &other, false, "tampered");
    // The registry keeps the blobs it got (skopeo compressed the layer): the repository's largest.
    let blobs = reg.storage.join("docker/registry/v2/blobs/sha256");
    let layers = reg.storage.join("docker/registry/v2/repositories/static-app/_layers/sha256");
    let data = std::fs::read_dir(&layers)
        .unwrap()
        .map(|e| {
            let hex = e.unwrap().file_name().to_string_lossy().to_string();
            blobs.join(&hex[..2]).join(&hex).join("data")
        })
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&data).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();
    let (cause, attempts) = failure(url, scheduler, &app);
    assert!(cause.contains("tampered"), "{cause}");
    assert_eq!(attempts, 1, "a tampered image is not retried");

    // A TEE task on an image: protected data and a requester secret reach the app in the enclave.
    let tee_app = deploy(url, &archive, true, "tee");
    std::fs::write(d.join("secret.txt"), "IMAGE-PLAINTEXT").unwrap();
    let ds = addr(&ok(
        url,
        &["data", "protect", d.join("secret.txt").to_str().unwrap(), "--name", "s", "--dev-account", "2"],
    ));
    let requester = b.address(4);
    let grant = ["data", "grant", "--dataset", &ds, "--app", &tee_app, "--requester", &requester, "--dev-account", "2"];
    ok(url, &grant);
    ok(url, &["requester", "push-secret", "api-token", "--value", "tok-123", "--dev-account", "4"]);
    let r = ok(
        url,
        &[
            "run",
            &tee_app,
            "--tee",
            "--dataset",
            &ds,
            "--secret",
            "1=api-token",
            "--args",
            "tee",
            "--dev-account",
            "4",
            "--timeout",
            "60",
        ],
    );
    let task = &r["tasks"][0];
    assert_eq!(task["status"], "COMPLETED", "{r}");
    let out = d.join("tee-result");
    ok(url, &["result", "get", task["taskid"].as_str().unwrap(), "--out", out.to_str().unwrap()]);
    let text = std::fs::read_to_string(out.join("result.txt")).unwrap();
    assert!(
        text.contains("[tee]") && text.contains("data=IMAGE-PLAINTEXT") && text.contains("secret=tok-123"),
        "{text}"
    );
    let _ = n.pool;
}

on_both_ledgers!(image_apps_run_from_every_transport_and_bad_images_are_refused);

/// `veil app test --image`, as a worker runs images, with each OCI runtime (crun and runc): the
/// memory and time limits, the network on and off.
#[test]
fn image_limits_and_network_through_app_test() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let layout = busybox_image(&d.join("busybox"));
    let oci = format!("oci:{}", layout.display());
    let project = d.join("project");
    std::fs::create_dir_all(&project).unwrap();
    // A server on loopback: reachable with the network on, not with it off.
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in server.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 13\r\n\r\npong-from-api");
        }
    });
    let fetch = format!("fetch http://127.0.0.1:{port}/");
    for runtime in ["crun", "runc"] {
        let test = |extra: &[&str]| {
            let mut args = vec!["app", "test", "--dir", project.to_str().unwrap(), "--image", &oci];
            args.extend_from_slice(extra);
            common::veil_env("http://127.0.0.1:1", &args, &[("VEIL_OCI_RUNTIME", runtime)])
        };
        let v = test(&["--args", "'quoted arg'"]).unwrap();
        assert_eq!(v["runtime"], "image");
        assert!(v["image"]["runner"].as_str().unwrap().starts_with(runtime), "{v}");
        assert!(v["result"].as_str().unwrap().contains("[quoted arg]"), "{v}");
        let e = test(&["--args", "mem", "--memory-limit-mb", "32"]).unwrap_err();
        assert!(e.contains("memory limit (32 MiB)"), "{runtime}: {e}");
        let e = test(&["--args", "sleep", "--time-limit", "1"]).unwrap_err();
        assert!(e.contains("ran out of time"), "{runtime}: {e}");
        let v = test(&["--args", &fetch]).unwrap();
        assert_eq!(v["result"], "pong-from-api", "{runtime}: {v}");
        let e = test(&["--args", &fetch, "--app-network", "off"]).unwrap_err();
        assert!(e.contains("exited with status 3"), "{runtime}: {e}");
    }
    // No usable OCI runtime: image apps are refused with the cause.
    let args = ["app", "test", "--dir", project.to_str().unwrap(), "--image", &oci];
    let e = common::veil_env("http://127.0.0.1:1", &args, &[("VEIL_OCI_RUNTIME", "no-such-runtime")]).unwrap_err();
    assert!(e.contains("cannot run image apps") && e.contains("no-such-runtime"), "{e}");
}

/// `veil app init --template docker` writes an iExec-style project; without podman or buildah,
/// `veil app test` says what to install instead of failing obscurely.
#[test]
fn a_dockerfile_project_says_what_builds_it() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("hello");
    ok("http://127.0.0.1:1", &["app", "init", "hello", "--template", "docker", "--dir", project.to_str().unwrap()]);
    let dockerfile = std::fs::read_to_string(project.join("Dockerfile")).unwrap();
    assert!(dockerfile.contains(r#"ENTRYPOINT ["python3", "/app/app.py"]"#), "{dockerfile}");
    assert!(!project.join("iapp.toml").exists(), "an image project has no bundle manifest");
    let out = Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(["app", "test", "--json", "--dir", project.to_str().unwrap()])
        .env("PATH", dir.path())
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!out.status.success());
    let e = v["error"].as_str().unwrap();
    assert!(e.contains("podman or buildah") && e.contains("--image docker-archive:FILE"), "{e}");
}

/// Mount ids of the overlays mounted under `dir` (from /proc/self/mountinfo).
fn overlays_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let d = dir.canonicalize().unwrap().display().to_string();
    info.lines()
        .filter(|l| l.contains(" - overlay ") && l.split(' ').nth(4).is_some_and(|m| m.starts_with(&d)))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect()
}

/// A worker killed in the middle of an image task leaves the task's layer mounted; the worker
/// started again on the same folder unmounts it before taking work.
#[test]
fn a_restarted_worker_clears_the_layers_a_killed_one_left_mounted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let n = network(Backend::Embedded, d);
    let url = &n.node.url;
    let layout = busybox_image(&d.join("busybox"));
    let app = deploy(url, &format!("oci:{}", layout.display()), false, "sleeper");
    ok(url, &["run", &app, "--args", "nap", "--no-watch", "--dev-account", "4"]);
    let worker_dir = d.join("worker");
    let t0 = std::time::Instant::now();
    let stale = loop {
        let m = overlays_under(&worker_dir);
        if !m.is_empty() {
            break m;
        }
        assert!(t0.elapsed().as_secs() < 30, "the task never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut killed = n._worker;
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    std::mem::forget(killed);
    assert_eq!(overlays_under(&worker_dir), stale, "kill -9 leaves the layer mounted");
    let _again = common::spawn_worker(&n._scheduler.url, url, "5", &worker_dir);
    let t0 = std::time::Instant::now();
    while overlays_under(&worker_dir).iter().any(|m| stale.contains(m)) {
        assert!(t0.elapsed().as_secs() < 20, "the stale layer is still mounted");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(n.node);
}
