//! Results records and the IPFS gateway path: a blob's CID (`veil_core::cid`) names its sha256, so the
//! storage answers iExec's `GET /ipfs/<cid>` without any IPFS node.

pub use veil_core::cid::{CidError, cid_of, digest_of};

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
