//! `veil dev`: one process runs the whole network; an app deployed on it runs (standard and TEE),
//! and a restart keeps the state.

mod common;
use common::{Backend, ok};

fn one_process_runs_the_network_and_keeps_its_state(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let net = common::dev_network_on(b, &d.join("net"), false);
    let url = net.url.clone();
    assert_eq!(net.ready["devAccounts"].as_array().map(Vec::len), Some(10));
    let bundle = common::wasm_app_dir(&d.join("app"));
    let app = ok(&url, &["app", "deploy", "--bundle", &bundle, "--dev-account", "1"]);
    let app = app["address"].as_str().unwrap().to_string();
    ok(&url, &["app", "publish", "--app", &app, "--dev-account", "1"]);
    ok(&url, &["app", "publish", "--app", &app, "--tag", "tee", "--dev-account", "1"]);
    // The pool's own orders are there: a standard and a TEE run both complete.
    let r = ok(&url, &["run", &app, "--args", "dev", "--dev-account", "4", "--timeout", "60"]);
    assert_eq!(r["tasks"][0]["status"], "COMPLETED", "{r}");
    let r = ok(&url, &["run", &app, "--args", "tee", "--tee", "--dev-account", "4", "--timeout", "60"]);
    assert_eq!(r["tasks"][0]["status"], "COMPLETED", "{r}");
    let dealid = r["dealid"].as_str().unwrap().to_string();
    let pool = net.ready["workerpool"].clone();
    drop(net);

    // Restarted: same pool, the deal is still there, and work still runs.
    let net = common::dev_network_on(b, &d.join("net"), false);
    assert_eq!(net.ready["workerpool"], pool);
    ok(&net.url, &["deal", "show", &dealid]);
    let r = ok(&net.url, &["run", &app, "--args", "again", "--dev-account", "4", "--timeout", "60"]);
    assert_eq!(r["tasks"][0]["status"], "COMPLETED", "{r}");
    drop(net);

    // --fresh starts over: the old deal is gone.
    let net = common::dev_network_on(b, &d.join("net"), true);
    assert!(common::veil(&net.url, &["deal", "show", &dealid]).is_err());
}

on_both_ledgers!(one_process_runs_the_network_and_keeps_its_state);
