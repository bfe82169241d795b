//! End-to-end tests of the real `veil` binary.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn veil(args: &[&str], home: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(args)
        .env("VEIL_HOME", home)
        .env_remove("VEIL_PASSWORD")
        .env_remove("VEIL_PRIVATE_KEY")
        .output()
        .expect("run veil")
}

fn ok_json(args: &[&str], home: &Path) -> Value {
    let out = veil(args, home);
    assert!(
        out.status.success(),
        "veil {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("veil {args:?}: not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn veil_in(args: &[&str], home: &Path) -> String {
    let out = veil(args, home);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "veil {args:?} failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

fn fails_with(args: &[&str], home: &Path, needle: &str) {
    let out = veil(args, home);
    assert!(!out.status.success(), "veil {args:?} should fail");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(needle), "veil {args:?}: `{text}` should mention `{needle}`");
}

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../veil-core/tests/fixtures/order_vectors.json");

#[test]
fn wallet_import_then_sign_matches_independent_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(VECTORS).unwrap()).unwrap();
    std::fs::write(d.join("key"), doc["privateKey"].as_str().unwrap()).unwrap();
    std::fs::write(d.join("pw"), "correct horse\n").unwrap();
    let ks = d.join("ks.json");
    let ks_s = ks.to_str().unwrap();
    let v = ok_json(
        &[
            "wallet",
            "import",
            "--private-key-file",
            d.join("key").to_str().unwrap(),
            "--password-file",
            d.join("pw").to_str().unwrap(),
            "--light",
            "--out",
            ks_s,
            "--json",
        ],
        d,
    );
    assert_eq!(v["address"], doc["signer"]);
    let v = ok_json(&["wallet", "show", ks_s, "--password-file", d.join("pw").to_str().unwrap(), "--json"], d);
    assert_eq!(v["verified"], true);

    for (i, vec) in doc["vectors"].as_array().unwrap().iter().enumerate() {
        let f = d.join(format!("order{i}.json"));
        std::fs::write(&f, vec["order"].to_string()).unwrap();
        let chain = vec["chainId"].to_string();
        let kind = vec["kind"].as_str().unwrap();
        let pw = d.join("pw");
        let args = [
            "order",
            "sign",
            kind,
            f.to_str().unwrap(),
            "--wallet",
            ks_s,
            "--password-file",
            pw.to_str().unwrap(),
            "--chain-id",
            &chain,
            "--json",
        ];
        let out = ok_json(&args, d);
        assert_eq!(out["hash"], vec["hash"], "{kind} on {chain}");
        assert_eq!(out["signature"], vec["signature"], "{kind} on {chain}");
        let args = [
            "order",
            "hash",
            kind,
            f.to_str().unwrap(),
            "--chain-id",
            &chain,
            "--verifying-contract",
            vec["verifyingContract"].as_str().unwrap(),
            "--json",
        ];
        assert_eq!(ok_json(&args, d)["hash"], vec["hash"]);
    }
}

#[test]
fn bad_inputs_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(VECTORS).unwrap()).unwrap();
    let mut order = doc["vectors"][0]["order"].clone();
    order["appprice"] = Value::from("lots");
    let f = d.join("bad.json");
    std::fs::write(&f, order.to_string()).unwrap();
    fails_with(&["order", "hash", "app", f.to_str().unwrap()], d, "appprice");
    fails_with(&["order", "hash", "app", d.join("missing.json").to_str().unwrap()], d, "cannot read order file");
    fails_with(&["order", "hash", "app", f.to_str().unwrap(), "--chain-id", "5"], d, "--verifying-contract");
    let out = veil(&["order", "hash", "app", f.to_str().unwrap(), "--json"], d);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["error"].as_str().unwrap().contains("appprice"));
    std::fs::write(d.join("pw"), "pw\n").unwrap();
    std::fs::write(d.join("key"), "0x1234").unwrap();
    fails_with(
        &[
            "wallet",
            "import",
            "--private-key-file",
            d.join("key").to_str().unwrap(),
            "--password-file",
            d.join("pw").to_str().unwrap(),
        ],
        d,
        "64 hex",
    );
    fails_with(&["wallet", "create", "--light"], d, "--password-file");
}

#[test]
fn wallet_create_refuses_to_overwrite_and_wrong_password_fails() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("pw"), "pw\n").unwrap();
    let pw = d.join("pw");
    let v = ok_json(&["wallet", "create", "--light", "--password-file", pw.to_str().unwrap(), "--json"], d);
    let path = v["wallet"].as_str().unwrap().to_string();
    assert!(path.starts_with(d.to_str().unwrap()), "default location is under VEIL_HOME");
    fails_with(
        &["wallet", "create", "--light", "--password-file", pw.to_str().unwrap(), "--out", &path],
        d,
        "already exists",
    );
    std::fs::write(d.join("wrong"), "nope\n").unwrap();
    fails_with(&["wallet", "show", &path, "--password-file", d.join("wrong").to_str().unwrap()], d, "wrong password");
}

#[test]
fn quickstart_core_conserves_rlc() {
    let dir = tempfile::tempdir().unwrap();
    let v = ok_json(&["quickstart", "--core", "--json"], dir.path());
    let total: i128 =
        v["balances"].as_array().unwrap().iter().map(|b| b["change"].as_str().unwrap().parse::<i128>().unwrap()).sum();
    assert_eq!(total, 0);
    assert!(v["steps"].as_array().unwrap().len() >= 8);
}

/// The README's main job: a real network, a confidential task, the decrypted result, RLC conserved.
#[test]
fn quickstart_runs_a_confidential_task_on_a_real_network() {
    let dir = tempfile::tempdir().unwrap();
    quickstart_on("embedded", dir.path());
    // Human output: one line per step, and the decrypted result.
    let out = veil_in(&["quickstart"], dir.path());
    assert!(out.contains("decrypted: Hello Alice!"), "{out}");
    assert!(out.contains("simulated enclave: no hardware protection"), "{out}");
}

/// The same story on iExec's PoCo contracts (anvil): same result, same payments.
#[test]
fn quickstart_runs_the_same_story_on_poco() {
    let dir = tempfile::tempdir().unwrap();
    let v = quickstart_on("anvil", dir.path());
    assert!(v["steps"][0]["text"].as_str().unwrap().contains("iExec's PoCo on anvil"), "{v}");
}

fn quickstart_on(chain: &str, dir: &std::path::Path) -> serde_json::Value {
    let v = ok_json(&["quickstart", "--chain", chain, "--json"], dir);
    assert!(
        v["result"].as_str().unwrap().starts_with("Hello Alice! The quickstart iApp read your protected data"),
        "{v}"
    );
    let steps: Vec<&str> = v["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(steps, ["network", "wallets", "protect", "deploy", "grant", "keys", "run", "result", "balances"]);
    let rows = v["balances"].as_array().unwrap();
    let change = |party: &str| -> i128 {
        let row = rows.iter().find(|r| r["party"] == party).unwrap();
        row["changeNrlc"].as_str().unwrap().parse().unwrap()
    };
    assert_eq!(change("requester"), -4_000_000_000);
    assert_eq!(change("app developer"), 1_000_000_000);
    assert_eq!(change("data owner"), 2_000_000_000);
    assert_eq!(rows.iter().map(|r| r["changeNrlc"].as_str().unwrap().parse::<i128>().unwrap()).sum::<i128>(), 0);
    v
}

/// `veil config`'s precedence: flag > environment > ./veil.toml > $VEIL_HOME/veil.toml > default.
#[test]
fn settings_come_from_flags_then_environment_then_files() {
    let dir = tempfile::tempdir().unwrap();
    let (project, home) = (dir.path().join("project"), dir.path().join("home"));
    std::fs::create_dir_all(&project).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("veil.toml"), "node = \"http://127.0.0.1:1\"\nscheduler = \"http://home:2\"\n").unwrap();
    std::fs::write(project.join("veil.toml"), "node = \"http://127.0.0.1:3\"\nwallet = \"keys/me.json\"\n").unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_veil"));
        c.args(args).current_dir(&project).env("VEIL_HOME", &home);
        for k in ["VEIL_NODE", "VEIL_SCHEDULER", "VEIL_WALLET", "VEIL_DEV_ACCOUNT"] {
            c.env_remove(k);
        }
        c.envs(env.iter().copied());
        let out = c.output().unwrap();
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    };
    let setting = |out: &str, key: &str| -> (String, String) {
        let v: Value = serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"));
        let s = v["settings"].as_array().unwrap().iter().find(|s| s["key"] == key).unwrap().clone();
        (s["value"].as_str().unwrap_or("").to_string(), s["source"].as_str().unwrap().to_string())
    };
    let out = run(&["config", "--json"], &[]);
    assert_eq!(setting(&out, "node"), ("http://127.0.0.1:3".into(), "veil.toml".into()), "the project beats home");
    assert_eq!(setting(&out, "scheduler").0, "http://home:2", "home fills what the project leaves");
    assert!(setting(&out, "wallet").0.ends_with("keys/me.json"), "paths are relative to their file");
    let out = run(&["config", "--json"], &[("VEIL_NODE", "http://127.0.0.1:4")]);
    assert_eq!(setting(&out, "node"), ("http://127.0.0.1:4".into(), "environment (VEIL_NODE)".into()));
    // The commands see the same: which node they try to reach says where the setting came from.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (&["account", "show", "0x0000000000000000000000000000000000000001"], &[], "127.0.0.1:3"),
        (
            &["account", "show", "0x0000000000000000000000000000000000000001"],
            &[("VEIL_NODE", "http://127.0.0.1:4")],
            "127.0.0.1:4",
        ),
        (
            &["account", "show", "0x0000000000000000000000000000000000000001", "--node", "http://127.0.0.1:5"],
            &[("VEIL_NODE", "http://127.0.0.1:4")],
            "127.0.0.1:5",
        ),
        // The wallet from veil.toml is used (and missing) unless a flag or the environment picks a signer.
        (&["account", "deposit", "1"], &[], "keys/me.json"),
        (&["account", "deposit", "1", "--dev-account", "1"], &[], "127.0.0.1:3"),
        (&["account", "deposit", "1"], &[("VEIL_DEV_ACCOUNT", "1")], "127.0.0.1:3"),
    ];
    for (args, env, needle) in cases {
        let out = run(args, env);
        assert!(out.contains(needle), "{args:?} {env:?}: `{out}` should mention `{needle}`");
    }
    std::fs::write(project.join("veil.toml"), "nod = \"x\"\n").unwrap();
    assert!(run(&["config"], &[]).contains("unknown setting `nod`"));
    std::fs::write(project.join("veil.toml"), "wallet = \"w.json\"\ndev-account = 1\n").unwrap();
    assert!(run(&["config"], &[]).contains("not both"));
}
