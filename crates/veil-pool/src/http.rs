//! The scheduler's HTTP API for workers: register, long-poll for work, report.

use crate::api::{LogsUpload, Register, Report};
use crate::scheduler::{Scheduler, SchedulerError};
use axum::Json;
use axum::Router;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;
use std::time::Duration;

/// How long a poll waits for work before answering "nothing yet".
pub const LONG_POLL: Duration = Duration::from_secs(20);

impl IntoResponse for SchedulerError {
    fn into_response(self) -> Response {
        let status = match &self {
            SchedulerError::Refused(_) => StatusCode::FORBIDDEN,
            SchedulerError::NotFound(_) => StatusCode::NOT_FOUND,
            SchedulerError::Malformed(_) => StatusCode::BAD_REQUEST,
            SchedulerError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            _ => StatusCode::BAD_GATEWAY,
        };
        let kind = match status {
            StatusCode::FORBIDDEN => "refused",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::BAD_REQUEST => "malformed",
            StatusCode::UNAUTHORIZED => "unauthenticated",
            _ => "unavailable",
        };
        (status, Json(serde_json::json!({ "error": self.to_string(), "kind": kind }))).into_response()
    }
}

type S = State<Arc<Scheduler>>;

pub fn router(s: Arc<Scheduler>) -> Router {
    Router::new()
        .route("/workers/register", post(register))
        .route("/workers/poll", post(poll))
        .route("/workers/report", post(report))
        .route("/workers/heartbeat", post(heartbeat))
        .route("/workers/logs", post(logs_upload))
        .route("/workers", get(workers))
        .route("/tasks/{taskid}", get(task))
        .route("/tasks/{taskid}/logs", get(task_logs))
        .route("/tasks/logs/challenge", get(logs_challenge))
        .with_state(s)
}

/// A JSON body, or a `{"error": …}` answer saying what is wrong with it.
fn parsed<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, SchedulerError> {
    b.map(|Json(v)| v).map_err(|e| SchedulerError::Malformed(e.body_text()))
}

async fn register(State(s): S, r: Result<Json<Register>, JsonRejection>) -> Result<Response, SchedulerError> {
    let r = parsed(r)?;
    Ok(Json(s.register(&r).await?).into_response())
}

async fn who(s: &Scheduler, h: &HeaderMap) -> Result<veil_core::Address, SchedulerError> {
    let token =
        h.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
    s.worker_of(token).await.ok_or_else(|| SchedulerError::Refused("unknown session: register again".into()))
}

async fn poll(State(s): S, h: HeaderMap) -> Result<Response, SchedulerError> {
    let w = who(&s, &h).await?;
    Ok(match s.next_for(w, LONG_POLL).await {
        Some(a) => Json(a).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// A busy worker does not poll: this keeps its assignments from looking abandoned.
async fn heartbeat(State(s): S, h: HeaderMap) -> Result<Response, SchedulerError> {
    who(&s, &h).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn report(State(s): S, h: HeaderMap, r: Result<Json<Report>, JsonRejection>) -> Result<Response, SchedulerError> {
    let w = who(&s, &h).await?;
    let r = parsed(r)?;
    s.report(w, &r).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /workers`: the workers that registered, and whether they are still heard from.
async fn workers(State(s): S) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "workers": s.workers().await }))
}

async fn task(State(s): S, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<veil_core::B256>() else {
        let body = serde_json::json!({ "error": format!("`{id}` is not a task id (0x + 64 hex characters)"), "kind": "malformed" });
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    };
    match s.replicates(&id).await {
        Ok(Some(r)) => Json(r).into_response(),
        Ok(None) => {
            let body = serde_json::json!({ "error": format!("task {id} was not run by this workerpool's scheduler"), "kind": "not_found" });
            (StatusCode::NOT_FOUND, Json(body)).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn logs_upload(
    State(s): S,
    h: HeaderMap,
    u: Result<Json<LogsUpload>, JsonRejection>,
) -> Result<Response, SchedulerError> {
    let w = who(&s, &h).await?;
    let u = parsed(u)?;
    s.put_logs(w, u).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(serde::Deserialize)]
struct LogsQuery {
    timestamp: Option<u64>,
    signature: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChallengeQuery {
    chain_id: u64,
    address: veil_core::Address,
}

/// `GET /tasks/logs/challenge?chainId&address`: iExec's workerpool API challenge (EIP-712).
async fn logs_challenge(
    State(s): S,
    q: Result<Query<ChallengeQuery>, QueryRejection>,
) -> Result<Response, SchedulerError> {
    let Query(q) = q.map_err(|e| SchedulerError::Malformed(e.body_text()))?;
    Ok(Json(s.logs_challenge(q.chain_id, q.address)?).into_response())
}

/// `GET /tasks/{id}/logs?timestamp=T&signature=0x…`: the requester's signed request; or, as
/// iExec's workerpool API, with `Authorization: <hash>_<signature>_<address>` (a signed challenge).
async fn task_logs(
    State(s): S,
    Path(id): Path<String>,
    h: HeaderMap,
    q: Result<Query<LogsQuery>, QueryRejection>,
) -> Result<Response, SchedulerError> {
    let id = id
        .parse::<veil_core::B256>()
        .map_err(|_| SchedulerError::Malformed(format!("`{id}` is not a task id (0x + 64 hex characters)")))?;
    if let Some(auth) = h.get("authorization") {
        return Ok(Json(s.task_logs_iexec(&id, auth.to_str().ok()).await?).into_response());
    }
    let Query(q) = q.map_err(|e| SchedulerError::Malformed(e.body_text()))?;
    let (Some(ts), Some(sig)) = (q.timestamp, q.signature) else {
        return Err(SchedulerError::Unauthenticated(
            "a signed request is needed: ?timestamp=UNIX_SECONDS&signature=0x… (the requester's EIP-191 signature; `veil task debug` makes it)".into(),
        ));
    };
    let sig = veil_core::Signature::parse_hex(&sig)
        .map_err(|_| SchedulerError::Malformed("`signature` is not a 65-byte hex signature".into()))?;
    Ok(Json(s.task_logs(&id, ts, &sig).await?).into_response())
}
