//! Hashing and secp256k1 signatures as Ethereum does them: keccak256, EIP-191 personal messages,
//! deterministic (RFC 6979) signing, and recovery of the signer's address.
//!
//! Signatures are 65 bytes `r ‖ s ‖ v` with `v ∈ {27, 28}`; high-`s` (malleable) signatures are
//! refused, as OpenZeppelin's `ECDSA.recover` used by PoCo refuses them.

use alloy_primitives::{Address, B256, keccak256};
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::{All, Message, PublicKey, Secp256k1, SecretKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};
use std::fmt;
use std::sync::OnceLock;

fn ctx() -> &'static Secp256k1<All> {
    static CTX: OnceLock<Secp256k1<All>> = OnceLock::new();
    CTX.get_or_init(Secp256k1::new)
}

/// Half the secp256k1 group order: `s` above it is the malleable twin of a valid signature.
const HALF_N: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x5d, 0x57, 0x6e,
    0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0,
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature must be 65 bytes (r ‖ s ‖ v), got {0}")]
    Length(usize),
    #[error("signature v must be 27 or 28, got {0}")]
    V(u8),
    #[error("signature s is in the upper half of the curve order (malleable signature refused)")]
    HighS,
    #[error("signature does not recover to any public key")]
    Unrecoverable,
    #[error("signature is not valid hex: {0}")]
    Hex(String),
    #[error("private key is not a valid secp256k1 scalar")]
    BadKey,
}

/// A 65-byte Ethereum signature `r ‖ s ‖ v`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 65]);

impl Signature {
    pub fn from_slice(b: &[u8]) -> Result<Self, SignatureError> {
        let arr: [u8; 65] = b.try_into().map_err(|_| SignatureError::Length(b.len()))?;
        Ok(Signature(arr))
    }

    pub fn to_hex(&self) -> String {
        format!("0x{}", hex::encode(self.0))
    }

    pub fn parse_hex(s: &str) -> Result<Self, SignatureError> {
        let h = s.trim().trim_start_matches("0x");
        let b = hex::decode(h).map_err(|e| SignatureError::Hex(e.to_string()))?;
        Self::from_slice(&b)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Signature::parse_hex(&s).map_err(D::Error::custom)
    }
}

/// A secp256k1 private key. Its `Debug` never shows the key. The address is derived once: services
/// ask for it on every task, and each derivation is a public-key multiplication.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKey {
    secret: SecretKey,
    address: Address,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({})", self.address())
    }
}

impl PrivateKey {
    pub fn from_bytes(b: &[u8; 32]) -> Result<Self, SignatureError> {
        let secret = SecretKey::from_slice(b).map_err(|_| SignatureError::BadKey)?;
        let address = pubkey_address(&PublicKey::from_secret_key(ctx(), &secret));
        Ok(PrivateKey { secret, address })
    }

    /// Parses 64 hex characters, with or without `0x`.
    pub fn from_hex(s: &str) -> Result<Self, SignatureError> {
        let h = s.trim().trim_start_matches("0x");
        let b = hex::decode(h).map_err(|e| SignatureError::Hex(e.to_string()))?;
        let arr: [u8; 32] = b.as_slice().try_into().map_err(|_| SignatureError::BadKey)?;
        Self::from_bytes(&arr)
    }

    /// A key derived from a seed string: for deterministic development accounts and tests only.
    pub fn from_seed(seed: &str) -> Self {
        let mut h = keccak256(seed.as_bytes());
        loop {
            if let Ok(k) = Self::from_bytes(&h.0) {
                return k;
            }
            h = keccak256(h);
        }
    }

    pub fn secret_bytes(&self) -> [u8; 32] {
        self.secret.secret_bytes()
    }

    pub fn address(&self) -> Address {
        self.address
    }

    /// Signs a 32-byte digest as is (RFC 6979 deterministic nonce).
    pub fn sign_hash(&self, hash: &B256) -> Signature {
        let msg = Message::from_digest(hash.0);
        let (rid, rs) = ctx().sign_ecdsa_recoverable(&msg, &self.secret).serialize_compact();
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&rs);
        out[64] = 27 + rid.to_i32() as u8;
        Signature(out)
    }

    /// Signs `hash` as an EIP-191 personal message (`personal_sign` of the 32 bytes).
    pub fn sign_message_hash(&self, hash: &B256) -> Signature {
        self.sign_hash(&eip191_hash(hash))
    }
}

fn pubkey_address(pk: &PublicKey) -> Address {
    let ser = pk.serialize_uncompressed();
    Address::from_slice(&keccak256(&ser[1..])[12..])
}

/// Recovers the address that signed `hash` (the digest as is).
pub fn recover(hash: &B256, sig: &Signature) -> Result<Address, SignatureError> {
    let v = sig.0[64];
    if v != 27 && v != 28 {
        return Err(SignatureError::V(v));
    }
    if sig.0[32..64] > HALF_N[..] {
        return Err(SignatureError::HighS);
    }
    let rid = RecoveryId::from_i32((v - 27) as i32).map_err(|_| SignatureError::V(v))?;
    let rs = RecoverableSignature::from_compact(&sig.0[..64], rid).map_err(|_| SignatureError::Unrecoverable)?;
    let pk = ctx().recover_ecdsa(&Message::from_digest(hash.0), &rs).map_err(|_| SignatureError::Unrecoverable)?;
    Ok(pubkey_address(&pk))
}

/// Recovers the signer of an EIP-191 personal message over the 32 bytes `hash`.
pub fn recover_message_hash(hash: &B256, sig: &Signature) -> Result<Address, SignatureError> {
    recover(&eip191_hash(hash), sig)
}

/// `keccak256("\x19Ethereum Signed Message:\n32" ‖ hash)`.
pub fn eip191_hash(hash: &B256) -> B256 {
    let mut buf = [0u8; 60];
    buf[..28].copy_from_slice(b"\x19Ethereum Signed Message:\n32");
    buf[28..].copy_from_slice(&hash.0);
    keccak256(buf)
}

/// `keccak256` of the concatenation of `parts` (Solidity's `abi.encodePacked` of fixed-size values).
pub fn keccak_packed(parts: &[&[u8]]) -> B256 {
    let mut h = alloy_primitives::Keccak256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_key_address() {
        // anvil / hardhat development account #0
        let k = PrivateKey::from_hex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80").unwrap();
        assert_eq!(k.address().to_checksum(None), "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
    }

    #[test]
    fn sign_recover_roundtrip_and_determinism() {
        let k = PrivateKey::from_seed("test");
        let h = keccak256(b"hello");
        let s1 = k.sign_hash(&h);
        assert_eq!(s1, k.sign_hash(&h));
        assert_eq!(recover(&h, &s1).unwrap(), k.address());
        let s2 = k.sign_message_hash(&h);
        assert_eq!(recover_message_hash(&h, &s2).unwrap(), k.address());
        assert_ne!(recover(&h, &s2).ok(), Some(k.address()));
    }

    #[test]
    fn rejects_bad_v_and_high_s() {
        let k = PrivateKey::from_seed("test");
        let h = keccak256(b"x");
        let mut s = k.sign_hash(&h);
        s.0[64] = 1;
        assert_eq!(recover(&h, &s), Err(SignatureError::V(1)));
        let mut s = k.sign_hash(&h);
        s.0[32] = 0xff;
        assert_eq!(recover(&h, &s), Err(SignatureError::HighS));
    }

    #[test]
    fn personal_sign_vector() {
        // eth_account: Account.sign_message(encode_defunct(primitive=bytes32(0x11..)), key of anvil #0)
        let k = PrivateKey::from_hex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80").unwrap();
        let h = B256::repeat_byte(0x11);
        let s = k.sign_message_hash(&h);
        assert_eq!(
            s.to_hex(),
            "0x0906e5a6b04b9e3c235a2b815a32c91cd224de22cfcb09c22770758a589c41eb5caff8173afab85ff05471466b6628b5c06f6f73018e3fadc6a4dcddfed073c01b"
        );
        assert_eq!(recover_message_hash(&h, &s).unwrap(), k.address());
    }
}
