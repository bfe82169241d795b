//! SMS routes under `/sms`: a challenge, writes, and existence checks. No route returns a value.

use crate::service::{Sms, SmsError};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use std::sync::Arc;
use veil_core::Address;
use veil_sdk::{SecretKind, SmsChallenge, SmsExists, SmsWrite};

impl IntoResponse for SmsError {
    fn into_response(self) -> Response {
        let (status, kind) = match &self {
            SmsError::Challenge => (StatusCode::UNAUTHORIZED, "bad_challenge"),
            SmsError::Signature(_) => (StatusCode::UNAUTHORIZED, "bad_signature"),
            SmsError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            SmsError::Invalid(_) => (StatusCode::BAD_REQUEST, "malformed"),
            SmsError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            SmsError::Ledger(_) => (StatusCode::BAD_GATEWAY, "ledger_unavailable"),
            SmsError::Storage(_) | SmsError::Seal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            SmsError::Session { .. } => (StatusCode::FORBIDDEN, "session_refused"),
            SmsError::Exists => (StatusCode::CONFLICT, "exists"),
            SmsError::Missing => (StatusCode::NOT_FOUND, "not_found"),
        };
        (status, Json(serde_json::json!({ "error": self.to_string(), "kind": kind }))).into_response()
    }
}

type S = State<Arc<Sms>>;

/// `GET /sms/policy`: what evidence this SMS accepts.
async fn policy(State(sms): State<Arc<Sms>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "platforms": {
            "sim": if sms.dev { "accepted (dev mode): no hardware protection" } else { "refused (not in dev mode)" },
            "sgx": "DCAP quote verified against Intel's root, then the TCB policy; MRENCLAVE = the app's fingerprint",
            "tdx": "DCAP quote verified against Intel's root, then the TCB policy; MRTD and RTMR0-2 an allowed TD image; RTMR3 replayed from the event log holds the app's measurement",
        },
        "tcbPolicy": sms.tee.tcb_policy,
        "tdImages": sms.tee.td_images,
        "debugEnclaves": "refused",
        "collateral": match &sms.collateral {
            Some(c) => serde_json::json!({
                "from": "the SMS's cache, refreshed from its PCCS; stale collateral refused",
                "cache": c.dir(),
                "pccs": c.pccs(),
            }),
            None => serde_json::json!({ "from": "carried by the enclave (Intel-signed), judged at the SMS's clock" }),
        },
    }))
}

pub fn router(sms: Arc<Sms>) -> Router {
    Router::new()
        .route("/sms/challenge", post(challenge))
        .route("/sms/policy", axum::routing::get(policy))
        .route("/sms/sessions", post(session))
        .route("/sms/enclave-challenge/{taskid}", post(enclave_challenge))
        .route("/sms/{kind}/{target}", post(write).get(exists))
        .route("/sms/{kind}/{target}/{name}", post(write_named).get(exists_named))
        .merge(crate::iexec::routes())
        .layer(DefaultBodyLimit::max(crate::service::MAX_SECRET * 2 + 4096))
        .with_state(sms)
}

fn parse(kind: &str, target: &str) -> Result<(SecretKind, Address), SmsError> {
    let k = match kind {
        "dataset-key" => SecretKind::DatasetKey,
        "requester-secret" => SecretKind::RequesterSecret,
        "app-secret" => SecretKind::AppSecret,
        "result-key" => SecretKind::ResultKey,
        _ => {
            return Err(SmsError::Invalid(format!(
                "unknown secret kind `{kind}` (dataset-key, requester-secret, app-secret, result-key)"
            )));
        }
    };
    let a = target.parse().map_err(|_| SmsError::Invalid(format!("`{target}` is not an address")))?;
    Ok((k, a))
}

fn body(b: Result<Bytes, BytesRejection>) -> Result<SmsWrite, SmsError> {
    let b = b.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            SmsError::TooLarge(crate::service::MAX_SECRET + 1)
        } else {
            SmsError::Invalid(e.body_text())
        }
    })?;
    serde_json::from_slice(&b).map_err(|e| SmsError::Invalid(format!("invalid JSON body: {e}")))
}

async fn challenge(State(s): S) -> Json<SmsChallenge> {
    Json(s.challenge())
}

async fn write(
    State(s): S,
    Path((kind, target)): Path<(String, String)>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<SmsExists>, SmsError> {
    let (k, a) = parse(&kind, &target)?;
    if k == SecretKind::RequesterSecret {
        return Err(SmsError::Invalid("requester secrets have a name: /sms/requester-secret/{address}/{name}".into()));
    }
    s.write(k, &a, "", &body(b)?).await?;
    Ok(Json(SmsExists { exists: true }))
}

async fn write_named(
    State(s): S,
    Path((kind, target, name)): Path<(String, String, String)>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<SmsExists>, SmsError> {
    let (k, a) = parse(&kind, &target)?;
    s.write(k, &a, &name, &body(b)?).await?;
    Ok(Json(SmsExists { exists: true }))
}

async fn exists(State(s): S, Path((kind, target)): Path<(String, String)>) -> Result<Json<SmsExists>, SmsError> {
    let (k, a) = parse(&kind, &target)?;
    Ok(Json(SmsExists { exists: s.exists(k, &a, "")? }))
}

async fn exists_named(
    State(s): S,
    Path((kind, target, name)): Path<(String, String, String)>,
) -> Result<Json<SmsExists>, SmsError> {
    let (k, a) = parse(&kind, &target)?;
    Ok(Json(SmsExists { exists: s.exists(k, &a, &name)? }))
}

/// An enclave's request for its task's secrets (answered sealed to its session key).
async fn session(State(s): S, b: Result<Bytes, BytesRejection>) -> Result<Json<veil_tee::SealedBox>, SmsError> {
    let b = b.map_err(|e| SmsError::Invalid(e.body_text()))?;
    let req: veil_tee::SessionRequest =
        serde_json::from_slice(&b).map_err(|e| SmsError::Invalid(format!("invalid session request: {e}")))?;
    Ok(Json(s.session(&req).await?))
}

/// The task's enclave challenge address (created on the first ask; TEE tasks only).
async fn enclave_challenge(State(s): S, Path(taskid): Path<String>) -> Result<Json<serde_json::Value>, SmsError> {
    let id: veil_core::B256 =
        taskid.parse().map_err(|_| SmsError::Invalid(format!("`{taskid}` is not a task id (0x + 64 hex)")))?;
    Ok(Json(serde_json::json!({ "taskid": id, "address": s.enclave_challenge(&id).await? })))
}
