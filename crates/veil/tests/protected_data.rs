//! Protected data through the real binary: protect, store, register, SMS; tampering; refusals;
//! no secret in logs or answers; grants.

mod common;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use veil_core::Address;
use veil_node::dev::dev_key;
use veil_sdk::{Client, SecretKind, SmsWrite, sms_message};

struct Node(common::Service);

impl std::ops::Deref for Node {
    type Target = common::Service;
    fn deref(&self) -> &common::Service {
        &self.0
    }
}

/// A dev node in `dir/node`, logging at debug level into `dir/node.log`.
fn node(dir: &Path) -> Node {
    let log = std::fs::File::create(dir.join("node.log")).unwrap();
    let data = dir.join("node");
    Node(common::spawn_logged(&["node", "--dev", "--data-dir", data.to_str().unwrap()], Stdio::from(log), "debug"))
}

fn veil(n: &Node, args: &[&str]) -> Result<Value, String> {
    common::veil(&n.url, args)
}

fn ok(n: &Node, args: &[&str]) -> Value {
    common::ok(&n.url, args)
}

const MARKER: &str = "VEIL-PLAINTEXT-MARKER-7f3a9c";

#[test]
fn protect_store_decrypt_and_detect_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let n = node(d);
    let plain: Vec<u8> = format!("{MARKER}\n").bytes().chain((0..300_000u32).map(|i| (i % 251) as u8)).collect();
    std::fs::write(d.join("data.bin"), &plain).unwrap();
    let v = ok(
        &n,
        &[
            "data",
            "protect",
            d.join("data.bin").to_str().unwrap(),
            "--name",
            "big",
            "--dev-account",
            "2",
            "--key-out",
            d.join("key").to_str().unwrap(),
        ],
    );
    let dataset: Address = v["address"].as_str().unwrap().parse().unwrap();
    let checksum = v["checksum"].as_str().unwrap().to_string();
    let url = v["multiaddr"].as_str().unwrap().to_string();
    // Registered with the checksum of the stored bytes; the key is in the SMS.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = Client::new(&n.url);
    let reg = rt.block_on(c.dataset(&dataset)).unwrap();
    assert_eq!(format!("{:?}", reg.asset.checksum), checksum);
    assert_eq!(reg.asset.multiaddr, url);
    assert!(rt.block_on(c.sms_exists(SecretKind::DatasetKey, &dataset, "")).unwrap());
    // Download, check, decrypt: the original bytes.
    let bytes = rt.block_on(async { reqwest::get(&url).await.unwrap().bytes().await.unwrap() });
    std::fs::write(d.join("data.enc"), &bytes).unwrap();
    let out = d.join("out.bin");
    ok(
        &n,
        &[
            "dataset",
            "decrypt",
            d.join("data.enc").to_str().unwrap(),
            "--key-file",
            d.join("key").to_str().unwrap(),
            "--checksum",
            &checksum,
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read(&out).unwrap(), plain);
    // A changed byte: refused before decryption, locally and by the storage.
    let mut bad = bytes.to_vec();
    bad[100] ^= 0x01;
    std::fs::write(d.join("bad.enc"), &bad).unwrap();
    let err = veil(
        &n,
        &[
            "dataset",
            "decrypt",
            d.join("bad.enc").to_str().unwrap(),
            "--key-file",
            d.join("key").to_str().unwrap(),
            "--checksum",
            &checksum,
            "--out",
            d.join("bad.out").to_str().unwrap(),
        ],
    )
    .unwrap_err();
    assert!(err.contains("checksum mismatch"), "{err}");
    assert!(!d.join("bad.out").exists(), "no plaintext written");
    let id = checksum.trim_start_matches("0x");
    let on_disk = d.join("node").join("blobs").join(&id[..2]).join(id);
    std::fs::write(&on_disk, &bad).unwrap();
    let status = rt.block_on(async { reqwest::get(&url).await.unwrap().status() });
    assert_eq!(status.as_u16(), 500, "a corrupted blob is never served");
    // The plaintext never reached the node's files.
    assert_no_marker(&d.join("node"), MARKER);
}

fn assert_no_marker(dir: &Path, marker: &str) {
    for e in walk(dir) {
        let bytes = std::fs::read(&e).unwrap_or_default();
        assert!(!bytes.windows(marker.len()).any(|w| w == marker.as_bytes()), "{} holds the marker", e.display());
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

#[test]
fn sms_refusals_and_no_secret_in_logs_or_answers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let n = node(d);
    std::fs::write(d.join("f"), b"x").unwrap();
    let v = ok(&n, &["data", "protect", d.join("f").to_str().unwrap(), "--name", "f", "--dev-account", "2"]);
    let dataset: Address = v["address"].as_str().unwrap().parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = Client::new(&n.url);
    let secret_key = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="; // 32 bytes, base64
    // Someone else's dataset: refused, naming the rule.
    let e = rt.block_on(c.sms_push(SecretKind::DatasetKey, &dataset, "", secret_key, &dev_key(3))).unwrap_err();
    assert_eq!(e.kind(), Some("forbidden"), "{e}");
    assert!(e.to_string().contains("only the dataset's owner"), "{e}");
    // Replayed challenge: the second use is refused.
    let ch = rt.block_on(c.sms_challenge()).unwrap();
    let owner = dev_key(2);
    let sig = owner.sign_message_hash(&sms_message(SecretKind::DatasetKey, &dataset, "", secret_key, &ch.challenge));
    let w = SmsWrite { value: secret_key.into(), challenge: ch.challenge, signature: sig };
    let post = |w: &SmsWrite| {
        rt.block_on(async {
            let r = reqwest::Client::new()
                .post(format!("{}/sms/dataset-key/{dataset}", n.url))
                .json(w)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    assert_eq!(post(&w).0, 200);
    let (s, body) = post(&w);
    assert_eq!(s, 401, "{body}");
    assert!(body.contains("challenge"), "{body}");
    // A signature over another value (or none at all) is refused.
    let ch = rt.block_on(c.sms_challenge()).unwrap();
    let forged = SmsWrite {
        value: "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWE=".into(),
        challenge: ch.challenge,
        signature: w.signature,
    };
    let (s, body) = post(&forged);
    assert!(s == 403 || s == 401, "{s} {body}");
    // Oversized: refused before anything else.
    let big = "A".repeat(40_000);
    let e = rt.block_on(c.sms_push(SecretKind::RequesterSecret, &owner.address(), "big", &big, &owner)).unwrap_err();
    assert_eq!(e.kind(), Some("too_large"), "{e}");
    assert!(!rt.block_on(c.sms_exists(SecretKind::RequesterSecret, &owner.address(), "big")).unwrap());
    // A requester secret: stored, reported as existing, never returned.
    let marker = "REQUESTER-SECRET-VALUE-91c2";
    let ans =
        rt.block_on(c.sms_push(SecretKind::RequesterSecret, &owner.address(), "api-token", marker, &owner)).unwrap();
    assert!(ans.exists);
    let raw = rt.block_on(async {
        reqwest::get(format!("{}/sms/requester-secret/{}/api-token", n.url, owner.address()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert_eq!(raw, r#"{"exists":true}"#);
    // Restart: secrets still there and still sealed on disk.
    let url_before = n.url.clone();
    drop(n);
    let n = node(d);
    assert_ne!(n.url, url_before);
    let c = Client::new(&n.url);
    assert!(rt.block_on(c.sms_exists(SecretKind::RequesterSecret, &owner.address(), "api-token")).unwrap());
    drop(n);
    for f in walk(&d.join("node")) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        for needle in [marker, secret_key] {
            assert!(
                !bytes.windows(needle.len()).any(|x| x == needle.as_bytes()),
                "{} holds a secret in clear",
                f.display()
            );
        }
    }
    let log = std::fs::read_to_string(d.join("node.log")).unwrap();
    assert!(!log.contains(marker) && !log.contains(secret_key), "a secret reached the log");
}

#[test]
fn grants_revoke_and_transfer() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let n = node(d);
    std::fs::write(d.join("f"), b"x").unwrap();
    let ds =
        ok(&n, &["data", "protect", d.join("f").to_str().unwrap(), "--name", "f", "--dev-account", "2"])["address"]
            .as_str()
            .unwrap()
            .to_string();
    let app = format!("{:?}", Address::repeat_byte(0x11));
    let g1 = ok(
        &n,
        &[
            "data",
            "grant",
            "--dataset",
            &ds,
            "--app",
            &app,
            "--requester",
            "any",
            "--price",
            "0.5 RLC",
            "--access-count",
            "3",
            "--dev-account",
            "2",
        ],
    );
    assert_eq!(g1["remaining"], "3");
    assert_eq!(
        g1["order"]["order"]["tag"], "0x0000000000000000000000000000000000000000000000000000000000000001",
        "a TEE grant"
    );
    assert_eq!(g1["order"]["order"]["datasetprice"], "500000000");
    ok(&n, &["data", "grant", "--dataset", &ds, "--dev-account", "2"]);
    assert_eq!(ok(&n, &["data", "access", "--dataset", &ds]).as_array().unwrap().len(), 2);
    let err = veil(&n, &["data", "grant", "--dataset", &ds, "--dev-account", "3"]).unwrap_err();
    assert!(err.contains("must be signed by"), "{err}");
    ok(&n, &["data", "revoke", "--dataset", &ds, "--order", g1["orderHash"].as_str().unwrap(), "--dev-account", "2"]);
    assert_eq!(ok(&n, &["data", "access", "--dataset", &ds]).as_array().unwrap().len(), 1);
    let err = veil(&n, &["data", "revoke", "--dataset", &ds, "--all", "--dev-account", "3"]).unwrap_err();
    assert!(err.contains("owner"), "{err}");
    let new_owner = format!("{:?}", dev_key(5).address());
    ok(&n, &["data", "transfer", "--dataset", &ds, "--to", &new_owner, "--dev-account", "2"]);
    assert_eq!(ok(&n, &["data", "list", "--owner", &new_owner]).as_array().unwrap().len(), 1);
    assert_eq!(
        ok(&n, &["data", "access", "--dataset", &ds]).as_array().unwrap().len(),
        0,
        "grants of the old owner leave the book"
    );
}
