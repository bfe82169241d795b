//! The process runtime with real interpreters: the environment contract, digests, limits, isolation.

use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Duration;
use veil_exec::bundle::Bundle;
use veil_exec::contract::{TaskInfo, environment};
use veil_exec::process::ProcessRuntime;
use veil_exec::result::{ResultError, digest, read_computed};
use veil_exec::{ExecError, Job, Runtime};

const PY_APP: &str = r#"
import json, os, sys
out = os.environ["IEXEC_OUT"]
with open(os.path.join(out, "result.txt"), "w") as f:
    f.write("args=" + "|".join(sys.argv[1:]) + "\n")
    f.write("task=" + os.environ["IEXEC_TASK_ID"] + "\n")
    f.write("env=" + ",".join(sorted(os.environ.keys())) + "\n")
json.dump({"deterministic-output-path": os.path.join(out, "result.txt")}, open(os.path.join(out, "computed.json"), "w"))
"#;

fn bundle(dir: &Path, manifest: &str, files: &[(&str, &str)]) -> Bundle {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("iapp.toml"), manifest).unwrap();
    for (name, body) in files {
        std::fs::write(dir.join(name), body).unwrap();
    }
    Bundle::pack(dir).unwrap()
}

fn job(root: &Path, b: &Bundle, args: &[&str], time_limit: Duration) -> Job {
    let app = root.join("app");
    b.unpack(&app).unwrap();
    let (iin, out) = (root.join("in"), root.join("out"));
    std::fs::create_dir_all(&iin).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let info = TaskInfo {
        deal_id: "0xdeal".into(),
        task_id: "0xtask".into(),
        task_index: 0,
        bot_first: 0,
        bot_size: 1,
        ..Default::default()
    };
    Job {
        app_dir: app,
        manifest: b.manifest.clone(),
        args: args.iter().map(|s| s.to_string()).collect(),
        env: environment(&info, &iin, &out),
        iexec_in: iin,
        iexec_out: out,
        time_limit,
        memory_limit: 512 << 20,
        stdout: root.join("stdout.log"),
        stderr: root.join("stderr.log"),
    }
}

fn py_bundle(dir: &Path, body: &str) -> Bundle {
    bundle(
        dir,
        "name = \"t\"\nruntime = \"process\"\nentrypoint = \"app.py\"\ninterpreter = \"python3\"\n",
        &[("app.py", body)],
    )
}

#[test]
fn python_app_sees_exactly_the_contract_and_digests_agree() {
    let rt = ProcessRuntime::new();
    let d = tempfile::tempdir().unwrap();
    let b = py_bundle(&d.path().join("src"), PY_APP);
    let mut digests = vec![];
    for run in 0..2 {
        let root = d.path().join(format!("run{run}"));
        let j = job(&root, &b, &["hello", "two words"], Duration::from_secs(20));
        rt.run(&j).unwrap_or_else(|e| panic!("{e}: {}", std::fs::read_to_string(&j.stderr).unwrap_or_default()));
        let c = read_computed(&j.iexec_out).unwrap();
        let dg = digest(&j.iexec_out, &c).unwrap();
        let bytes = std::fs::read(j.iexec_out.join("result.txt")).unwrap();
        assert_eq!(dg.0, <[u8; 32]>::from(Sha256::digest(&bytes)), "digest = sha256 of the deterministic file");
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("args=hello|two words"), "{text}");
        let env_line = text.lines().find(|l| l.starts_with("env=")).unwrap();
        for k in env_line.trim_start_matches("env=").split(',') {
            assert!(k.starts_with("IEXEC_") || k == "LC_CTYPE", "unexpected variable {k} in the app's environment");
        }
        assert!(env_line.contains("IEXEC_DATASET_FILENAME") && env_line.contains("IEXEC_BOT_SIZE"));
        digests.push(dg);
    }
    assert_eq!(digests[0], digests[1], "same app, same input, same digest");
}

#[test]
fn an_endless_app_is_killed_at_its_limit() {
    let rt = ProcessRuntime::new();
    let d = tempfile::tempdir().unwrap();
    let b = py_bundle(&d.path().join("src"), "while True:\n    pass\n");
    let j = job(d.path(), &b, &[], Duration::from_millis(700));
    let t = std::time::Instant::now();
    let e = rt.run(&j).unwrap_err();
    assert!(matches!(e, ExecError::Timeout(_)), "{e}");
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[test]
fn missing_or_bad_computed_json_is_a_failure_with_its_cause() {
    let rt = ProcessRuntime::new();
    let d = tempfile::tempdir().unwrap();
    let b = py_bundle(&d.path().join("src"), "print('no result')\n");
    let j = job(d.path(), &b, &[], Duration::from_secs(20));
    rt.run(&j).unwrap();
    assert_eq!(read_computed(&j.iexec_out).unwrap_err(), ResultError::Missing);
    std::fs::write(j.iexec_out.join("computed.json"), "{\"deterministic-output-path\": \"/iexec_out/nope\"}").unwrap();
    let c = read_computed(&j.iexec_out).unwrap();
    assert!(matches!(digest(&j.iexec_out, &c), Err(ResultError::NoOutput(_))));
    std::fs::write(j.iexec_out.join("computed.json"), "{\"deterministic-output-path\": \"../../etc/passwd\"}").unwrap();
    let c = read_computed(&j.iexec_out).unwrap();
    assert!(matches!(digest(&j.iexec_out, &c), Err(ResultError::Invalid(_))));
    std::fs::write(j.iexec_out.join("computed.json"), "not json").unwrap();
    assert!(matches!(read_computed(&j.iexec_out), Err(ResultError::Invalid(_))));
}

#[test]
fn no_network_and_a_memory_limit() {
    let rt = ProcessRuntime::new();
    let d = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = format!(
        "import os, socket\ns = socket.socket()\ntry:\n    s.connect(('127.0.0.1', {port}))\n    r = 'connected'\nexcept OSError:\n    r = 'blocked'\nopen(os.environ['IEXEC_OUT'] + '/net', 'w').write(r)\n"
    );
    let b = py_bundle(&d.path().join("src"), &app);
    let j = job(&d.path().join("net"), &b, &[], Duration::from_secs(20));
    rt.run(&j).unwrap();
    let seen = std::fs::read_to_string(j.iexec_out.join("net")).unwrap();
    if rt.isolates_network() {
        assert_eq!(seen, "blocked", "the app reached the host's loopback");
    } else {
        eprintln!("no network namespace on this machine: isolation not applied (the worker says so)");
    }
    let b = py_bundle(&d.path().join("src2"), "x = bytearray(1024 * 1024 * 1024)\n");
    let mut j = job(&d.path().join("mem"), &b, &[], Duration::from_secs(20));
    j.memory_limit = 128 << 20;
    let e = rt.run(&j).unwrap_err();
    assert!(matches!(e, ExecError::Exit(_) | ExecError::Signal(_)), "{e}");
}

#[test]
fn node_app_runs() {
    let rt = ProcessRuntime::new();
    let d = tempfile::tempdir().unwrap();
    let app = "const fs=require('fs');const o=process.env.IEXEC_OUT;fs.writeFileSync(o+'/r.txt','hi '+process.argv.slice(2).join(' '));fs.writeFileSync(o+'/computed.json',JSON.stringify({'deterministic-output-path':o+'/r.txt'}));";
    let b = bundle(
        &d.path().join("src"),
        "name = \"n\"\nruntime = \"process\"\nentrypoint = \"app.js\"\ninterpreter = \"node\"\n",
        &[("app.js", app)],
    );
    let mut j = job(d.path(), &b, &["x"], Duration::from_secs(20));
    j.memory_limit = 2 << 30;
    rt.run(&j).unwrap_or_else(|e| panic!("{e}: {}", std::fs::read_to_string(&j.stderr).unwrap_or_default()));
    assert_eq!(std::fs::read_to_string(j.iexec_out.join("r.txt")).unwrap(), "hi x");
}
