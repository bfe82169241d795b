//! Keystore files from other tools open here, and ours round-trip.

use veil_wallet::{Kdf, WalletError, claimed_address, decrypt, encrypt, random_key};

const SPEC_KEY: &str = "7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d";
const ETH_ACCOUNT_KEY: &str = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn check_opens(name: &str, password: &str, key_hex: &str) {
    let k = decrypt(&fixture(name), password.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(hex::encode(k.secret_bytes()), key_hex, "{name}");
}

#[test]
fn web3_secret_storage_spec_vectors_open() {
    check_opens("web3-spec-pbkdf2.json", "testpassword", SPEC_KEY);
    check_opens("web3-spec-scrypt.json", "testpassword", SPEC_KEY);
}

#[test]
fn eth_account_files_open() {
    check_opens("eth-account-scrypt.json", "veil-test-password", ETH_ACCOUNT_KEY);
    check_opens("eth-account-pbkdf2.json", "veil-test-password", ETH_ACCOUNT_KEY);
    let claimed = claimed_address(&fixture("eth-account-scrypt.json")).unwrap();
    assert_eq!(claimed.to_checksum(None), "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23");
}

#[test]
fn wrong_password_is_a_mac_error() {
    let e = decrypt(&fixture("eth-account-pbkdf2.json"), b"nope").unwrap_err();
    assert!(matches!(e, WalletError::Mac), "{e}");
}

#[test]
fn roundtrip_both_kdfs() {
    for kdf in [Kdf::LIGHT, Kdf::Pbkdf2 { c: 1000 }] {
        let k = random_key();
        let doc = encrypt(&k, b"pw", kdf).unwrap();
        assert_eq!(decrypt(&doc, b"pw").unwrap(), k);
        assert_eq!(claimed_address(&doc), Some(k.address()));
    }
}

fn check_refused(doc: &str, needle: &str) {
    let e = decrypt(doc, b"pw").unwrap_err().to_string();
    assert!(e.contains(needle), "`{e}` should mention `{needle}`");
}

#[test]
fn hostile_files_are_refused() {
    let base = fixture("eth-account-scrypt.json");
    check_refused("{", "JSON");
    check_refused(&base.replace("\"version\": 3", "\"version\": 4"), "version");
    check_refused(&base.replace("\"n\": 1024", "\"n\": 1073741824"), "limits");
    check_refused(&base.replace("\"n\": 1024", "\"n\": 1000"), "power of two");
    check_refused(&base.replace("aes-128-ctr", "aes-256-gcm"), "cipher");
    check_refused(&base.replace("\"kdf\": \"scrypt\"", "\"kdf\": \"argon2\""), "argon2");
    check_refused(&base.replace("\"mac\": \"81", "\"mac\": \"zz"), "mac");
}
