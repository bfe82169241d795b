//! The wasm runtime with a real wasm32-wasip1 app (tests/fixtures/hello.wasm, source beside it).

use std::path::Path;
use std::time::{Duration, Instant};
use veil_exec::bundle::{Bundle, Manifest, RuntimeKind};
use veil_exec::contract::{TaskInfo, environment};
use veil_exec::result::{digest, read_computed};
use veil_exec::{ExecError, Job, Runtime};
use veil_wasm::WasmRuntime;

fn job(root: &Path, args: &[&str], limit: Duration) -> Job {
    let src = root.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("iapp.toml"), "name = \"w\"\nruntime = \"wasm\"\nentrypoint = \"hello.wasm\"\n").unwrap();
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/hello.wasm"), src.join("hello.wasm")).unwrap();
    let b = Bundle::pack(&src).unwrap();
    assert_eq!(b.manifest.runtime, RuntimeKind::Wasm);
    let app = root.join("app");
    b.unpack(&app).unwrap();
    let (iin, out) = (root.join("in"), root.join("out"));
    std::fs::create_dir_all(&iin).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(iin.join("input.txt"), "from IEXEC_IN").unwrap();
    let info = TaskInfo { deal_id: "0xd".into(), task_id: "0xt".into(), bot_size: 1, ..Default::default() };
    Job {
        app_dir: app,
        manifest: Manifest {
            name: "w".into(),
            runtime: RuntimeKind::Wasm,
            entrypoint: "hello.wasm".into(),
            interpreter: None,
            build: None,
            include: None,
        },
        args: args.iter().map(|s| s.to_string()).collect(),
        env: environment(&info, &iin, &out),
        iexec_in: iin,
        iexec_out: out,
        time_limit: limit,
        memory_limit: 64 << 20,
        stdout: root.join("stdout"),
        stderr: root.join("stderr"),
    }
}

fn result(j: &Job) -> String {
    std::fs::read_to_string(j.iexec_out.join("result.txt")).unwrap()
}

#[test]
fn runs_and_digests_agree_across_runs_and_with_the_same_bytes_from_any_runtime() {
    let rt = WasmRuntime::new().unwrap();
    let d = tempfile::tempdir().unwrap();
    let mut digests = vec![];
    for i in 0..2 {
        let j = job(&d.path().join(format!("r{i}")), &["Veil", "world"], Duration::from_secs(10));
        rt.run(&j).unwrap_or_else(|e| panic!("{e}: {}", std::fs::read_to_string(&j.stderr).unwrap_or_default()));
        assert_eq!(result(&j), "Hello, Veil world!");
        let c = read_computed(&j.iexec_out).unwrap();
        digests.push(digest(&j.iexec_out, &c).unwrap());
    }
    assert_eq!(digests[0], digests[1]);
    use sha2::Digest;
    assert_eq!(digests[0].0, <[u8; 32]>::from(sha2::Sha256::digest(b"Hello, Veil world!")));
}

#[test]
fn sees_iexec_in_read_only_and_nothing_else() {
    let rt = WasmRuntime::new().unwrap();
    let d = tempfile::tempdir().unwrap();
    let j = job(&d.path().join("in"), &["read-in"], Duration::from_secs(10));
    rt.run(&j).unwrap();
    assert_eq!(result(&j), "from IEXEC_IN");
    let j = job(&d.path().join("esc"), &["escape"], Duration::from_secs(10));
    rt.run(&j).unwrap();
    assert_eq!(result(&j), "contained", "the guest read a host file");
}

#[test]
fn an_endless_app_is_stopped_at_its_limit() {
    let rt = WasmRuntime::new().unwrap();
    let d = tempfile::tempdir().unwrap();
    let j = job(d.path(), &["forever"], Duration::from_millis(300));
    let t = Instant::now();
    let e = rt.run(&j).unwrap_err();
    assert!(matches!(e, ExecError::Timeout(_)), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5));
    // The runtime lives on.
    let j = job(&d.path().join("next"), &["ok"], Duration::from_secs(10));
    rt.run(&j).unwrap();
}
