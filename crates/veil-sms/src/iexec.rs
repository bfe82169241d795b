//! iExec's SMS API beside Veil's, on the same sealed store and rules (one SMS, two shapes), as
//! iExec's SDK calls it: `HEAD|POST /secrets/web3?secretAddress` (dataset keys),
//! `HEAD|POST|PUT /secrets/web2?ownerAddress&secretName` (the result encryption key
//! `iexec-result-encryption-public-key`, base64 PEM; other names are the owner's requester
//! secrets), `HEAD|POST /requesters/{address}/secrets/{name}`, `HEAD|POST /apps/{address}/secrets`.
//! Writes carry the raw value as text and an `Authorization` header: the EIP-191 signature of
//! iExec's challenge `keccak(keccak("IEXEC_SMS_DOMAIN") ‖ …)`. Status codes are iExec's: 2xx done,
//! 404 absent, 409 exists (not replaceable), 401 not signed by who may write.

use crate::service::{Sms, SmsError};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use std::collections::HashMap;
use std::sync::Arc;
use veil_core::{Address, B256, Signature, keccak256};
use veil_sdk::SecretKind;

const DOMAIN: &[u8] = b"IEXEC_SMS_DOMAIN";
/// The web2 secret name iExec gives a beneficiary's result encryption key.
pub const RESULT_KEY_NAME: &str = "iexec-result-encryption-public-key";

type S = State<Arc<Sms>>;
type Q = Query<HashMap<String, String>>;

/// iExec's web3 challenge: `keccak(keccak(DOMAIN) ‖ address ‖ keccak(value))`.
pub fn web3_challenge(address: &Address, value: &str) -> B256 {
    let mut b = keccak256(DOMAIN).to_vec();
    b.extend_from_slice(address.as_slice());
    b.extend_from_slice(keccak256(value.as_bytes()).as_slice());
    keccak256(b)
}

/// iExec's web2 challenge: `keccak(keccak(DOMAIN) ‖ owner ‖ keccak(name) ‖ keccak(value))`.
pub fn web2_challenge(owner: &Address, name: &str, value: &str) -> B256 {
    let mut b = keccak256(DOMAIN).to_vec();
    b.extend_from_slice(owner.as_slice());
    b.extend_from_slice(keccak256(name.as_bytes()).as_slice());
    b.extend_from_slice(keccak256(value.as_bytes()).as_slice());
    keccak256(b)
}

/// iExec's SMS answers status codes, not bodies.
fn status(r: Result<(), SmsError>) -> Response {
    match r {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(SmsError::Signature(_) | SmsError::Forbidden(_)) => StatusCode::UNAUTHORIZED.into_response(),
        Err(e) => e.into_response(),
    }
}

fn address(q: &HashMap<String, String>, k: &str) -> Result<Address, SmsError> {
    q.get(k).and_then(|a| a.parse().ok()).ok_or_else(|| SmsError::Invalid(format!("give {k} (an address)")))
}

fn signer(headers: &HeaderMap, challenge: &B256) -> Result<Address, SmsError> {
    let sig = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| SmsError::Signature("no Authorization header".into()))?;
    let sig: Signature =
        serde_json::from_value(serde_json::json!(sig)).map_err(|_| SmsError::Signature("malformed".into()))?;
    veil_core::crypto::recover_message_hash(challenge, &sig).map_err(|e| SmsError::Signature(e.to_string()))
}

fn text(b: &Bytes) -> Result<String, SmsError> {
    if b.len() > crate::service::MAX_SECRET * 2 {
        return Err(SmsError::TooLarge(b.len()));
    }
    String::from_utf8(b.to_vec()).map_err(|_| SmsError::Invalid("the secret is not text".into()))
}

fn exists(s: &Sms, kind: SecretKind, target: &Address, name: &str) -> Response {
    match s.exists(kind, target, name) {
        Ok(true) => StatusCode::OK.into_response(),
        Ok(false) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => e.into_response(),
    }
}

/// A web2 secret's slot: the result key, or a requester secret of that name.
fn web2_slot(name: &str) -> (SecretKind, &str) {
    if name == RESULT_KEY_NAME { (SecretKind::ResultKey, "") } else { (SecretKind::RequesterSecret, name) }
}

async fn web3_head(State(s): S, Query(q): Q) -> Response {
    match address(&q, "secretAddress") {
        Ok(a) => exists(&s, SecretKind::DatasetKey, &a, ""),
        Err(e) => e.into_response(),
    }
}

async fn web3_post(State(s): S, Query(q): Query<HashMap<String, String>>, headers: HeaderMap, b: Bytes) -> Response {
    let r = async {
        let a = address(&q, "secretAddress")?;
        let value = text(&b)?;
        let who = signer(&headers, &web3_challenge(&a, &value))?;
        s.write_iexec(SecretKind::DatasetKey, &a, "", &value, who, false).await
    };
    status(r.await)
}

async fn web2_head(State(s): S, Query(q): Q) -> Response {
    let name = q.get("secretName").cloned().unwrap_or_default();
    match address(&q, "ownerAddress") {
        Ok(a) => {
            let (kind, slot_name) = web2_slot(&name);
            exists(&s, kind, &a, slot_name)
        }
        Err(e) => e.into_response(),
    }
}

async fn web2_write(s: Arc<Sms>, q: HashMap<String, String>, headers: HeaderMap, b: Bytes, update: bool) -> Response {
    let r = async {
        let owner = address(&q, "ownerAddress")?;
        let name = q.get("secretName").cloned().ok_or_else(|| SmsError::Invalid("give secretName".into()))?;
        let value = text(&b)?;
        let who = signer(&headers, &web2_challenge(&owner, &name, &value))?;
        let (kind, slot_name) = web2_slot(&name);
        // iExec keeps the result key as base64 of its PEM; Veil's slot holds the PEM.
        let stored = match kind {
            SecretKind::ResultKey => String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(value.trim())
                    .map_err(|_| SmsError::Invalid("the result encryption key is base64 of a PEM public key".into()))?,
            )
            .map_err(|_| SmsError::Invalid("the result encryption key is base64 of a PEM public key".into()))?,
            _ => value,
        };
        s.write_iexec(kind, &owner, slot_name, &stored, who, update).await
    };
    status(r.await)
}

async fn web2_post(State(s): S, Query(q): Q, headers: HeaderMap, b: Bytes) -> Response {
    web2_write(s, q, headers, b, false).await
}

async fn web2_put(State(s): S, Query(q): Q, headers: HeaderMap, b: Bytes) -> Response {
    web2_write(s, q, headers, b, true).await
}

fn path_address(a: &str) -> Result<Address, SmsError> {
    a.parse().map_err(|_| SmsError::Invalid(format!("`{a}` is not an address")))
}

async fn requester_head(State(s): S, Path((a, name)): Path<(String, String)>) -> Response {
    match path_address(&a) {
        Ok(a) => exists(&s, SecretKind::RequesterSecret, &a, &name),
        Err(e) => e.into_response(),
    }
}

async fn requester_post(
    State(s): S,
    Path((a, name)): Path<(String, String)>,
    headers: HeaderMap,
    b: Bytes,
) -> Response {
    let r = async {
        let a = path_address(&a)?;
        let value = text(&b)?;
        let who = signer(&headers, &web2_challenge(&a, &name, &value))?;
        s.write_iexec(SecretKind::RequesterSecret, &a, &name, &value, who, false).await
    };
    status(r.await)
}

async fn app_head(State(s): S, Path(a): Path<String>) -> Response {
    match path_address(&a) {
        Ok(a) => exists(&s, SecretKind::AppSecret, &a, ""),
        Err(e) => e.into_response(),
    }
}

async fn app_post(State(s): S, Path(a): Path<String>, headers: HeaderMap, b: Bytes) -> Response {
    let r = async {
        let a = path_address(&a)?;
        let value = text(&b)?;
        // iExec signs app secrets as web2 secret "1" of the app.
        let who = signer(&headers, &web2_challenge(&a, "1", &value))?;
        s.write_iexec(SecretKind::AppSecret, &a, "", &value, who, false).await
    };
    status(r.await)
}

/// iExec's SMS routes (merged at the root by the SMS router).
pub fn routes() -> Router<Arc<Sms>> {
    Router::new()
        .route("/secrets/web3", get(web3_head).head(web3_head).post(web3_post))
        .route("/secrets/web2", get(web2_head).head(web2_head).post(web2_post).put(web2_put))
        .route("/requesters/{address}/secrets/{name}", get(requester_head).head(requester_head).post(requester_post))
        .route("/apps/{address}/secrets", get(app_head).head(app_head).post(app_post))
}
