//! The node's CLI commands through the real binary: deploy, publish, browse, match, show, restart.

mod common;
use common::{dev_node, ok as ok_at, veil as veil_at};
use serde_json::{Value, json};
use std::process::Command;

struct Node(common::Service);

fn node(dir: &std::path::Path) -> Node {
    Node(dev_node(dir))
}

fn veil(n: &Node, args: &[&str]) -> Result<Value, String> {
    veil_at(&n.0.url, args)
}

fn ok(n: &Node, args: &[&str]) -> Value {
    ok_at(&n.0.url, args)
}

#[test]
fn deploy_publish_browse_match_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let n = node(&data);
    for i in ["1", "2", "3", "4"] {
        ok(&n, &["account", "deposit", "50 RLC", "--dev-account", i]);
    }
    let acc = ok(&n, &["account", "show", "--dev-account", "1"]);
    assert_eq!(acc["balance"], "50000000000");
    let app =
        ok(&n, &["app", "deploy", "--name", "hello", "--dev-account", "1"])["address"].as_str().unwrap().to_string();
    let dataset =
        ok(&n, &["dataset", "deploy", "--name", "data", "--dev-account", "2"])["address"].as_str().unwrap().to_string();
    let pool = ok(&n, &["workerpool", "deploy", "--name", "pool", "--dev-account", "3"])["address"]
        .as_str()
        .unwrap()
        .to_string();
    let requester = ok(&n, &["account", "show", "--dev-account", "4"])["address"].as_str().unwrap().to_string();
    let z = "0x0000000000000000000000000000000000000000";
    let salt = |b: u8| format!("0x{}", format!("{b:02x}").repeat(32));
    let orders = [
        (
            "app",
            json!({"app": app, "appprice": "2", "volume": "5", "tag": "0x0", "datasetrestrict": z, "workerpoolrestrict": z, "requesterrestrict": z, "salt": salt(1)}),
            "1",
        ),
        (
            "dataset",
            json!({"dataset": dataset, "datasetprice": "1", "volume": "5", "tag": "0x0", "apprestrict": app, "workerpoolrestrict": z, "requesterrestrict": requester, "salt": salt(2)}),
            "2",
        ),
        (
            "workerpool",
            json!({"workerpool": pool, "workerpoolprice": "10", "volume": "5", "tag": "0x0", "category": 5, "trust": 1, "apprestrict": z, "datasetrestrict": z, "requesterrestrict": z, "salt": salt(3)}),
            "3",
        ),
        (
            "request",
            json!({"app": app, "appmaxprice": "2", "dataset": dataset, "datasetmaxprice": "1", "workerpool": z, "workerpoolmaxprice": "10", "requester": requester, "volume": "2", "tag": "0x0", "category": 5, "trust": 0, "beneficiary": requester, "callback": z, "params": "{\"iexec_args\":\"x\"}", "salt": salt(4)}),
            "4",
        ),
    ];
    let mut files = vec![];
    for (kind, order, signer) in &orders {
        let f = dir.path().join(format!("{kind}.json"));
        std::fs::write(&f, order.to_string()).unwrap();
        let signed = dir.path().join(format!("{kind}.signed.json"));
        let chain = ok(&n, &["order", "publish", kind, f.to_str().unwrap(), "--dev-account", signer]);
        assert_eq!(chain["remaining"], if *kind == "request" { "2" } else { "5" });
        // The same order signed offline for the match.
        let key = veil_node::dev::dev_key(signer.parse().unwrap());
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let mut v = doc.clone();
        let sig = match *kind {
            "app" => sign::<veil_core::AppOrder>(&doc, &key),
            "dataset" => sign::<veil_core::DatasetOrder>(&doc, &key),
            "workerpool" => sign::<veil_core::WorkerpoolOrder>(&doc, &key),
            _ => sign::<veil_core::RequestOrder>(&doc, &key),
        };
        v["sign"] = json!(sig);
        std::fs::write(&signed, v.to_string()).unwrap();
        files.push(signed);
    }
    let book = ok(&n, &["orderbook", "dataset", "--app", &app, "--requester", &requester]);
    assert_eq!(book["count"], 1);
    let book = ok(&n, &["orderbook", "dataset", "--requester", "0x1111111111111111111111111111111111111111"]);
    assert_eq!(book["count"], 0, "the dataset order is restricted to one requester");
    let book = ok(&n, &["orderbook", "workerpool", "--category", "5", "--min-volume", "5"]);
    assert_eq!(book["count"], 1);

    let f = |i: usize| files[i].to_str().unwrap().to_string();
    let m = ok(
        &n,
        &[
            "order",
            "match",
            "--app",
            &f(0),
            "--dataset",
            &f(1),
            "--workerpool",
            &f(2),
            "--request",
            &f(3),
            "--dev-account",
            "4",
        ],
    );
    let dealid = m["dealid"].as_str().unwrap().to_string();
    let deal = ok(&n, &["deal", "show", &dealid]);
    assert_eq!(deal["botSize"], "2");
    assert_eq!(ok(&n, &["orderbook", "app"])["orders"][0]["remaining"], "3", "the book follows consumed volume");
    assert_eq!(ok(&n, &["orderbook", "request"])["count"], 0, "a filled request leaves the book");
    let err = veil(&n, &["task", "show", &format!("0x{}", "ab".repeat(32))]).unwrap_err();
    assert!(err.contains("no task"), "{err}");
    let err = veil(
        &n,
        &[
            "order",
            "match",
            "--app",
            &f(0),
            "--dataset",
            &f(1),
            "--workerpool",
            &f(2),
            "--request",
            &f(3),
            "--dev-account",
            "4",
        ],
    )
    .unwrap_err();
    assert!(err.contains("0x60"), "{err}");
    ok(&n, &["order", "cancel", "workerpool", files[2].to_str().unwrap(), "--dev-account", "3"]);
    assert_eq!(ok(&n, &["orderbook", "workerpool"])["count"], 0, "a cancelled order leaves the book");

    // Restart: state, deal and book survive; the chain verifies.
    drop(n);
    let n = node(&data);
    assert_eq!(ok(&n, &["deal", "show", &dealid])["botSize"], "2");
    assert_eq!(ok(&n, &["orderbook", "app"])["count"], 1);
    drop(n);
    let v = Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(["node", "verify", "--json", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
}

fn sign<O: veil_core::Order>(doc: &Value, key: &veil_core::PrivateKey) -> String {
    let (o, _) = veil_core::orders::parse_order::<O>(&doc.to_string()).unwrap();
    key.sign_hash(&o.typed_hash(&veil_core::eip712::veil_dev_domain())).to_hex()
}
