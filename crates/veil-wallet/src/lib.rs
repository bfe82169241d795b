//! # veil-wallet — Ethereum keystore v3 files
//!
//! Owns reading and writing the Web3 Secret Storage format (keystore v3): scrypt or pbkdf2
//! (hmac-sha256) key derivation, aes-128-ctr encryption, keccak256 MAC. Files written by geth,
//! eth-account, ethers or MetaMask exports open here, and files written here open there.
//!
//! It must never log or return a private key or password in an error, and it bounds the KDF
//! parameters it accepts so a hostile file cannot make it allocate or spin without end.

use aes::cipher::{KeyIvInit, StreamCipher};
use rand::RngCore;
use serde_json::{Value, json};
use veil_core::{Address, PrivateKey, keccak256};

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

/// Scrypt memory (128 · r · n bytes) accepted at most when opening a file.
const MAX_SCRYPT_MEMORY: u64 = 1 << 30;
const MAX_SCRYPT_P: u64 = 64;
const MAX_PBKDF2_ROUNDS: u64 = 10_000_000;

#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    #[error("keystore is not valid JSON: {0}")]
    Json(String),
    #[error("keystore field `{0}` is missing or has the wrong type")]
    Field(&'static str),
    #[error("keystore version {0} is not supported (only version 3)")]
    Version(String),
    #[error("keystore cipher `{0}` is not supported (only aes-128-ctr)")]
    Cipher(String),
    #[error("keystore kdf `{0}` is not supported (use scrypt or pbkdf2)")]
    Kdf(String),
    #[error("keystore kdf parameters refused: {0}")]
    KdfParams(String),
    #[error("wrong password, or the keystore is corrupted (MAC mismatch)")]
    Mac,
    #[error("the keystore does not hold a valid secp256k1 private key")]
    BadKey,
}

/// Key derivation settings for new keystores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kdf {
    /// scrypt with `n = 2^log_n`, `r`, `p`.
    Scrypt { log_n: u8, r: u32, p: u32 },
    /// pbkdf2 with hmac-sha256 and `c` rounds.
    Pbkdf2 { c: u32 },
}

impl Kdf {
    /// geth's "standard" scrypt settings (n = 2^18, r = 8, p = 1).
    pub const STANDARD: Kdf = Kdf::Scrypt { log_n: 18, r: 8, p: 1 };
    /// geth's "light" scrypt settings (n = 2^12, r = 8, p = 6): for tests and throwaway keys.
    pub const LIGHT: Kdf = Kdf::Scrypt { log_n: 12, r: 8, p: 6 };
}

/// Writes `key` into a new keystore v3 JSON document protected by `password`.
pub fn encrypt(key: &PrivateKey, password: &[u8], kdf: Kdf) -> Result<String, WalletError> {
    let mut rng = rand::thread_rng();
    let mut salt = [0u8; 32];
    let mut iv = [0u8; 16];
    rng.fill_bytes(&mut salt);
    rng.fill_bytes(&mut iv);
    let (dk, kdf_name, kdfparams) = match kdf {
        Kdf::Scrypt { log_n, r, p } => {
            let dk = scrypt_key(password, &salt, log_n, r, p)?;
            (dk, "scrypt", json!({"dklen": 32, "n": 1u64 << log_n, "r": r, "p": p, "salt": hex::encode(salt)}))
        }
        Kdf::Pbkdf2 { c } => {
            let dk = pbkdf2_key(password, &salt, c);
            (dk, "pbkdf2", json!({"dklen": 32, "c": c, "prf": "hmac-sha256", "salt": hex::encode(salt)}))
        }
    };
    let mut ciphertext = key.secret_bytes().to_vec();
    ctr_xor(&dk, &iv, &mut ciphertext);
    let mac = keccak256([&dk[16..32], &ciphertext[..]].concat());
    let addr = key.address();
    let doc = json!({
        "address": hex::encode(addr.as_slice()),
        "crypto": {
            "cipher": "aes-128-ctr",
            "cipherparams": {"iv": hex::encode(iv)},
            "ciphertext": hex::encode(&ciphertext),
            "kdf": kdf_name,
            "kdfparams": kdfparams,
            "mac": hex::encode(mac),
        },
        "id": uuid::Uuid::new_v4().to_string(),
        "version": 3,
    });
    Ok(serde_json::to_string_pretty(&doc).unwrap_or_default())
}

/// The address a keystore says it holds, without decrypting (absent in some files).
pub fn claimed_address(json: &str) -> Option<Address> {
    let v: Value = serde_json::from_str(json).ok()?;
    let a = v.get("address")?.as_str()?;
    let a = if a.starts_with("0x") { a.to_string() } else { format!("0x{a}") };
    a.parse().ok()
}

/// Opens a keystore v3 document with `password`.
pub fn decrypt(json: &str, password: &[u8]) -> Result<PrivateKey, WalletError> {
    let v: Value = serde_json::from_str(json).map_err(|e| WalletError::Json(e.to_string()))?;
    let version = v.get("version").map(|x| x.to_string()).unwrap_or_default();
    if version != "3" {
        return Err(WalletError::Version(version));
    }
    let crypto = v.get("crypto").or_else(|| v.get("Crypto")).ok_or(WalletError::Field("crypto"))?;
    let text = |k: &'static str| crypto.get(k).and_then(Value::as_str).ok_or(WalletError::Field(k));
    let cipher = text("cipher")?;
    if cipher != "aes-128-ctr" {
        return Err(WalletError::Cipher(cipher.into()));
    }
    let iv = crypto.pointer("/cipherparams/iv").and_then(Value::as_str).ok_or(WalletError::Field("cipherparams.iv"))?;
    let iv: [u8; 16] = unhex(iv, "cipherparams.iv")?.try_into().map_err(|_| WalletError::Field("cipherparams.iv"))?;
    let ciphertext = unhex(text("ciphertext")?, "ciphertext")?;
    if ciphertext.len() != 32 {
        return Err(WalletError::Field("ciphertext"));
    }
    let mac = unhex(text("mac")?, "mac")?;
    let params = crypto.get("kdfparams").ok_or(WalletError::Field("kdfparams"))?;
    let dk = derive(text("kdf")?, params, password)?;
    if keccak256([&dk[16..32], &ciphertext[..]].concat()).as_slice() != mac.as_slice() {
        return Err(WalletError::Mac);
    }
    let mut secret = ciphertext;
    ctr_xor(&dk, &iv, &mut secret);
    let arr: [u8; 32] = secret.try_into().map_err(|_| WalletError::BadKey)?;
    PrivateKey::from_bytes(&arr).map_err(|_| WalletError::BadKey)
}

fn ctr_xor(dk: &[u8; 32], iv: &[u8; 16], data: &mut [u8]) {
    // Both slices have the exact sizes aes-128-ctr takes, so construction cannot fail.
    if let Ok(mut c) = Aes128Ctr::new_from_slices(&dk[..16], iv) {
        c.apply_keystream(data);
    }
}

fn unhex(s: &str, field: &'static str) -> Result<Vec<u8>, WalletError> {
    hex::decode(s.trim_start_matches("0x")).map_err(|_| WalletError::Field(field))
}

fn derive(kdf: &str, p: &Value, password: &[u8]) -> Result<[u8; 32], WalletError> {
    let num = |k: &'static str| p.get(k).and_then(Value::as_u64).ok_or(WalletError::Field(k));
    let salt = unhex(p.get("salt").and_then(Value::as_str).ok_or(WalletError::Field("salt"))?, "salt")?;
    if num("dklen")? != 32 {
        return Err(WalletError::KdfParams("dklen must be 32".into()));
    }
    match kdf {
        "scrypt" => {
            let (n, r, pp) = (num("n")?, num("r")?, num("p")?);
            if n < 2 || !n.is_power_of_two() {
                return Err(WalletError::KdfParams(format!("scrypt n = {n} is not a power of two")));
            }
            if r == 0 || pp == 0 || pp > MAX_SCRYPT_P || 128u64.saturating_mul(r).saturating_mul(n) > MAX_SCRYPT_MEMORY
            {
                return Err(WalletError::KdfParams(format!("scrypt n={n} r={r} p={pp} is beyond the accepted limits")));
            }
            scrypt_key(password, &salt, n.trailing_zeros() as u8, r as u32, pp as u32)
        }
        "pbkdf2" => {
            let prf = p.get("prf").and_then(Value::as_str).unwrap_or("hmac-sha256");
            if prf != "hmac-sha256" {
                return Err(WalletError::KdfParams(format!("pbkdf2 prf `{prf}` is not supported (only hmac-sha256)")));
            }
            let c = num("c")?;
            if c == 0 || c > MAX_PBKDF2_ROUNDS {
                return Err(WalletError::KdfParams(format!("pbkdf2 c = {c} is beyond the accepted limits")));
            }
            Ok(pbkdf2_key(password, &salt, c as u32))
        }
        other => Err(WalletError::Kdf(other.into())),
    }
}

fn scrypt_key(password: &[u8], salt: &[u8], log_n: u8, r: u32, p: u32) -> Result<[u8; 32], WalletError> {
    let params = scrypt::Params::new(log_n, r, p).map_err(|e| WalletError::KdfParams(e.to_string()))?;
    let mut dk = [0u8; 32];
    scrypt::scrypt(password, salt, &params, &mut dk).map_err(|e| WalletError::KdfParams(e.to_string()))?;
    Ok(dk)
}

fn pbkdf2_key(password: &[u8], salt: &[u8], c: u32) -> [u8; 32] {
    let mut dk = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, c, &mut dk);
    dk
}

/// A fresh random private key.
pub fn random_key() -> PrivateKey {
    let mut rng = rand::thread_rng();
    loop {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        if let Ok(k) = PrivateKey::from_bytes(&b) {
            return k;
        }
    }
}
