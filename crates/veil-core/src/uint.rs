//! Serde helpers for `uint256` fields: read a JSON number, a decimal string or a `0x` hex string;
//! write a decimal string (JSON numbers above 2^53 lose precision in most clients).

use alloy_primitives::U256;
use serde::{Deserialize, Deserializer, Serializer, de::Error};

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Num(u64),
    Str(String),
}

/// Parses a decimal or `0x` hex string into a `uint256`.
pub fn parse(s: &str) -> Result<U256, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty number".into());
    }
    let r = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        if h.is_empty() || h.len() > 64 {
            return Err(format!("`{t}` is not a uint256 hex number"));
        }
        U256::from_str_radix(h, 16)
    } else {
        if !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("`{t}` is not a decimal or 0x-hex number"));
        }
        U256::from_str_radix(t, 10)
    };
    r.map_err(|_| format!("`{t}` does not fit in uint256"))
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<U256, D::Error> {
    match Raw::deserialize(d).map_err(|_| D::Error::custom("expected a number, a decimal string or a 0x hex string"))? {
        Raw::Num(n) => Ok(U256::from(n)),
        Raw::Str(s) => parse(&s).map_err(D::Error::custom),
    }
}

pub fn serialize<S: Serializer>(v: &U256, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&v.to_string())
}

/// `u64` fields with the same leniency on input, written as JSON numbers.
pub mod u64_lenient {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let v = super::deserialize(d)?;
        u64::try_from(v).map_err(|_| D::Error::custom(format!("{v} is larger than 2^64-1")))
    }

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(*v)
    }
}
