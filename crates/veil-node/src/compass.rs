//! iExec's compass on the node: `GET /{chainId}/workerpools/{address}` → `{apiUrl}`, where iExec's
//! SDK finds a workerpool's API (for `iexec task debug`). Schedulers announce their URL with
//! `POST /workerpools/{address}/api`, signed by the workerpool's owner (checked against the ledger),
//! and repeat it every minute, so the node keeps announcements in memory only.

use crate::api::ApiErr;
use crate::market::{MarketErr, MarketHost};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use veil_core::Address;
use veil_sdk::{PoolApiAnnouncement, pool_api_message};

/// How far an announcement's timestamp may be from the node's clock.
const ANNOUNCE_WINDOW_SECS: u64 = 300;
/// Longest URL a scheduler may announce.
const MAX_URL: usize = 2048;
/// Most workerpools whose APIs a node keeps.
const MAX_POOLS: usize = 10_000;

/// Workerpool → its scheduler's API URL.
#[derive(Default)]
pub struct PoolApis(pub(crate) Mutex<HashMap<Address, String>>);

/// `POST /workerpools/{address}/api`.
async fn announce<T: MarketHost>(
    State(h): State<Arc<T>>,
    Path(pool): Path<String>,
    Json(a): Json<PoolApiAnnouncement>,
) -> Result<Json<Value>, ApiErr> {
    let pool: Address = pool.parse().map_err(|_| ApiErr::bad(format!("`{pool}` is not an address")))?;
    let url = api_url(&a.url)?;
    // The signature covers the URL as sent; it is kept without its trailing slash.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if now.abs_diff(a.timestamp) > ANNOUNCE_WINDOW_SECS {
        return Err(ApiErr::bad("the announcement's timestamp is more than 5 minutes off: sign a fresh one"));
    }
    let signer = veil_core::crypto::recover_message_hash(&pool_api_message(&pool, &a.url, a.timestamp), &a.signature)
        .map_err(|e| ApiErr::new(StatusCode::UNAUTHORIZED, "bad_signature", format!("bad signature: {e}")))?;
    let owner = h.clone().workerpool_owner(pool).await?;
    if owner != Some(signer) {
        let why = match owner {
            Some(o) => format!("workerpool {pool} belongs to {o}, not to the signer {signer}"),
            None => format!("workerpool {pool} is not registered on the ledger"),
        };
        return Err(ApiErr::new(StatusCode::UNAUTHORIZED, "not_owner", why));
    }
    let mut apis = h.pool_apis().0.lock().unwrap_or_else(|p| p.into_inner());
    if apis.len() >= MAX_POOLS && !apis.contains_key(&pool) {
        return Err(ApiErr::new(StatusCode::TOO_MANY_REQUESTS, "busy", "too many workerpools announced"));
    }
    apis.insert(pool, url.clone());
    Ok(Json(json!({ "workerpool": pool, "apiUrl": url })))
}

/// An announced URL: http(s), bounded, without its trailing slash.
fn api_url(url: &str) -> Result<String, ApiErr> {
    let ok = (url.starts_with("http://") || url.starts_with("https://")) && url.len() <= MAX_URL;
    if !ok || url.chars().any(char::is_whitespace) {
        return Err(ApiErr::bad(format!("the API URL must be an http(s) URL of at most {MAX_URL} characters")));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// `GET /{chainId}/workerpools/{address}`: iExec's compass.
async fn lookup<T: MarketHost>(
    State(h): State<Arc<T>>,
    Path((chain, pool)): Path<(String, String)>,
) -> Result<Json<Value>, MarketErr> {
    let chain_id = h.domain().chain_id;
    if chain.parse::<u64>().ok() != Some(chain_id) {
        return Err(MarketErr(StatusCode::NOT_FOUND, format!("this compass serves chain {chain_id}, not {chain}")));
    }
    let pool: Address =
        pool.parse().map_err(|_| MarketErr(StatusCode::BAD_REQUEST, format!("`{pool}` is not an address")))?;
    let apis = h.pool_apis().0.lock().unwrap_or_else(|p| p.into_inner());
    match apis.get(&pool) {
        Some(url) => Ok(Json(json!({ "apiUrl": url }))),
        None => Err(MarketErr(StatusCode::NOT_FOUND, format!("no API announced for workerpool {pool}"))),
    }
}

pub(crate) fn routes<T: MarketHost>() -> axum::Router<Arc<T>> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/workerpools/{address}/api", post(announce::<T>))
        .route("/{chain}/workerpools/{address}", get(lookup::<T>))
}
