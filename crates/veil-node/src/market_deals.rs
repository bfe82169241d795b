//! iExec's market API, read side beyond orders: `GET /deals` (filters and paging), `GET /deals/{id}`,
//! `GET /categories` and `GET /categories/{id}` in iExec's shapes. `/deals/{id}` and `/categories`
//! are Veil API paths too: the node's handlers answer in iExec's shape when the query has a
//! `chainId` (iExec's SDK always sends one; Veil's clients never do).

use crate::market::{MResult, MarketErr, MarketHost, addr, bad, check_chain, number, paging};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use veil_core::B256;
use veil_core::state::Category;
use veil_sdk::DealView;

/// Whether a request to a path both APIs have is iExec's.
pub(crate) fn wants_iexec(q: &HashMap<String, String>) -> bool {
    q.contains_key("chainId")
}

/// A deal in iExec's market shape.
fn deal_json(v: &DealView, chain_id: u64) -> Value {
    let d = &v.deal;
    let asset = |a: &veil_core::state::DealAsset| json!({ "pointer": a.pointer, "owner": a.owner, "price": a.price });
    json!({
        "dealid": v.dealid,
        "chainId": chain_id,
        "app": asset(&d.app),
        "dataset": asset(&d.dataset),
        "workerpool": asset(&d.workerpool),
        "requester": d.requester,
        "beneficiary": d.beneficiary,
        "callback": d.callback,
        "appHash": d.app_order_hash,
        "datasetHash": d.dataset_order_hash,
        "workerpoolHash": d.workerpool_order_hash,
        "requestHash": d.request_order_hash,
        "params": d.params,
        "volume": d.bot_size.to_string(),
        "category": d.category,
        "tag": d.tag,
        "trust": d.trust.to_string(),
        "startTime": d.start_time,
        "botFirst": d.bot_first.to_string(),
        "botSize": d.bot_size.to_string(),
        "schedulerRewardRatio": d.scheduler_reward_ratio,
        "workerStake": d.worker_stake,
        "blockTimestamp": veil_sdk::iso8601_ms(d.start_time.saturating_mul(1000)),
    })
}

/// The filters of `GET /deals`.
fn deal_filter(q: &HashMap<String, String>) -> Result<impl Fn(&DealView) -> bool, MarketErr> {
    let hash = |k: &str| -> Result<Option<B256>, MarketErr> {
        q.get(k).map(|v| v.parse::<B256>().map_err(|_| bad(format!("{k} must be a 32-byte hash")))).transpose()
    };
    let (category, requester, beneficiary) = (number(q, "category")?, addr(q, "requester")?, addr(q, "beneficiary")?);
    let (app, dataset, workerpool) = (addr(q, "app")?, addr(q, "dataset")?, addr(q, "workerpool")?);
    let (app_owner, dataset_owner, pool_owner) =
        (addr(q, "appOwner")?, addr(q, "datasetOwner")?, addr(q, "workerpoolOwner")?);
    let hashes =
        [hash("apporderHash")?, hash("datasetorderHash")?, hash("workerpoolorderHash")?, hash("requestorderHash")?];
    Ok(move |v: &DealView| {
        let d = &v.deal;
        let is = |want: Option<veil_core::Address>, have: veil_core::Address| want.is_none_or(|w| w == have);
        let order_hashes = [d.app_order_hash, d.dataset_order_hash, d.workerpool_order_hash, d.request_order_hash];
        category.is_none_or(|c| c == d.category)
            && is(requester, d.requester)
            && is(beneficiary, d.beneficiary)
            && is(app, d.app.pointer)
            && is(dataset, d.dataset.pointer)
            && is(workerpool, d.workerpool.pointer)
            && is(app_owner, d.app.owner)
            && is(dataset_owner, d.dataset.owner)
            && is(pool_owner, d.workerpool.owner)
            && hashes.iter().zip(order_hashes).all(|(want, have)| want.is_none_or(|w| w == have))
    })
}

/// `{ok, count, <name>: page, nextPage?}` of `items` (already sorted).
fn page_of(items: Vec<Value>, name: &str, q: &HashMap<String, String>) -> MResult {
    let (index, size) = paging(q)?;
    let count = items.len() as u64;
    let start = index.saturating_mul(size);
    let page: Vec<Value> = items.into_iter().skip(start as usize).take(size as usize).collect();
    let mut v = json!({ "ok": true, "count": count, name: page });
    if start.saturating_add(size) < count {
        v["nextPage"] = json!(index + 1);
    }
    Ok(Json(v))
}

/// `GET /deals?chainId&…`: newest first.
pub(crate) async fn deals<T: MarketHost>(State(h): State<Arc<T>>, Query(q): Query<HashMap<String, String>>) -> MResult {
    check_chain(h.as_ref(), &q)?;
    let keep = deal_filter(&q)?;
    let chain_id = h.domain().chain_id;
    let mut all: Vec<DealView> = h.clone().deals().await?.into_iter().filter(|v| keep(v)).collect();
    all.sort_by(|a, b| b.deal.start_time.cmp(&a.deal.start_time).then(a.dealid.cmp(&b.dealid)));
    page_of(all.iter().map(|v| deal_json(v, chain_id)).collect(), "deals", &q)
}

/// `GET /deals/{id}?chainId` (called by the node's `/deals/{id}` when iExec asks).
pub(crate) async fn deal<T: MarketHost>(h: Arc<T>, id: &str, q: &HashMap<String, String>) -> MResult {
    check_chain(h.as_ref(), q)?;
    let id: B256 = id.parse().map_err(|_| bad(format!("`{id}` is not a deal id")))?;
    let chain_id = h.domain().chain_id;
    match h.clone().deals().await?.into_iter().find(|v| v.dealid == id) {
        Some(v) => {
            let mut j = deal_json(&v, chain_id);
            j["ok"] = json!(true);
            Ok(Json(j))
        }
        None => Err(MarketErr(StatusCode::NOT_FOUND, "deal not found".into())),
    }
}

fn category_json(id: u64, c: &Category, chain_id: u64) -> Value {
    json!({
        "catid": id,
        "chainId": chain_id,
        "name": c.name,
        "description": c.description,
        "workClockTimeRef": c.work_clock_time_ref,
    })
}

/// `GET /categories?chainId&minWorkClockTimeRef&maxWorkClockTimeRef&…` (called by the node's
/// `/categories` when iExec asks).
pub(crate) async fn categories<T: MarketHost>(h: Arc<T>, q: &HashMap<String, String>) -> MResult {
    check_chain(h.as_ref(), q)?;
    let (min, max) = (number(q, "minWorkClockTimeRef")?, number(q, "maxWorkClockTimeRef")?);
    let chain_id = h.domain().chain_id;
    let items = h
        .clone()
        .categories()
        .await?
        .iter()
        .filter(|(_, c)| {
            min.is_none_or(|m| c.work_clock_time_ref >= m) && max.is_none_or(|m| c.work_clock_time_ref <= m)
        })
        .map(|(id, c)| category_json(*id, c, chain_id))
        .collect();
    page_of(items, "categories", q)
}

/// `GET /categories/{catid}?chainId`.
pub(crate) async fn category<T: MarketHost>(
    State(h): State<Arc<T>>,
    Path(catid): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> MResult {
    check_chain(h.as_ref(), &q)?;
    let catid: u64 = catid.parse().map_err(|_| bad(format!("`{catid}` is not a category id")))?;
    let chain_id = h.domain().chain_id;
    match h.clone().categories().await?.iter().find(|(id, _)| *id == catid) {
        Some((id, c)) => {
            let mut j = category_json(*id, c, chain_id);
            j["ok"] = json!(true);
            Ok(Json(j))
        }
        None => Err(MarketErr(StatusCode::NOT_FOUND, "category not found".into())),
    }
}
