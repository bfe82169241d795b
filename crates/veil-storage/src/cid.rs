//! IPFS content identifiers for stored blobs: a CIDv1 with the `raw` codec and a sha2-256 multihash
//! names exactly the sha256 of a blob's bytes — a Veil blob's id — so the storage answers iExec's
//! IPFS gateway path `GET /ipfs/<cid>` without any IPFS node. Written in multibase base32 (`b…`,
//! lowercase, no padding), as IPFS writes CIDv1.

/// CIDv1 (0x01), raw codec (0x55), sha2-256 (0x12), 32 bytes (0x20).
const PREFIX: [u8; 4] = [0x01, 0x55, 0x12, 0x20];
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CidError {
    #[error("`{0}` is not a CIDv1 in base32 (it starts with `b`)")]
    NotBase32(String),
    #[error("`{0}` is not valid base32")]
    BadBase32(String),
    #[error("`{0}` is not a raw sha2-256 CIDv1 (the only kind this storage serves)")]
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

/// The sha256 a CID names (the blob's id), or why it names none this storage can serve.
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

/// What a worker records as a task's results for the blob `id` (hex sha256) stored at `url`:
/// iExec's form, which iExec's SDK downloads through its IPFS gateway (`location`), plus `url`, where
/// Veil's clients fetch it from whichever storage holds it.
pub fn results_record(url: &str, id: &str) -> String {
    let mut d = [0u8; 32];
    let location = match hex::decode_to_slice(id, &mut d) {
        Ok(()) => format!("/ipfs/{}", cid_of(&d)),
        Err(_) => String::new(),
    };
    serde_json::json!({ "storage": "ipfs", "location": location, "url": url }).to_string()
}

/// Where to download a task's results: the `url` of a Veil record, the `location` of an iExec record
/// resolved against `gateway` (a storage or IPFS gateway), or the results themselves when they are a
/// URL.
pub fn results_url(results: &[u8], gateway: &str) -> Result<String, String> {
    let text = std::str::from_utf8(results).map_err(|_| "the task's results are not text".to_string())?.trim();
    if !text.starts_with('{') {
        return match text.starts_with("http://") || text.starts_with("https://") {
            true => Ok(text.to_string()),
            false => Err(format!("the task's results `{text}` name no place to download from")),
        };
    }
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("the task's results are not valid JSON: {e}"))?;
    if let Some(url) = v["url"].as_str().filter(|u| u.starts_with("http://") || u.starts_with("https://")) {
        return Ok(url.to_string());
    }
    match v["location"].as_str() {
        Some(l) if l.starts_with("/ipfs/") => Ok(format!("{}{l}", gateway.trim_end_matches('/'))),
        _ => Err(format!("the task's results `{text}` name no place to download from")),
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
    fn results_records_name_both_places() {
        let id = hex::encode(sha2::Sha256::digest(b""));
        let r = results_record(&format!("http://s:1/blobs/{id}"), &id);
        let v: serde_json::Value = serde_json::from_str(&r).unwrap();
        assert_eq!(v["storage"], "ipfs");
        assert_eq!(v["location"], "/ipfs/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku");
        assert_eq!(results_url(r.as_bytes(), "http://gw").unwrap(), format!("http://s:1/blobs/{id}"));
        let iexec =
            r#"{"storage":"ipfs","location":"/ipfs/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"}"#;
        assert_eq!(
            results_url(iexec.as_bytes(), "http://gw/").unwrap(),
            "http://gw/ipfs/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        );
        assert_eq!(results_url(b"http://old/blobs/x", "http://gw").unwrap(), "http://old/blobs/x");
        assert!(results_url(b"{\"storage\":\"ipfs\"}", "http://gw").is_err());
        assert!(results_url(b"file:///etc/passwd", "http://gw").is_err());
        assert!(results_url(b"{\"url\":\"file:///etc/passwd\"}", "http://gw").is_err());
    }
}
