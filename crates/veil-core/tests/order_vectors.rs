//! Order hashes and signatures equal those of an independent EIP-712 implementation (eth-account;
//! vectors made by tools/gen_order_vectors.py).

use serde_json::Value;
use veil_core::orders::parse_order;
use veil_core::*;

fn check<O: Order>(v: &Value, key: &PrivateKey) {
    let domain = Domain {
        chain_id: v["chainId"].as_u64().unwrap(),
        verifying_contract: v["verifyingContract"].as_str().unwrap().parse().unwrap(),
    };
    let (order, _) = parse_order::<O>(&v["order"].to_string()).unwrap();
    let hash = order.typed_hash(&domain);
    assert_eq!(format!("{hash:?}"), v["hash"].as_str().unwrap(), "{} hash on chain {}", v["kind"], domain.chain_id);
    let sig = key.sign_hash(&hash);
    assert_eq!(sig.to_hex(), v["signature"].as_str().unwrap(), "{} signature", v["kind"]);
    assert_eq!(crypto::recover(&hash, &sig).unwrap(), key.address());
}

#[test]
fn eth_account_vectors() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/order_vectors.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let key = PrivateKey::from_hex(doc["privateKey"].as_str().unwrap()).unwrap();
    assert_eq!(key.address().to_checksum(None), doc["signer"].as_str().unwrap());
    let vectors = doc["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 8);
    for v in vectors {
        match v["kind"].as_str().unwrap() {
            "app" => check::<AppOrder>(v, &key),
            "dataset" => check::<DatasetOrder>(v, &key),
            "workerpool" => check::<WorkerpoolOrder>(v, &key),
            "request" => check::<RequestOrder>(v, &key),
            k => panic!("unknown kind {k}"),
        }
    }
}
