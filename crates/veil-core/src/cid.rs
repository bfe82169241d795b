//! IPFS content identifiers and iExec's multiaddrs, as far as Veil uses them: a CIDv1 with the `raw`
//! codec and a sha2-256 multihash names exactly the sha256 of some bytes (a Veil blob's id), written
//! in multibase base32 (`b…`, lowercase, no padding) as IPFS writes CIDv1; and iExec's SDK stores a
//! dataset's `/ipfs/<cid>` on chain as a binary multiaddr (`/p2p` code 421 + the CID's multihash),
//! which [`multiaddr_text`] reads back as `/ipfs/<raw cid>`.

/// CIDv1 (0x01), raw codec (0x55), sha2-256 (0x12), 32 bytes (0x20).
const PREFIX: [u8; 4] = [0x01, 0x55, 0x12, 0x20];
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CidError {
    #[error("`{0}` is not a CIDv1 in base32 (it starts with `b`)")]
    NotBase32(String),
    #[error("`{0}` is not valid base32")]
    BadBase32(String),
    #[error("`{0}` is not a raw sha2-256 CIDv1 (the only kind Veil's storage serves)")]
    Unsupported(String),
}

/// The CID (`bafkrei…`) of a blob whose sha256 is `digest`.
pub fn cid_of(digest: &[u8; 32]) -> String {
    let mut bytes = PREFIX.to_vec();
    bytes.extend_from_slice(digest);
    let mut out = String::from("b");
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in bytes {
        acc = (acc << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The sha256 a CID names (a blob's id), or why it names none Veil serves.
pub fn digest_of(cid: &str) -> Result<[u8; 32], CidError> {
    let body = cid.strip_prefix('b').ok_or_else(|| CidError::NotBase32(cid.to_string()))?;
    if body.len() > 64 {
        return Err(CidError::Unsupported(cid.to_string()));
    }
    let (mut acc, mut bits, mut bytes) = (0u32, 0u32, Vec::with_capacity(36));
    for c in body.bytes() {
        let v = ALPHABET
            .iter()
            .position(|&a| a == c.to_ascii_lowercase())
            .ok_or_else(|| CidError::BadBase32(cid.to_string()))?;
        acc = (acc << 5) | v as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            bytes.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if bytes.len() != 36 || bytes[..4] != PREFIX || acc != 0 {
        return Err(CidError::Unsupported(cid.to_string()));
    }
    let mut d = [0u8; 32];
    d.copy_from_slice(&bytes[4..]);
    Ok(d)
}

/// Protocol code of `/ipfs` (`/p2p`) in a binary multiaddr, as an unsigned varint (421).
const P2P: [u8; 2] = [0xa5, 0x03];

/// A multiaddr as the ledger stores it: `/ipfs/<raw sha256 CID>` in iExec's binary form (what its
/// SDK writes), anything else as its UTF-8 bytes (as iExec's SDK does for what is no multiaddr).
pub fn multiaddr_bytes(text: &str) -> Vec<u8> {
    match text.strip_prefix("/ipfs/").map(digest_of) {
        Some(Ok(d)) => [&P2P[..], &[34, 0x12, 0x20], &d].concat(),
        _ => text.as_bytes().to_vec(),
    }
}

/// A multiaddr read from the ledger, as text: iExec's binary `/p2p/<sha2-256 multihash>` becomes
/// `/ipfs/<raw CID>` (the blob Veil's storage serves under that digest), anything else is UTF-8.
pub fn multiaddr_text(bytes: &[u8]) -> String {
    match bytes {
        [0xa5, 0x03, 34, 0x12, 0x20, digest @ ..] if digest.len() == 32 => {
            let mut d = [0u8; 32];
            d.copy_from_slice(digest);
            format!("/ipfs/{}", cid_of(&d))
        }
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    #[test]
    fn cids_match_ipfs() {
        // `ipfs add --cid-version 1 --raw-leaves` of an empty file.
        let empty: [u8; 32] = sha2::Sha256::digest(b"").into();
        assert_eq!(cid_of(&empty), "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku");
        for data in [&b""[..], b"x", b"hello world", &[0xffu8; 1000]] {
            let d: [u8; 32] = sha2::Sha256::digest(data).into();
            assert_eq!(digest_of(&cid_of(&d)), Ok(d));
        }
        let check = |cid: &str, want: fn(String) -> CidError| assert_eq!(digest_of(cid), Err(want(cid.to_string())));
        check("QmbWqxBEKC3P8tqsKc98xmWNzrzDtRLMiMPL8wBuTGsMnR", CidError::NotBase32);
        check("bafkrei!!!", CidError::BadBase32);
        // A dag-pb CIDv1 (codec 0x70): not a raw blob.
        check("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi", CidError::Unsupported);
        check("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvy", CidError::Unsupported);
        check(&format!("b{}", "a".repeat(100)), CidError::Unsupported);
    }

    #[test]
    fn multiaddrs_round_trip_as_ipfs_sdk_writes_them() {
        // `multiaddr('/ipfs/bafkrei…').bytes` in iExec's SDK 9.0.1 (@multiformats/multiaddr).
        let cid = "bafkreibv76rzo4gx2rmoz7pebno4xhnufma3qkioxirjtmbg6v5yr3mkba";
        let sdk = "a50322122035ffa39770d7d458ecfde40b5dcb9db42b01b8290eba2299b026f57b88ed8a08";
        let text = format!("/ipfs/{cid}");
        assert_eq!(hex::encode(multiaddr_bytes(&text)), sdk);
        assert_eq!(multiaddr_text(&hex::decode(sdk).unwrap()), text);
        for other in
            ["127.0.0.1:5000/app:1", "http://s/blobs/ab", "/ipfs/QmW2WQi7j6c7UgJTarActp7tDNikE4B2qXtFCfLPdsgaTQ", ""]
        {
            assert_eq!(multiaddr_bytes(other), other.as_bytes());
            assert_eq!(multiaddr_text(other.as_bytes()), other);
        }
    }
}
