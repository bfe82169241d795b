//! `kill -9` of the real node under write load, many times: no acknowledged transaction is lost,
//! the restarted node replays to the same state, and `veil node verify` passes.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use veil_core::{B256, Call, Nrlc, Tx};
use veil_node::dev::dev_key;
use veil_sdk::Client;

fn start_node(dir: &Path) -> (Child, String, serde_json::Value) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(["node", "--dev", "--json", "--listen", "127.0.0.1:0", "--checkpoint-every", "7", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start veil node");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad ready line `{line}`: {e}"));
    (child, v["url"].as_str().unwrap().to_string(), v)
}

/// Sends deposits from dev account `who` until the node goes away; returns the acknowledged hashes.
async fn write_load(c: Client, who: usize) -> Vec<B256> {
    let key = dev_key(who);
    let mut acked = vec![];
    let Ok(info) = c.chain().await else { return acked };
    let Ok(acc) = c.account(&key.address()).await else { return acked };
    let mut nonce = acc.account.nonce;
    loop {
        let stx =
            Tx { chain_id: info.chain_id, from: key.address(), nonce, call: Call::Deposit { amount: Nrlc::new(1) } }
                .sign(&key);
        match c.submit(&stx).await {
            Ok(r) => {
                acked.push(r.tx_hash);
                nonce += 1;
            }
            Err(_) => return acked,
        }
    }
}

#[test]
fn kill_dash_nine_loses_no_acknowledged_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut all_acked: Vec<B256> = vec![];
    let mut seed = 0x9e3779b97f4a7c15u64;
    for round in 0..20 {
        let (mut child, url, _) = start_node(dir.path());
        let writers: Vec<_> = (1..=4).map(|w| rt.spawn(write_load(Client::new(&url), w))).collect();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(30 + seed % 300));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let mut acked = 0;
        for w in writers {
            let hashes = rt.block_on(w).unwrap();
            acked += hashes.len();
            all_acked.extend(hashes);
        }
        assert!(round > 0 || acked > 0, "the load acknowledged nothing");
    }
    // Restart: every acknowledged transaction is in a block, and the replayed state digest is the
    // head block's (the node checks it when it opens; `verify` re-executes from genesis).
    let (mut child, url, ready) = start_node(dir.path());
    let c = Client::new(&url);
    let info = rt.block_on(c.chain()).unwrap();
    assert_eq!(info.state_digest.to_string(), ready["stateDigest"].as_str().unwrap());
    for h in &all_acked {
        rt.block_on(c.receipt(h)).unwrap_or_else(|e| panic!("acknowledged transaction {h} lost: {e}"));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(["node", "verify", "--json", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "verify failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["stateDigest"].as_str().unwrap(), info.state_digest.to_string());
    assert_eq!(v["blocks"].as_u64().unwrap(), info.head);
    eprintln!("{} acknowledged transactions over 20 kills, {} blocks", all_acked.len(), info.head);
}
