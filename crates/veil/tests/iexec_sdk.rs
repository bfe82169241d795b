//! iExec's own CLI (`iexec` 9.0.1 from the npm registry; `scripts/iexec-sdk` installs it and the
//! README's test command exports `VEIL_IEXEC`) driven against `veil dev --chain anvil`, with its own
//! `chain.json` pointing every iExec service at the Veil node: wallet import; account deposit and
//! show; app, dataset and workerpool deploy and show; a dataset encrypted by the SDK, stored in
//! Veil's storage and named `/ipfs/<cid>`; requester, result-key, app and dataset secrets through
//! iExec's SMS API; orders of all four kinds signed, published, listed, shown and unpublished through
//! Veil's market API (the orderbook Veil's own commands read); `app run --tag tee,tdx --dataset …
//! --secret … --encrypt-result --watch` executed by Veil's workerpool; `deal show`, `order show
//! --deals`, `task show --download`, `result decrypt`, `task debug --logs` (compass + workerpool API).
//! Refusals get iExec's status codes and change nothing.

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

/// Sets `key` of the project's iexec.json (what `iexec … deploy` and `order init` read).
fn set_conf(dir: &Path, key: &str, value: Value) {
    let path = dir.join("iexec.json");
    let mut conf: Value = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(json!({}));
    conf[key] = value;
    std::fs::write(path, conf.to_string()).unwrap();
}

/// Status of a plain HTTP call (`auth` as the authorization header).
fn status(method: reqwest::Method, url: &str, auth: Option<&str>, body: &Value) -> u16 {
    common::rt().block_on(async {
        let mut r = reqwest::Client::new().request(method, url);
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.json(body).send().await.unwrap().status().as_u16()
    })
}

/// An iExec authorization header for a challenge from `url` (market or workerpool API), signed by `key`.
fn authorization(url: &str, domain: &'static str, key: &veil_core::PrivateKey) -> String {
    let typed: Value = common::rt().block_on(async {
        reqwest::get(format!("{url}?chainId=31337&address={}", key.address())).await.unwrap().json().await.unwrap()
    });
    let typed = if typed["data"].is_object() { typed["data"].clone() } else { typed };
    assert_eq!(typed["domain"]["name"], domain, "{typed}");
    let challenge = typed["message"]["challenge"].as_str().unwrap();
    let hash = veil_sdk::challenge::Challenges::new(domain, 31337).typed_hash(challenge);
    format!("{hash}_{}_{}", key.sign_hash(&hash).to_hex(), key.address())
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
    set_conf(
        &sdk,
        "app",
        json!({
            "owner": Backend::Anvil.address(4), "name": "sdk-app", "type": "DOCKER",
            "multiaddr": "127.0.0.1:5000/sdk-app:1.0", "checksum": format!("0x{}", "ab".repeat(32)),
        }),
    );

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
    // iExec's SMS status codes: the same signed push again → 409 (the secret stays); a secret for
    // someone else's address, or a forged signature → 401, and nothing is stored.
    let me = veil_core::PrivateKey::from_hex(&key).unwrap();
    let sms = |method: reqwest::Method, path: &str, value: &str, sig: &str| -> u16 {
        common::rt().block_on(async {
            let r = reqwest::Client::new().request(method, format!("{url}{path}")).header("authorization", sig);
            r.header("content-type", "text/plain").body(value.to_string()).send().await.unwrap().status().as_u16()
        })
    };
    let signed = |owner: &str, name: &str, value: &str| {
        let owner: veil_core::Address = owner.parse().unwrap();
        me.sign_message_hash(&veil_sms::iexec::web2_challenge(&owner, name, value)).to_hex()
    };
    let (post, head) = (reqwest::Method::POST, reqwest::Method::HEAD);
    let mine = format!("/requesters/{requester}/secrets/my-token");
    assert_eq!(sms(post.clone(), &mine, "s3cr3t", &signed(&requester, "my-token", "s3cr3t")), 409, "replayed");
    let someone = Backend::Anvil.address(1);
    let theirs = format!("/requesters/{someone}/secrets/stolen");
    assert_eq!(sms(post.clone(), &theirs, "x", &signed(&someone, "stolen", "x")), 401, "someone else's");
    let fresh = format!("/requesters/{requester}/secrets/fresh");
    assert_eq!(sms(post.clone(), &fresh, "x", &format!("0x{}", "33".repeat(65))), 401, "forged");
    assert_eq!(sms(post, &fresh, "x", &signed(&requester, "fresh", "other value")), 401, "signed another value");
    for path in [&theirs, &fresh] {
        assert_eq!(sms(head.clone(), path, "", ""), 404, "{path}: nothing stored");
    }
    iexec(&sdk, &with(&["result", "generate-encryption-keypair", "--force"], &w));
    iexec(&sdk, &with(&["result", "push-encryption-key"], &w));
    assert_eq!(iexec(&sdk, &with(&["result", "check-encryption-key"], &w))["isEncryptionKeySet"], true);
    assert!(veil_has(&url, &format!("result-key/{requester}")));
    iexec(&sdk, &with(&["app", "push-secret", &app, "--secret-value", "dev-secret"], &w));
    assert_eq!(iexec(&sdk, &["app", "check-secret", &app])["isSecretSet"], true);
    assert!(veil_has(&url, &format!("app-secret/{app}")));
    let e = iexec_err(&sdk, &with(&["app", "push-secret", &app, "--secret-value", "again"], &w));
    assert!(e.contains("can't be updated"), "{e}");

    // A dataset encrypted by iExec's CLI (Veil decrypts it byte for byte), kept in Veil's storage and
    // named by its CID, deployed, its key pushed through iExec's SMS API.
    iexec(&sdk, &with(&["dataset", "init", "--encrypted"], &w));
    std::fs::write(sdk.join("datasets/original/data.txt"), "secret data for the app\n").unwrap();
    let enc = iexec(&sdk, &["dataset", "encrypt"]);
    let checksum = enc["encryptedFiles"][0]["checksum"].as_str().unwrap().to_string();
    let enc_file = sdk.join("datasets/encrypted/data.txt.enc");
    let plain = d.join("plain.txt");
    let key_file = enc["encryptedFiles"][0]["key"].as_str().unwrap();
    let (enc_path, plain_path) = (enc_file.display().to_string(), plain.display().to_string());
    let dec = ok(&url, &["dataset", "decrypt", &enc_path, "--key-file", key_file, "--out", &plain_path]);
    assert_eq!(std::fs::read_to_string(&plain).unwrap(), "secret data for the app\n", "{dec}");
    let stored: Value = common::rt().block_on(async {
        let bytes = std::fs::read(&enc_file).unwrap();
        reqwest::Client::new().post(format!("{url}/blobs")).body(bytes).send().await.unwrap().json().await.unwrap()
    });
    assert_eq!(format!("0x{}", stored["id"].as_str().unwrap()), checksum, "{stored}");
    let digest: [u8; 32] = hex::decode(stored["id"].as_str().unwrap()).unwrap().try_into().unwrap();
    let multiaddr = format!("/ipfs/{}", veil_storage::cid::cid_of(&digest));
    set_conf(
        &sdk,
        "dataset",
        json!({ "owner": requester, "name": "sdk-data", "multiaddr": multiaddr, "checksum": checksum }),
    );
    let dataset = iexec(&sdk, &with(&["dataset", "deploy"], &w))["address"].as_str().unwrap().to_string();
    let ds_shown = iexec(&sdk, &["dataset", "show", &dataset]);
    // The SDK stored it as a binary multiaddr (and shows its multihash as `/p2p/Qm…`); Veil reads
    // the same bytes back as the CID its storage serves.
    assert!(ds_shown["dataset"]["datasetMultiaddr"].as_str().unwrap().starts_with("/p2p/Qm"), "{ds_shown}");
    let veils: Value = common::rt()
        .block_on(async { reqwest::get(format!("{url}/datasets/{dataset}")).await.unwrap().json().await.unwrap() });
    assert_eq!(veils["multiaddr"], multiaddr.as_str(), "{veils}");
    assert_eq!(veils["checksum"], ds_shown["dataset"]["datasetChecksum"], "{veils}");
    iexec(&sdk, &with(&["dataset", "push-secret", &dataset], &w));
    assert_eq!(iexec(&sdk, &["dataset", "check-secret", &dataset])["isSecretSet"], true);
    assert!(veil_has(&url, &format!("dataset-key/{dataset}")));

    // A workerpool deployed by iExec's CLI, as Veil's node sees it.
    set_conf(&sdk, "workerpool", json!({ "owner": requester, "description": "sdk-pool" }));
    let sdk_pool = iexec(&sdk, &with(&["workerpool", "deploy"], &w))["address"].as_str().unwrap().to_string();
    let shown = iexec(&sdk, &["workerpool", "show", &sdk_pool]);
    let veils: Value = common::rt()
        .block_on(async { reqwest::get(format!("{url}/workerpools/{sdk_pool}")).await.unwrap().json().await.unwrap() });
    assert_eq!(shown["workerpool"]["workerpoolDescription"], veils["description"], "{shown} {veils}");
    assert_eq!(shown["workerpool"]["owner"].as_str().unwrap().to_lowercase(), requester.to_lowercase(), "{shown}");

    // Refusals get iExec's status codes and change nothing: the market answers 403 to a missing,
    // malformed, forged or replayed authorization, 400 to another chain, 404 to an unknown order.
    let market = |method: reqwest::Method, path: &str, auth: Option<&str>| -> u16 {
        status(method, &format!("{url}{path}"), auth, &json!({ "order": {}, "target": "unpublish_all", "app": app }))
    };
    let before = iexec(&sdk, &["orderbook", "app", &app])["count"].clone();
    assert_eq!(market(reqwest::Method::POST, "/apporders?chainId=31337", None), 403);
    assert_eq!(market(reqwest::Method::PUT, "/apporders?chainId=31337", Some("0x00_0x00_0x00")), 403);
    let forged = format!("0x{}_0x{}_{requester}", "11".repeat(32), "22".repeat(65));
    assert_eq!(market(reqwest::Method::PUT, "/apporders?chainId=31337", Some(&forged)), 403);
    let auth = authorization(&format!("{url}/challenge"), "iExec Gateway", &me);
    assert_eq!(market(reqwest::Method::POST, "/apporders?chainId=31337", Some(&auth)), 400, "spent on a bad order");
    assert_eq!(market(reqwest::Method::PUT, "/apporders?chainId=31337", Some(&auth)), 403, "replayed");
    assert_eq!(market(reqwest::Method::GET, "/apporders?chainId=1&app=any", None), 400);
    assert_eq!(market(reqwest::Method::GET, &format!("/apporders/0x{}?chainId=31337", "12".repeat(32)), None), 404);
    assert_eq!(iexec(&sdk, &["orderbook", "app", &app])["count"], before, "nothing changed");

    // An image app deployed and run by Veil, as iExec's CLI sees it.
    let img = d.join("image");
    let bin = std::fs::read("/bin/busybox").expect("busybox-static at /bin/busybox");
    let app_sh = concat!(
        "#!/bin/busybox sh\n",
        "echo \"Hello, $1!\" > /iexec_out/result.txt\n",
        "if [ -n \"$IEXEC_DATASET_FILENAME\" ]; then cat \"/iexec_in/$IEXEC_DATASET_FILENAME\" >> /iexec_out/result.txt; fi\n",
        "echo \"ran for $1\"\n",
        "echo '{\"deterministic-output-path\":\"/iexec_out/result.txt\"}' > /iexec_out/computed.json\n",
    )
    .as_bytes();
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

    // Orders of the four kinds, made by iExec's CLI, in Veil's orderbook.
    set_conf(
        &sdk,
        "app",
        json!({
            "owner": requester, "name": "sdk-image", "type": "DOCKER",
            "multiaddr": deployed["multiaddr"], "checksum": deployed["checksum"],
        }),
    );
    let sdk_app = iexec(&sdk, &with(&["app", "deploy"], &w))["address"].as_str().unwrap().to_string();
    let pool = dev.ready["workerpool"].as_str().unwrap();
    iexec(&sdk, &with(&["order", "init", "--app", "--dataset", "--workerpool", "--request"], &w));
    let mut conf: Value = serde_json::from_slice(&std::fs::read(sdk.join("iexec.json")).unwrap()).unwrap();
    let request = &mut conf["order"]["requestorder"];
    (request["app"], request["dataset"], request["workerpool"]) = (json!(sdk_app), json!(dataset), json!(sdk_pool));
    std::fs::write(sdk.join("iexec.json"), conf.to_string()).unwrap();
    let all = ["--app", "--dataset", "--workerpool", "--request"];
    iexec(&sdk, &with(&[&["order", "sign", "--skip-preflight-check"][..], &all[..]].concat(), &w));
    let mut hashes = std::collections::HashMap::new();
    for kind in ["app", "dataset", "workerpool", "request"] {
        let flag = format!("--{kind}");
        let published = iexec(&sdk, &with(&["order", "publish", &flag, "--force"], &w));
        hashes.insert(kind, published[format!("{kind}order")]["orderHash"].as_str().unwrap().to_string());
    }
    let book = iexec(&sdk, &["orderbook", "dataset", &dataset]);
    assert_eq!(book["datasetOrders"][0]["orderHash"], hashes["dataset"].as_str(), "{book}");
    let book = iexec(&sdk, &["orderbook", "workerpool", &sdk_pool, "--tag", "tee,tdx"]);
    assert_eq!(book["workerpoolOrders"][0]["orderHash"], hashes["workerpool"].as_str(), "{book}");
    let book = iexec(&sdk, &["orderbook", "requester", &requester, "--workerpool", &sdk_pool]);
    assert_eq!(book["requestOrders"][0]["orderHash"], hashes["request"].as_str(), "{book}");
    let veils = ok(&url, &["orderbook", "request", "--requester", &requester]);
    assert_eq!(veils["orders"][0]["orderHash"], hashes["request"].as_str(), "one orderbook, two shapes: {veils}");
    // The SDK-made pool has no scheduler: its order and the request for it leave the book.
    for kind in ["workerpool", "request"] {
        let flag = format!("--{kind}");
        let gone = iexec(&sdk, &with(&["order", "unpublish", &flag, "--force"], &w));
        assert_eq!(gone[format!("{kind}order")]["orderHash"], hashes[kind].as_str(), "{gone}");
    }
    assert_eq!(iexec(&sdk, &["orderbook", "workerpool", &sdk_pool, "--tag", "tee,tdx"])["count"], 0);

    // A deal made by iExec's CLI — TEE and TDX tags, the SDK's dataset, a requester secret, an
    // encrypted result — run by Veil's workerpool (on the `sim` platform), its result downloaded and
    // decrypted by the CLI, its logs read through the compass and the workerpool API.
    let args =
        ["app", "run", &sdk_app, "--workerpool", pool, "--dataset", &dataset, "--tag", "tee,tdx", "--args", "SDK"];
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
    assert_eq!(result_txt(&sdk.join("results.zip")), "Hello, SDK!\nsecret data for the app\n");
    let debug = iexec(&sdk, &with(&["task", "debug", taskid, "--logs"], &w));
    assert_eq!(debug["offchainData"]["task"]["status"], "COMPLETED", "{debug}");
    assert_eq!(debug["offchainData"]["replicates"][0]["status"], "COMPLETED", "{debug}");
    assert_eq!(debug["offchainData"]["replicates"][0]["exitCode"], 0, "{debug}");
    assert_eq!(debug["appLogs"][0]["stdout"], "ran for SDK\n", "{debug}");
    // The market's deals: the SDK signed the requester's own app and dataset orders on the fly; the
    // pool's order came from the book, and `order show --deals` finds the deal through it.
    let market_deals: Value = common::rt().block_on(async {
        let q = format!("{url}/deals?chainId=31337&requester={requester}&dataset={dataset}");
        reqwest::get(q).await.unwrap().json().await.unwrap()
    });
    assert_eq!(market_deals["count"], 1, "{market_deals}");
    let listed = &market_deals["deals"][0];
    assert_eq!(listed["dealid"], dealid, "{market_deals}");
    assert_eq!(listed["workerpool"]["pointer"].as_str().unwrap().to_lowercase(), pool.to_lowercase());
    let pool_hash = listed["workerpoolHash"].as_str().unwrap();
    let deals = iexec(&sdk, &["order", "show", "--workerpool", pool_hash, "--deals"]);
    assert_eq!(deals["workerpoolorder"]["deals"]["lastDeals"][0]["dealid"], dealid, "{deals}");

    // The workerpool API: logs for the requester only (401 otherwise, and for a replayed challenge).
    let sched = dev.ready["scheduler"].as_str().unwrap();
    let logs = format!("{sched}/tasks/{taskid}/logs");
    let other = veil_core::PrivateKey::from_hex(dev.ready["devAccounts"][1]["privateKey"].as_str().unwrap()).unwrap();
    let theirs = authorization(&format!("{sched}/tasks/logs/challenge"), "iExec Core", &other);
    assert_eq!(status(reqwest::Method::GET, &logs, Some(&theirs), &json!({})), 401);
    let mine = authorization(&format!("{sched}/tasks/logs/challenge"), "iExec Core", &me);
    assert_eq!(status(reqwest::Method::GET, &logs, Some(&mine), &json!({})), 200);
    assert_eq!(status(reqwest::Method::GET, &logs, Some(&mine), &json!({})), 401, "replayed");
    let unknown = format!("{url}/31337/workerpools/{sdk_pool}");
    assert_eq!(status(reqwest::Method::GET, &unknown, None, &json!({})), 404, "no scheduler announced that pool");
}

/// `result.txt` of a result archive.
fn result_txt(zip_path: &Path) -> String {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(zip_path).unwrap()).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("result.txt").unwrap(), &mut text).unwrap();
    text
}
