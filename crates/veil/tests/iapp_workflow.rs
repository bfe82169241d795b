//! The iApp developer's loop through the real binary, for every template: `veil app init`, `veil
//! app test` (as a worker would run it), `veil app deploy`, `veil app publish` and `veil app run` on a
//! `veil dev` network, with protected data, an input file and a requester secret; then the errors a
//! developer meets.

mod common;
use common::{Backend, ok, ok_in, veil_in};
use std::path::Path;

fn result_text(dir: &Path, url: &str, task: &str, out: &Path) -> String {
    ok_in(dir, url, &["result", "get", task, "--out", out.to_str().unwrap()]);
    std::fs::read_to_string(out.join("result.txt")).unwrap()
}

fn every_template_goes_from_init_to_a_completed_confidential_task(b: Backend) {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let net = common::dev_network_on(b, &d.join("net"), false);
    let url = net.url.clone();
    std::fs::write(d.join("person.json"), r#"{"name": "Ada", "email": "ada@example.com"}"#).unwrap();
    let ds = ok(
        &url,
        &["data", "protect", "--json", d.join("person.json").to_str().unwrap(), "--name", "p", "--dev-account", "2"],
    );
    let ds = ds["address"].as_str().unwrap().to_string();
    ok(&url, &["data", "grant", "--dataset", &ds, "--access-count", "10", "--dev-account", "2"]);
    ok(&url, &["requester", "push-secret", "token", "--value", "abcd", "--dev-account", "4"]);
    std::fs::write(d.join("notes.txt"), "twelve bytes").unwrap();
    let notes = d.join("notes.txt");

    for template in ["python", "node", "rust-wasm"] {
        let name = format!("app-{template}");
        let made = ok_in(d, &url, &["app", "init", &name, "--template", template]);
        assert!(made["files"].as_array().unwrap().iter().any(|f| f == "iapp.toml"), "{made}");
        let project = d.join(&name);

        let args = ["app", "test", "--args", "World", "--protected-data", "mock", "--requester-secret", "1=s3cr3t"];
        let t = ok_in(&project, &url, &[&args[..], &["--input-file", notes.to_str().unwrap()]].concat());
        let text = t["result"].as_str().unwrap_or_default();
        for want in [
            "Hello, World!",
            "protected data: email=mock@example.com, favouriteNumber=7, name=Mock",
            "input file notes.txt: 12 bytes",
            "requester secret 1: 6 characters",
        ] {
            assert!(text.contains(want), "{template}: `{want}` missing from the test result {t}");
        }
        assert!(t["stdout"].as_str().unwrap().contains("starts with 1 argument(s)"), "{template}: {t}");
        assert!(!text.contains("s3cr3t"), "a secret's value never reaches the result");

        let app = ok_in(&project, &url, &["app", "deploy", "--dev-account", "1"]);
        let app = app["address"].as_str().unwrap().to_string();
        assert_eq!(
            app.to_lowercase(),
            std::fs::read_to_string(project.join(".veil-deploy.json"))
                .unwrap()
                .to_lowercase()
                .split('"')
                .nth(3)
                .unwrap(),
            "the project remembers its app"
        );
        ok_in(&project, &url, &["app", "publish", "--tag", "tee", "--price", "0", "--dev-account", "1"]);
        let run = ok_in(
            &project,
            &url,
            &[
                "app",
                "run",
                "--tee",
                "--dataset",
                &ds,
                "--args",
                template,
                "--secret",
                "1=token",
                "--dev-account",
                "4",
                "--timeout",
                "120",
            ],
        );
        assert_eq!(run["tasks"][0]["status"], "COMPLETED", "{template}: {run}");
        let task = run["tasks"][0]["taskid"].as_str().unwrap();
        let got = result_text(&project, &url, task, &d.join(format!("result-{template}")));
        assert_eq!(
            got,
            format!(
                "Hello, {template}!\nprotected data: email=ada@example.com, name=Ada\nrequester secret 1: 4 characters\n"
            ),
            "{template}: the task on the network reads what the local test read"
        );
        // The app's output, from inside the enclave, for the requester.
        let sched = net.ready["scheduler"].as_str().unwrap();
        let dbg = ok_in(&project, &url, &["task", "debug", task, "--scheduler", sched, "--dev-account", "4"]);
        let stdout = dbg["runs"][0]["stdout"].as_str().unwrap_or_default();
        assert!(stdout.contains(&format!("app-{template} starts with 1 argument(s)")), "{template}: {dbg}");
    }
}

fn http_get(url: &str) -> (u16, serde_json::Value) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let r = reqwest::get(url).await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or_default())
    })
}

/// A failing app's output reaches its requester, and nobody else.
fn task_debug_shows_the_app_output_to_the_requester_only(b: Backend) {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let net = common::dev_network_on(b, &d.join("net"), false);
    let (url, sched) = (net.url.clone(), net.ready["scheduler"].as_str().unwrap().to_string());
    ok_in(d, &url, &["app", "init", "crashy", "--template", "python"]);
    let project = d.join("crashy");
    let app = "import sys\nprint('computing step 1')\nprint('Traceback: the input was empty', file=sys.stderr)\nsys.exit(3)\n";
    std::fs::write(project.join("app.py"), app).unwrap();
    ok_in(&project, &url, &["app", "deploy", "--dev-account", "1"]);
    ok_in(&project, &url, &["app", "publish", "--dev-account", "1"]);
    let deal = ok_in(&project, &url, &["app", "run", "--no-watch", "--dev-account", "4"]);
    // A fresh request order: the deal's first task has index 0.
    let task = task_of(deal["dealid"].as_str().unwrap());
    let debug = |account: &str| {
        veil_in(&project, &url, &["task", "debug", &task, "--scheduler", &sched, "--dev-account", account])
    };
    let mut runs = serde_json::Value::Null;
    for _ in 0..100 {
        // Until the scheduler has initialized the task, the ledger does not know it yet.
        runs = debug("4").map(|v| v["runs"].clone()).unwrap_or_default();
        if runs.as_array().is_some_and(|r| !r.is_empty()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(runs[0]["stdout"], "computing step 1\n", "{runs}");
    assert_eq!(runs[0]["stderr"], "Traceback: the input was empty\n", "{runs}");
    let e = debug("2").unwrap_err();
    assert!(e.contains("only the requester of task"), "{e}");
    // Unsigned, stale and malformed requests to the scheduler itself.
    let (status, body) = http_get(&format!("{sched}/tasks/{task}/logs"));
    assert_eq!(status, 401, "{body}");
    let (status, body) = http_get(&format!("{sched}/tasks/{task}/logs?timestamp=1&signature=0x{}", "11".repeat(65)));
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("timestamp"), "{body}");
    let (status, _) = http_get(&format!("{sched}/tasks/0x12/logs?timestamp=1&signature=0x00"));
    assert_eq!(status, 400);
    // The failure cause the scheduler shows everyone carries none of the app's output.
    let show = ok(&url, &["task", "show", &task, "--scheduler", &sched]);
    assert!(!show.to_string().contains("Traceback"), "{show}");
}

fn task_of(dealid: &str) -> String {
    let id: veil_core::B256 = dealid.parse().unwrap();
    format!("{:?}", veil_core::state::task_id(&id, veil_core::U256::ZERO))
}

#[test]
fn the_developer_is_told_what_went_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let url = "http://127.0.0.1:9"; // no network needed
    ok_in(d, url, &["app", "init", "good", "--template", "python"]);
    let failing = d.join("failing");
    ok_in(d, url, &["app", "init", "failing", "--template", "python"]);
    std::fs::write(failing.join("app.py"), "import sys\nprint('about to fail', file=sys.stderr)\nsys.exit(3)\n")
        .unwrap();
    let broken_build = d.join("broken");
    ok_in(d, url, &["app", "init", "broken", "--template", "rust-wasm"]);
    std::fs::write(broken_build.join("src/main.rs"), "fn main() { this is not rust }").unwrap();
    let elsewhere = d.join("elsewhere");
    ok_in(d, url, &["app", "init", "elsewhere", "--template", "python"]);
    let deployed = r#"{"app": "0x0000000000000000000000000000000000000001", "node": "http://127.0.0.1:1"}"#;
    std::fs::write(elsewhere.join(".veil-deploy.json"), deployed).unwrap();
    let cases: &[(&Path, &[&str], &str)] = &[
        (d, &["app", "init", "Bad Name"], "cannot be an app name"),
        (d, &["app", "init", "good"], "exists and is not empty"),
        (d, &["app", "init", "x", "--template", "cobol"], "invalid value 'cobol'"),
        (d, &["app", "test"], "has no iapp.toml"),
        (&d.join("good"), &["app", "test", "--protected-data", "nope.bin"], "cannot read the protected data nope.bin"),
        (&d.join("good"), &["app", "test", "--input-file", "missing.txt"], "cannot read the input file missing.txt"),
        (&d.join("good"), &["app", "test", "--requester-secret", "one=x"], "not a secret index"),
        (&failing, &["app", "test"], "the app exited with status 3"),
        (&broken_build, &["app", "test"], "the build command"),
        (d, &["app", "publish", "--dev-account", "1"], "which app?"),
        (&elsewhere, &["app", "publish", "--dev-account", "1"], "was deployed on http://127.0.0.1:1"),
        (&d.join("good"), &["app", "test", "--max-result-mb", "0"], "larger than this worker's limit of 0 bytes"),
    ];
    for (cwd, args, needle) in cases {
        let e = veil_in(cwd, url, args).expect_err(&format!("{args:?} should fail"));
        assert!(e.contains(needle), "{args:?}: `{e}` should mention `{needle}`");
    }
}

on_both_ledgers!(
    every_template_goes_from_init_to_a_completed_confidential_task,
    task_debug_shows_the_app_output_to_the_requester_only
);
