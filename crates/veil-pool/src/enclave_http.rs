//! The enclave's HTTP: plain `http://` through hyper directly, `https://` through the process's
//! reqwest client, built on first use.
//!
//! Why two: a client able to speak TLS reads the system's whole CA bundle when it is built
//! (OpenSSL 3: tens of milliseconds), and an enclave is a fresh process per task that usually talks
//! only to a local SMS and storage over plain HTTP. Bodies read are bounded.

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// Largest answer read from the SMS (its answers are small).
const MAX_ANSWER: u64 = 16 << 20;

pub struct EnclaveHttp {
    plain: Client<HttpConnector, Full<Bytes>>,
}

impl Default for EnclaveHttp {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        connector.set_nodelay(true);
        EnclaveHttp { plain: Client::builder(TokioExecutor::new()).build(connector) }
    }
}

impl EnclaveHttp {
    /// `method url` with `body` (sent as `content_type`); the status and at most `limit` bytes.
    async fn request(
        &self,
        method: &str,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
        limit: u64,
    ) -> Result<(u16, Vec<u8>), String> {
        let too_big = || format!("{url}: the answer is larger than {limit} bytes");
        if !url.starts_with("http://") {
            let m = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
            let mut r = veil_sdk::http().request(m, url);
            if !body.is_empty() {
                r = r.header("content-type", content_type).body(body);
            }
            let r = r.send().await.map_err(|e| format!("{url}: {e}"))?;
            if r.content_length().is_some_and(|n| n > limit) {
                return Err(too_big());
            }
            let status = r.status().as_u16();
            let bytes = r.bytes().await.map_err(|e| format!("{url}: {e}"))?;
            return if bytes.len() as u64 > limit { Err(too_big()) } else { Ok((status, bytes.to_vec())) };
        }
        let req = hyper::Request::builder()
            .method(method)
            .uri(url)
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("{url}: {e}"))?;
        let resp = self.plain.request(req).await.map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status().as_u16();
        let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
        let body = Limited::new(resp.into_body(), limit_usize)
            .collect()
            .await
            .map_err(|e| if e.is::<http_body_util::LengthLimitError>() { too_big() } else { format!("{url}: {e}") })?;
        Ok((status, body.to_bytes().to_vec()))
    }

    /// Downloads `url` (at most `limit` bytes); a non-2xx answer is an error.
    pub async fn get(&self, url: &str, limit: u64) -> Result<Vec<u8>, String> {
        let (status, body) = self.request("GET", url, "", vec![], limit).await.map_err(|e| format!("download {e}"))?;
        if !(200..300).contains(&status) {
            return Err(format!("download {url}: HTTP {status}"));
        }
        Ok(body)
    }

    /// Posts `body` as JSON; the answer's JSON, or the service's `{"error"}` (prefixed with `who`).
    pub async fn post_json<T: serde::de::DeserializeOwned>(
        &self,
        who: &str,
        url: &str,
        body: &impl serde::Serialize,
    ) -> Result<T, String> {
        let bytes = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        self.answer(who, url, self.request("POST", url, "application/json", bytes, MAX_ANSWER).await?)
    }

    /// Posts raw bytes; the answer's JSON, or the service's `{"error"}` (prefixed with `who`).
    pub async fn post_bytes<T: serde::de::DeserializeOwned>(
        &self,
        who: &str,
        url: &str,
        bytes: Vec<u8>,
    ) -> Result<T, String> {
        self.answer(who, url, self.request("POST", url, "application/octet-stream", bytes, MAX_ANSWER).await?)
    }

    fn answer<T: serde::de::DeserializeOwned>(
        &self,
        who: &str,
        url: &str,
        (status, body): (u16, Vec<u8>),
    ) -> Result<T, String> {
        if !(200..300).contains(&status) {
            let msg = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(String::from))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            return Err(format!("{who}: {msg}"));
        }
        serde_json::from_slice(&body).map_err(|e| format!("{url}: unexpected answer: {e}"))
    }
}
