//! PoCo tags: a `bytes32` bit set of requirements (TEE, TEE framework, GPU).

use alloy_primitives::B256;

pub const TEE: u8 = 0x01;
pub const SCONE: u8 = 0x02;
pub const GRAMINE: u8 = 0x04;
pub const TDX: u8 = 0x08;
/// The TEE framework bits, ignored on dataset tags.
pub const FRAMEWORKS: u8 = SCONE | GRAMINE | TDX;

/// Names accepted where a tag may be written as a list, with their bit (byte 31 is the lowest byte).
const NAMES: &[(&str, usize, u8)] =
    &[("tee", 31, TEE), ("scone", 31, SCONE), ("gramine", 31, GRAMINE), ("tdx", 31, TDX), ("gpu", 30, 0x01)];

pub fn or(a: &B256, b: &B256) -> B256 {
    B256::from(std::array::from_fn(|i| a.0[i] | b.0[i]))
}

/// The dataset's tag with the framework bits cleared (PoCo: `dataset.tag & ~0xE`).
pub fn dataset_mask(t: &B256) -> B256 {
    let mut out = *t;
    out.0[31] &= !FRAMEWORKS;
    out
}

/// True when every bit of `needed` is in `offered`.
pub fn is_subset(needed: &B256, offered: &B256) -> bool {
    needed.0.iter().zip(offered.0.iter()).all(|(n, o)| n & !o == 0)
}

pub fn has_tee(t: &B256) -> bool {
    t.0[31] & TEE != 0
}

pub fn has_tdx(t: &B256) -> bool {
    t.0[31] & TDX != 0
}

/// Builds a tag from names such as `["tee", "scone"]`.
pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<B256, String> {
    let mut out = B256::ZERO;
    for n in names {
        let n = n.as_ref().trim().to_ascii_lowercase();
        let (_, byte, bit) = NAMES
            .iter()
            .find(|(name, _, _)| *name == n)
            .ok_or_else(|| format!("unknown tag `{n}` (known: tee, scone, gramine, tdx, gpu)"))?;
        out.0[*byte] |= bit;
    }
    Ok(out)
}

/// Parses a tag: a `0x` hex number up to 32 bytes (left-padded), or a comma-separated list of names.
pub fn parse(s: &str) -> Result<B256, String> {
    let t = s.trim();
    if let Some(h) = t.strip_prefix("0x") {
        if h.len() > 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("tag `{t}` is not a bytes32 hex value"));
        }
        let padded = format!("{h:0>64}");
        let bytes = hex::decode(padded).map_err(|e| e.to_string())?;
        return Ok(B256::from_slice(&bytes));
    }
    if t.is_empty() {
        return Ok(B256::ZERO);
    }
    from_names(&t.split(',').collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_forms() {
        assert_eq!(parse("0x3").unwrap().0[31], 3);
        assert_eq!(parse("tee,scone").unwrap(), parse("0x3").unwrap());
        assert_eq!(parse("tee,gpu").unwrap(), parse("0x101").unwrap());
        assert!(parse("tea").is_err());
        assert!(parse(&format!("0x{}", "1".repeat(65))).is_err());
    }

    #[test]
    fn subset_and_mask() {
        let scone = parse("0x3").unwrap();
        assert!(is_subset(&parse("0x1").unwrap(), &scone));
        assert!(!is_subset(&parse("0x5").unwrap(), &scone));
        assert_eq!(dataset_mask(&parse("0xf").unwrap()), parse("0x1").unwrap());
    }
}
