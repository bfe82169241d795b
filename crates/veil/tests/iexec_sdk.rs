//! iExec's own CLI (`iexec` 9.0.1 from the npm registry; `scripts/iexec-sdk` installs it and the
//! README's test command exports `VEIL_IEXEC`) driven against `veil dev --chain anvil`, with its own
//! `chain.json` pointing every iExec service at the Veil node. What works so far (issue 17, in
//! progress): wallet import, account deposit and show, app and dataset deploy, app show, app orders
//! signed, published, listed, shown and unpublished through Veil's market API (the same orderbook
//! Veil's own commands read), requester, result-key, app and dataset secrets through iExec's SMS
//! API, `app run --tag tee,tdx --secret … --encrypt-result --watch` executed by Veil's workerpool,
//! `task show --download` through the node's IPFS gateway path, and `result decrypt`.

mod common;
use common::{Backend, ok};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

/// Runs `iexec ARGS --raw` in `dir` (with its chain.json); the JSON it answers, which must be ok.
fn iexec(dir: &Path, args: &[&str]) -> Value {
    let v = iexec_any(dir, args);
    assert_eq!(v["ok"], true, "iexec {args:?}: {v}");
    v
}

/// [`iexec`] for a command that must fail: its error message.
fn iexec_err(dir: &Path, args: &[&str]) -> String {
    let v = iexec_any(dir, args);
    assert_eq!(v["ok"], false, "iexec {args:?} should have failed: {v}");
    v["error"]["message"].as_str().unwrap_or_default().to_string()
}

fn iexec_any(dir: &Path, args: &[&str]) -> Value {
    let bin = std::env::var("VEIL_IEXEC")
        .expect("VEIL_IEXEC names iExec's CLI: run `eval \"$(scripts/iexec-sdk)\"` (the README's test command does)");
    let out = Command::new(bin).args(args).arg("--raw").current_dir(dir).output().expect("run iexec");
    // Answers go to stdout, failures to stderr, each as one JSON line.
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let line = text.lines().rev().find(|l| l.starts_with('{')).unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("iexec {args:?}: {e}: {text}"))
}

fn with<'a>(args: &[&'a str], w: &[&'a str]) -> Vec<&'a str> {
    [args, w].concat()
}

/// Whether Veil's own SMS API says the secret `path` (under `/sms/`) exists.
fn veil_has(url: &str, path: &str) -> bool {
    common::rt().block_on(async {
        let v: Value = reqwest::get(format!("{url}/sms/{path}")).await.unwrap().json().await.unwrap();
        v["exists"].as_bool().unwrap()
    })
}

#[test]
fn iexecs_own_cli_drives_a_veil_network_on_poco() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let dev = common::dev_network_on(Backend::Anvil, &d.join("dev"), true);
    let url = dev.url.clone();
    let (rpc, hub) = (dev.ready["rpc"].as_str().unwrap(), dev.ready["hub"].as_str().unwrap());
    let sdk = d.join("sdk");
    std::fs::create_dir_all(&sdk).unwrap();
    let chain = json!({
        "default": "veil",
        "chains": { "veil": {
            "id": "31337", "host": rpc, "hub": hub, "sms": url, "ipfsGateway": url,
            "iexecGateway": url, "compass": url, "pocoSubgraph": url,
        }},
    });
    std::fs::write(sdk.join("chain.json"), chain.to_string()).unwrap();
    let app_conf = json!({
        "app": {
            "owner": Backend::Anvil.address(4), "name": "sdk-app", "type": "DOCKER",
            "multiaddr": "127.0.0.1:5000/sdk-app:1.0", "checksum": format!("0x{}", "ab".repeat(32)),
        },
        "dataset": {
            "owner": Backend::Anvil.address(4), "name": "sdk-data",
            "multiaddr": "/ipfs/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
            "checksum": format!("0x{}", "cd".repeat(32)),
        },
    });
    std::fs::write(sdk.join("iexec.json"), app_conf.to_string()).unwrap();

    // The requester (anvil's account 4) as an iExec wallet; its deposit seen by Veil.
    let key = dev.ready["devAccounts"][4]["privateKey"].as_str().unwrap().to_string();
    let requester = Backend::Anvil.address(4);
    let w = ["--password", "pw", "--keystoredir", "./keys"];
    let imported = iexec(&sdk, &[&["wallet", "import", &key, "--force"][..], &w].concat());
    assert_eq!(imported["address"].as_str().unwrap().to_lowercase(), requester.to_lowercase());
    iexec(&sdk, &[&["account", "deposit", "100"][..], &w].concat());
    let shown = iexec(&sdk, &[&["account", "show"][..], &w].concat());
    let mine = ok(&url, &["account", "show", &requester]);
    assert_eq!(shown["balance"]["stake"], "100", "{shown}");
    // `iexec account deposit 100` deposits 100 nRLC; Veil shows the same escrow.
    assert_eq!(mine["balance"].to_string().trim_matches('"'), "100", "{mine}");

    // An app deployed by iExec's CLI; its order signed and published through Veil's market API.
    let app = iexec(&sdk, &[&["app", "deploy"][..], &w].concat())["address"].as_str().unwrap().to_string();
    iexec(&sdk, &[&["order", "init", "--app"][..], &w].concat());
    iexec(&sdk, &[&["order", "sign", "--app", "--skip-preflight-check"][..], &w].concat());
    let published = iexec(&sdk, &[&["order", "publish", "--app", "--force"][..], &w].concat());
    let hash = published["apporder"]["orderHash"].as_str().unwrap().to_string();
    let book = iexec(&sdk, &["orderbook", "app", &app]);
    assert_eq!(book["count"], 1, "{book}");
    assert_eq!(book["appOrders"][0]["orderHash"], hash.as_str(), "{book}");
    let shown = iexec(&sdk, &["order", "show", "--app", &hash]);
    assert_eq!(shown["apporder"]["signer"].as_str().unwrap().to_lowercase(), requester.to_lowercase(), "{shown}");
    let veils = ok(&url, &["orderbook", "app", "--app", &app]);
    assert_eq!(veils["orders"][0]["orderHash"], hash.as_str(), "one orderbook, two shapes: {veils}");
    iexec(&sdk, &[&["order", "unpublish", "--app", &hash, "--force"][..], &w].concat());
    assert_eq!(iexec(&sdk, &["orderbook", "app", &app])["count"], 0);
    assert_eq!(ok(&url, &["orderbook", "app", "--app", &app])["count"], 0);

    // Secrets through iExec's SMS API land in Veil's SMS (one SMS, two shapes).

    iexec(&sdk, &with(&["requester", "push-secret", "my-token", "--secret-value", "s3cr3t"], &w));
    assert_eq!(iexec(&sdk, &with(&["requester", "check-secret", "my-token"], &w))["isSet"], true);
    assert!(veil_has(&url, &format!("requester-secret/{requester}/my-token")));
    let e = iexec_err(&sdk, &with(&["requester", "push-secret", "my-token", "--secret-value", "other"], &w));
    assert!(e.contains("already exists"), "{e}");
    iexec(&sdk, &with(&["result", "generate-encryption-keypair", "--force"], &w));
    iexec(&sdk, &with(&["result", "push-encryption-key"], &w));
    assert_eq!(iexec(&sdk, &with(&["result", "check-encryption-key"], &w))["isEncryptionKeySet"], true);
    assert!(veil_has(&url, &format!("result-key/{requester}")));
    iexec(&sdk, &with(&["app", "push-secret", &app, "--secret-value", "dev-secret"], &w));
    assert_eq!(iexec(&sdk, &["app", "check-secret", &app])["isSecretSet"], true);
    assert!(veil_has(&url, &format!("app-secret/{app}")));
    let e = iexec_err(&sdk, &with(&["app", "push-secret", &app, "--secret-value", "again"], &w));
    assert!(e.contains("can't be updated"), "{e}");
    let dataset = iexec(&sdk, &with(&["dataset", "deploy"], &w))["address"].as_str().unwrap().to_string();
    let key = veil_protect::DatasetKey::random().to_base64();
    std::fs::create_dir_all(sdk.join(".secrets/datasets")).unwrap();
    std::fs::write(sdk.join(".secrets/datasets/dataset.key"), &key).unwrap();
    iexec(&sdk, &with(&["dataset", "push-secret", &dataset], &w));
    assert_eq!(iexec(&sdk, &["dataset", "check-secret", &dataset])["isSecretSet"], true);
    assert!(veil_has(&url, &format!("dataset-key/{dataset}")));

    // Market calls without a valid authorization change nothing.
    let market = |method: reqwest::Method, path: &str, auth: Option<&str>| -> u16 {
        common::rt().block_on(async {
            let mut r = reqwest::Client::new().request(method, format!("{url}{path}"));
            if let Some(a) = auth {
                r = r.header("authorization", a);
            }
            r.json(&json!({ "order": {}, "target": "unpublish_all", "app": app }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    assert_eq!(market(reqwest::Method::POST, "/apporders?chainId=31337", None), 401);
    assert_eq!(market(reqwest::Method::PUT, "/apporders?chainId=31337", Some("0x00_0x00_0x00")), 401);
    let forged = format!("0x{}_0x{}_{requester}", "11".repeat(32), "22".repeat(65));
    assert_eq!(market(reqwest::Method::PUT, "/apporders?chainId=31337", Some(&forged)), 401);
    assert_eq!(market(reqwest::Method::GET, "/apporders?chainId=1", None), 400);
    assert_eq!(market(reqwest::Method::GET, &format!("/apporders/0x{}", "12".repeat(32)), None), 404);

    // An image app deployed and run by Veil, as iExec's CLI sees it.
    let img = d.join("image");
    let bin = std::fs::read("/bin/busybox").expect("busybox-static at /bin/busybox");
    let app_sh = b"#!/bin/busybox sh\necho \"Hello, $1!\" > /iexec_out/result.txt\necho '{\"deterministic-output-path\":\"/iexec_out/result.txt\"}' > /iexec_out/computed.json\n";
    let files = [
        veil_oci::write::NewFile { path: "bin/busybox", bytes: &bin, mode: 0o755 },
        veil_oci::write::NewFile { path: "app.sh", bytes: app_sh, mode: 0o755 },
    ];
    veil_oci::write::image_from_files(&img, &files, &["/bin/busybox", "sh", "/app.sh"], true).unwrap();
    let deployed = ok(
        &url,
        &["app", "deploy", "--image", &format!("oci:{}", img.display()), "--name", "sdk", "--dev-account", "1"],
    );
    let app = deployed["address"].as_str().unwrap().to_string();
    ok(&url, &["app", "publish", "--app", &app, "--dev-account", "1"]);
    // Someone else's app: its secret is not the requester's to set (401 from the SMS).
    let e = iexec_err(&sdk, &[&["app", "push-secret", &app, "--secret-value", "x"][..], &w].concat());
    assert!(e.contains("not allowed"), "{e}");
    assert!(!veil_has(&url, &format!("app-secret/{app}")));
    let seen = iexec(&sdk, &["app", "show", &app]);
    assert_eq!(seen["app"]["appType"], "DOCKER", "{seen}");
    assert_eq!(seen["app"]["appChecksum"], deployed["checksum"], "{seen}");
    let run = ok(&url, &["run", &app, "--args", "iExec", "--dev-account", "4", "--timeout", "60"]);
    let taskid = run["tasks"][0]["taskid"].as_str().unwrap();
    let zip_path = sdk.join("result.zip");
    let t = iexec(&sdk, &[&["task", "show", taskid, "--download", "result.zip"][..], &w].concat());
    assert_eq!(t["task"]["statusName"], "COMPLETED", "{t}");
    assert_eq!(t["task"]["results"]["storage"], "ipfs", "{t}");
    assert_eq!(result_txt(&zip_path), "Hello, iExec!\n");

    // A deal made by iExec's CLI — TEE and TDX tags, a requester secret, an encrypted result — run
    // by Veil's workerpool (on the `sim` platform), its result downloaded and decrypted by the CLI.
    let conf = json!({ "app": {
        "owner": requester, "name": "sdk-image", "type": "DOCKER",
        "multiaddr": deployed["multiaddr"], "checksum": deployed["checksum"],
    }});
    std::fs::write(sdk.join("iexec.json"), conf.to_string()).unwrap();
    let sdk_app = iexec(&sdk, &with(&["app", "deploy"], &w))["address"].as_str().unwrap().to_string();
    iexec(&sdk, &with(&["order", "init", "--app"], &w));
    iexec(&sdk, &with(&["order", "sign", "--app", "--skip-preflight-check"], &w));
    iexec(&sdk, &with(&["order", "publish", "--app", "--force"], &w));
    let pool = dev.ready["workerpool"].as_str().unwrap();
    let args = ["app", "run", &sdk_app, "--workerpool", pool, "--tag", "tee,tdx", "--args", "SDK"];
    let flags = ["--secret", "1=my-token", "--encrypt-result", "--watch", "--skip-preflight-check", "--force"];
    let ran = iexec(&sdk, &with(&[&args[..], &flags[..]].concat(), &w));
    let task = &ran["tasks"][0];
    assert_eq!(task["statusName"], "COMPLETED", "{ran}");
    let dealid = ran["deals"][0]["dealid"].as_str().unwrap();
    let deal = iexec(&sdk, &["deal", "show", dealid]);
    let veils = ok(&url, &["deal", "show", dealid]);
    assert_eq!(deal["deal"]["app"]["pointer"].as_str().unwrap().to_lowercase(), sdk_app.to_lowercase(), "{deal}");
    assert_eq!(veils["app"]["pointer"].as_str().unwrap().to_lowercase(), sdk_app.to_lowercase(), "{veils}");
    let pools = iexec(&sdk, &["orderbook", "workerpool", "--tag", "tee,tdx"]);
    assert!(pools["count"].as_u64().unwrap() >= 1, "the pool's TDX-tagged order: {pools}");
    let taskid = task["taskid"].as_str().unwrap();
    let shown = ok(&url, &["task", "show", taskid]);
    assert_eq!(shown["enclave"]["platform"], "sim", "Veil says the enclave is simulated: {shown}");
    iexec(&sdk, &with(&["task", "show", taskid, "--download", "encrypted.zip"], &w));
    iexec(&sdk, &with(&["result", "decrypt", "encrypted.zip", "--force"], &w));
    assert_eq!(result_txt(&sdk.join("results.zip")), "Hello, SDK!\n");
}

/// `result.txt` of a result archive.
fn result_txt(zip_path: &Path) -> String {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(zip_path).unwrap()).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("result.txt").unwrap(), &mut text).unwrap();
    text
}
