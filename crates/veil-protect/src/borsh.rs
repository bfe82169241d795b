//! The four Borsh encodings DataProtector uses for scalar values.

pub fn bool(v: bool) -> Vec<u8> {
    vec![v as u8]
}

pub fn f64(v: f64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

pub fn i128(v: i128) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

/// `u32` little-endian byte length, then the UTF-8 bytes.
pub fn string(v: &str) -> Vec<u8> {
    let mut out = (v.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(v.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodings() {
        assert_eq!(super::string("hi"), vec![2, 0, 0, 0, b'h', b'i']);
        assert_eq!(super::bool(true), vec![1]);
        assert_eq!(super::f64(1.5), 1.5f64.to_le_bytes().to_vec());
        assert_eq!(super::i128(-2), (-2i128).to_le_bytes().to_vec());
    }
}
