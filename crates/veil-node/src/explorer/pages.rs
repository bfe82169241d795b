//! The explorer's pages. Each reads the ledger through the ledger trait and the index, and renders
//! with [`super::html`]; anything not found is the "not found" page, a ledger that cannot be asked
//! is a 503 page saying so.

use super::html::{self, addr_link, block_link, deal_link, esc, facts, rlc, status_badge, table, task_link, time};
use super::{Explorer, TASKS_PER_PAGE, not_found};
use axum::http::StatusCode;
use axum::response::Response;
use veil_core::state::task_id;
use veil_core::tx::AnyOrder;
use veil_core::{Address, B256, U256};
use veil_sdk::SdkError;

fn unavailable(e: &SdkError) -> Response {
    let body = format!(
        "<h1>Ledger unavailable</h1><p>The explorer could not ask the ledger: {}</p><p>Try again in a moment.</p>",
        esc(&e.to_string())
    );
    super::html(StatusCode::SERVICE_UNAVAILABLE, "Ledger unavailable", &body)
}

/// A lookup's error: "not found" for unknown ids, 503 for a ledger that did not answer.
fn missing(what: &str, id: &str, e: &SdkError) -> Response {
    if e.is_transient() { unavailable(e) } else { not_found(what, id) }
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub async fn home(x: &Explorer) -> Response {
    let sections = home_sections(x).await;
    let body = format!(
        r#"<h1>Veil explorer</h1><p class="lead">Deals, tasks, data and money on {}.</p>
<div id="live" data-fragment="/explorer/fragments/home" aria-live="polite">{sections}</div>"#,
        esc(&x.ledger.describe())
    );
    super::html(StatusCode::OK, "Home", &body)
}

/// The live part of the home page (also served alone, for the page's script to refresh).
pub async fn home_sections(x: &Explorer) -> String {
    let i = x.index.read().unwrap_or_else(|p| p.into_inner());
    let minute = now() / 60;
    let tp = i.throughput(minute, 30);
    let tasks: Vec<f64> = tp.iter().map(|(_, m)| m.tasks as f64).collect();
    let paid: Vec<f64> = tp.iter().map(|(_, m)| rlc_f64(m.paid)).collect();
    let charts = format!(
        r#"<section class="charts" aria-label="Throughput over the last 30 minutes">{}{}</section>"#,
        html::bars("Tasks completed, last 30 min:", &tasks, "tasks"),
        html::bars("RLC paid, last 30 min:", &paid, "RLC")
    );
    let blocks: Vec<Vec<String>> = i
        .blocks
        .iter()
        .rev()
        .take(10)
        .map(|b| vec![block_link(b.number), time(b.timestamp), b.events.to_string()])
        .collect();
    let deals: Vec<Vec<String>> = i
        .recent_deals
        .iter()
        .rev()
        .map(|d| {
            let deal = i.deals.get(&d.dealid);
            vec![
                deal_link(&d.dealid),
                deal.map_or(String::new(), |d| addr_link("apps", &d.app.pointer)),
                deal.map_or(String::new(), |d| addr_link("datasets", &d.dataset.pointer)),
                d.volume.to_string(),
                time(d.timestamp),
            ]
        })
        .collect();
    let tasks: Vec<Vec<String>> = i
        .recent_tasks
        .iter()
        .rev()
        .map(|t| {
            let row = i.tasks.get(t).cloned().unwrap_or_default();
            let last = row.steps.last().map_or(String::new(), |s| time(s.timestamp));
            vec![task_link(t), status_badge(row.status()), row.dealid.map_or(String::new(), |d| deal_link(&d)), last]
        })
        .collect();
    format!(
        r#"<p class="head">Head block {} · {} events indexed</p>{charts}<div class="grid">{}{}</div>{}"#,
        block_link(i.head),
        i.events_seen,
        table("Latest tasks", &["Task", "Status", "Deal", "Last change"], &tasks, "No task yet."),
        table("Latest deals", &["Deal", "App", "Dataset", "Volume", "Matched"], &deals, "No deal yet."),
        table("Latest blocks", &["Block", "Time", "Events"], &blocks, "No block with events yet.")
    )
}

fn rlc_f64(n: U256) -> f64 {
    n.to_string().parse::<f64>().unwrap_or(0.0) / 1e9
}

pub async fn deal(x: &Explorer, id: &B256, page: u64) -> Response {
    let d = match x.ledger.deal(id).await {
        Ok(d) => d.deal,
        Err(e) => return missing("deal", &id.to_string(), &e),
    };
    let size = d.bot_size.saturating_to::<u64>();
    let pages = size.div_ceil(TASKS_PER_PAGE).max(1);
    let page = page.min(pages);
    let first = (page - 1) * TASKS_PER_PAGE;
    let mut rows = Vec::new();
    for k in first..(first + TASKS_PER_PAGE).min(size) {
        let idx = d.bot_first.saturating_add(U256::from(k));
        let tid = task_id(id, idx);
        let status = match x.ledger.task(&tid).await {
            Ok(t) => status_badge(&t.task.status.to_string()),
            Err(e) if e.is_transient() => return unavailable(&e),
            Err(_) => r#"<span class="muted">not started</span>"#.to_string(),
        };
        rows.push(vec![idx.to_string(), task_link(&tid), status]);
    }
    let completed = x.index.read().unwrap_or_else(|p| p.into_inner()).completed.get(id).copied().unwrap_or(0);
    let price = d.task_price().map_or_else(|_| "overflow".into(), |p| rlc(p.0));
    let tee = veil_core::tag::has_tee(&d.tag);
    let info = facts(&[
        ("Deal id", format!("<code>{id}</code>")),
        ("Requester", addr_link("accounts", &d.requester)),
        ("Beneficiary", addr_link("accounts", &d.beneficiary)),
        ("App", format!("{} · {}", addr_link("apps", &d.app.pointer), rlc(d.app.price.0))),
        ("Dataset", format!("{} · {}", addr_link("datasets", &d.dataset.pointer), rlc(d.dataset.price.0))),
        ("Workerpool", format!("{} · {}", addr_link("workerpools", &d.workerpool.pointer), rlc(d.workerpool.price.0))),
        ("Price per task", price),
        ("Volume", format!("{size} tasks ({completed} completed)")),
        ("Trust · category", format!("{} · {}", d.trust, d.category)),
        ("Tag", format!("<code>{}</code>{}", d.tag, if tee { " (TEE)" } else { "" })),
        ("Started", time(d.start_time)),
        ("Params", format!("<code>{}</code>", esc(&html::clip(&d.params, 300)))),
    ]);
    let orders = facts(&[
        ("App order", format!("<code>{}</code>", d.app_order_hash)),
        ("Dataset order", format!("<code>{}</code>", d.dataset_order_hash)),
        ("Workerpool order", format!("<code>{}</code>", d.workerpool_order_hash)),
        ("Request order", format!("<code>{}</code>", d.request_order_hash)),
    ]);
    let nav = pager(&format!("/explorer/deals/{id}"), page, pages);
    let body = format!(
        r#"<h1>Deal <span class="mono">{}</span></h1>{info}<section><h2>Orders</h2>{orders}</section>{}{nav}"#,
        html::short_hash(id),
        table(&format!("Tasks (page {page} of {pages})"), &["Index", "Task", "Status"], &rows, "No task.")
    );
    super::html(StatusCode::OK, "Deal", &body)
}

fn pager(base: &str, page: u64, pages: u64) -> String {
    if pages <= 1 {
        return String::new();
    }
    let mut out = String::from(r#"<nav class="pager" aria-label="Pages">"#);
    if page > 1 {
        out.push_str(&format!(r#"<a href="{base}?page={}" rel="prev">Previous</a> "#, page - 1));
    }
    if page < pages {
        out.push_str(&format!(r#"<a href="{base}?page={}" rel="next">Next</a>"#, page + 1));
    }
    out.push_str("</nav>");
    out
}

pub async fn task(x: &Explorer, id: &B256) -> Response {
    let t = match x.ledger.task(id).await {
        Ok(t) => t.task,
        Err(e) => return missing("task", &id.to_string(), &e),
    };
    let d = match x.ledger.deal(&t.dealid).await {
        Ok(d) => Some(d.deal),
        Err(e) if e.is_transient() => return unavailable(&e),
        Err(_) => None,
    };
    let status = t.status.to_string();
    let steps = x.index.read().unwrap_or_else(|p| p.into_inner()).tasks.get(id).cloned().unwrap_or_default();
    let timeline: Vec<Vec<String>> = steps
        .steps
        .iter()
        .map(|s| {
            vec![
                status_badge(s.status),
                time(s.timestamp),
                block_link(s.block),
                s.worker.map_or(String::new(), |w| addr_link("accounts", &w)),
            ]
        })
        .collect();
    let pool = d.as_ref().map(|d| d.workerpool.pointer).unwrap_or_default();
    let replicates = replicates(x, &pool, id).await;
    let tee = d.as_ref().is_some_and(|d| veil_core::tag::has_tee(&d.tag));
    let badge = enclave_badge(tee, &replicates);
    let rep_rows: Vec<Vec<String>> = replicates
        .as_ref()
        .map(|r| {
            r.replicates
                .iter()
                .map(|p| {
                    vec![
                        addr_link("accounts", &p.worker),
                        esc(&p.status),
                        p.attempts.to_string(),
                        p.enclave.as_deref().map(esc).unwrap_or_default(),
                        p.cause.as_deref().map(|c| esc(&html::clip(c, 400))).unwrap_or_default(),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    let rep_note = match &replicates {
        Some(_) => "No worker has this task.",
        None => "The workerpool's scheduler did not announce an API, or did not answer: replicates unknown.",
    };
    let results = String::from_utf8_lossy(&t.results).to_string();
    let info = facts(&[
        ("Task id", format!("<code>{id}</code>")),
        ("Status", status_badge(&status)),
        ("Deal", format!("{} · index {}", deal_link(&t.dealid), t.idx)),
        (
            "App · dataset · workerpool",
            d.as_ref().map_or(String::new(), |d| {
                format!(
                    "{} · {} · {}",
                    addr_link("apps", &d.app.pointer),
                    addr_link("datasets", &d.dataset.pointer),
                    addr_link("workerpools", &d.workerpool.pointer)
                )
            }),
        ),
        ("Contribution deadline", time(t.contribution_deadline)),
        ("Final deadline", time(t.final_deadline)),
        ("Contributors", t.contributors.len().to_string()),
        ("Consensus", format!("<code>{}</code>", t.consensus_value)),
        ("Result digest", format!("<code>{}</code>", t.result_digest)),
        ("Result", result_cell(&results)),
    ]);
    let body = format!(
        r#"<h1>Task <span class="mono">{}</span> {}</h1>{badge}{info}{}{}"#,
        html::short_hash(id),
        status_badge(&status),
        table("Timeline", &["Status", "Time", "Block", "Worker"], &timeline, "No event indexed for this task yet."),
        table(
            "Replicates (from the scheduler)",
            &["Worker", "Status", "Attempts", "Enclave", "Cause"],
            &rep_rows,
            rep_note
        )
    );
    super::html(StatusCode::OK, "Task", &body)
}

/// The result's location: iExec's `{"storage","location","url"}` JSON or any text, escaped; an
/// http(s) URL becomes a link.
fn result_cell(results: &str) -> String {
    if results.is_empty() {
        return r#"<span class="muted">none yet</span>"#.into();
    }
    let v: serde_json::Value = serde_json::from_str(results).unwrap_or_default();
    let url = v["url"].as_str().or(v["location"].as_str()).unwrap_or(results);
    let shown = esc(&html::clip(results, 300));
    if url.starts_with("http://") || url.starts_with("https://") {
        format!(r#"<a href="{}" rel="nofollow noopener"><code>{shown}</code></a>"#, esc(url))
    } else {
        format!("<code>{shown}</code>")
    }
}

/// What the explorer reads of a scheduler's `GET /tasks/{id}` (veil-pool's `TaskReplicates`).
#[derive(serde::Deserialize)]
struct Replicates {
    replicates: Vec<Replicate>,
}

#[derive(serde::Deserialize)]
struct Replicate {
    worker: Address,
    status: String,
    attempts: u32,
    cause: Option<String>,
    enclave: Option<String>,
}

/// What the pool's scheduler says of the task's replicates (None: no API announced or no answer).
async fn replicates(x: &Explorer, pool: &Address, id: &B256) -> Option<Replicates> {
    let api = x.host.pool_api(pool)?;
    scheduler_json(x, &format!("{api}/tasks/{id}")).await
}

/// Most bytes read from a scheduler's answer (its URL is whatever the pool's owner announced).
const MAX_SCHEDULER_ANSWER: usize = 1 << 20;

/// A scheduler's JSON answer at `url`: `None` when it fails, is not JSON of that shape, or is
/// larger than [`MAX_SCHEDULER_ANSWER`] (read no further).
async fn scheduler_json<T: serde::de::DeserializeOwned>(x: &Explorer, url: &str) -> Option<T> {
    let mut r = x.http.get(url).send().await.ok()?;
    if !r.status().is_success() || r.content_length().is_some_and(|n| n > MAX_SCHEDULER_ANSWER as u64) {
        return None;
    }
    let mut body = Vec::new();
    while let Some(chunk) = r.chunk().await.ok()? {
        if body.len() + chunk.len() > MAX_SCHEDULER_ANSWER {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).ok()
}

/// The enclave a TEE task ran in, loudly when it was simulated.
fn enclave_badge(tee: bool, r: &Option<Replicates>) -> String {
    if !tee {
        return String::new();
    }
    let platforms: Vec<String> = r.iter().flat_map(|r| r.replicates.iter().filter_map(|p| p.enclave.clone())).collect();
    if platforms.iter().any(|p| p == "sim") {
        return r#"<p class="badge sim" role="note"><strong>Simulated enclave: no hardware protection.</strong> This confidential task ran on Veil's <code>sim</code> platform: its data and secrets were visible to the worker's host.</p>"#.into();
    }
    match platforms.first() {
        Some(p) => format!(
            r#"<p class="badge hw" role="note">Enclave: <strong>{}</strong> (evidence verified by the SMS)</p>"#,
            esc(p)
        ),
        None => r#"<p class="badge" role="note">Confidential task: enclave platform not reported yet.</p>"#.into(),
    }
}

/// Where the search for an address leads: the asset's page, or the account's.
pub async fn address_page(x: &Explorer, a: &Address) -> String {
    if x.ledger.app(a).await.is_ok() {
        format!("/explorer/apps/{a:?}")
    } else if x.ledger.dataset(a).await.is_ok() {
        format!("/explorer/datasets/{a:?}")
    } else if x.ledger.workerpool(a).await.is_ok() {
        format!("/explorer/workerpools/{a:?}")
    } else {
        format!("/explorer/accounts/{a:?}")
    }
}

/// The parts every asset page has: registration, its orders in the orderbook, deals that used it.
fn asset_sections(x: &Explorer, a: &Address) -> (String, String, u64) {
    let i = x.index.read().unwrap_or_else(|p| p.into_inner());
    let registered =
        i.registered.get(a).map_or("<span class=\"muted\">before this explorer started</span>".into(), |(b, t)| {
            format!("{} · {}", block_link(*b), time(*t))
        });
    let deals: Vec<Vec<String>> = i
        .deals_of
        .get(a)
        .map(|ds| {
            ds.iter()
                .rev()
                .take(50)
                .map(|id| {
                    let d = i.deals.get(id);
                    vec![
                        deal_link(id),
                        d.map_or(String::new(), |d| addr_link("apps", &d.app.pointer)),
                        d.map_or(String::new(), |d| addr_link("accounts", &d.requester)),
                        d.map_or(String::new(), |d| d.bot_size.to_string()),
                        i.completed.get(id).copied().unwrap_or(0).to_string(),
                        d.map_or(String::new(), |d| time(d.start_time)),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    let used = i.deals_of.get(a).map_or(0, |d| d.len() as u64);
    drop(i);
    let deals = table(
        "Deals that used it",
        &["Deal", "App", "Requester", "Volume", "Completed", "Started"],
        &deals,
        "No deal yet.",
    );
    (registered, deals, used)
}

fn deals_count(n: u64) -> String {
    if n == 1 { "1 deal".into() } else { format!("{n} deals") }
}

fn orders_table(x: &Explorer, a: &Address, remaining_label: &str) -> String {
    let rows: Vec<Vec<String>> = x
        .host
        .orders_of(a)
        .iter()
        .map(|e| {
            let (price, volume, restrictions) = match &e.order {
                AnyOrder::App(o) => (
                    o.appprice,
                    o.volume,
                    restrict(&[
                        ("dataset", o.datasetrestrict),
                        ("workerpool", o.workerpoolrestrict),
                        ("requester", o.requesterrestrict),
                    ]),
                ),
                AnyOrder::Dataset(o) => (
                    o.datasetprice,
                    o.volume,
                    restrict(&[
                        ("app", o.apprestrict),
                        ("workerpool", o.workerpoolrestrict),
                        ("requester", o.requesterrestrict),
                    ]),
                ),
                AnyOrder::Workerpool(o) => (
                    o.workerpoolprice,
                    o.volume,
                    restrict(&[
                        ("app", o.apprestrict),
                        ("dataset", o.datasetrestrict),
                        ("requester", o.requesterrestrict),
                    ]),
                ),
                AnyOrder::Request(_) => (U256::ZERO, U256::ZERO, String::new()),
            };
            vec![
                format!(r#"<code title="{}">{}</code>"#, e.order_hash, html::short_hash(&e.order_hash)),
                rlc(price),
                restrictions,
                format!("{} of {volume}", e.remaining),
            ]
        })
        .collect();
    table("Orders in the orderbook", &["Order", "Price", "Granted to", remaining_label], &rows, "No order published.")
}

fn restrict(parts: &[(&str, Address)]) -> String {
    let named: Vec<String> = parts
        .iter()
        .filter(|(_, a)| *a != Address::ZERO)
        .map(|(k, a)| {
            let kind = if *k == "requester" { "accounts".to_string() } else { format!("{k}s") };
            format!("{k} {}", addr_link(&kind, a))
        })
        .collect();
    if named.is_empty() { "anyone".into() } else { named.join(", ") }
}

pub async fn app(x: &Explorer, a: &Address) -> Response {
    let app = match x.ledger.app(a).await {
        Ok(v) => v.asset,
        Err(e) => return missing("app", &format!("{a:?}"), &e),
    };
    let (registered, deals, used) = asset_sections(x, a);
    let earned = x.index.read().unwrap_or_else(|p| p.into_inner()).earned.get(a).copied().unwrap_or_default();
    let info = facts(&[
        ("Address", format!("<code>{a:?}</code>")),
        ("Name", esc(&app.name)),
        ("Owner", addr_link("accounts", &app.owner)),
        ("Type", esc(&app.app_type)),
        ("Location", format!("<code>{}</code>", esc(&html::clip(&app.multiaddr, 200)))),
        ("Checksum", format!("<code>{}</code>", app.checksum)),
        ("Registered", registered),
        ("Used by", deals_count(used)),
        ("Earned its owner", rlc(earned)),
    ]);
    let body = format!("<h1>App {}</h1>{info}{}{deals}", esc(&app.name), orders_table(x, a, "Remaining"));
    super::html(StatusCode::OK, "App", &body)
}

pub async fn dataset(x: &Explorer, a: &Address) -> Response {
    let ds = match x.ledger.dataset(a).await {
        Ok(v) => v.asset,
        Err(e) => return missing("dataset", &format!("{a:?}"), &e),
    };
    let (registered, deals, used) = asset_sections(x, a);
    let earned = x.index.read().unwrap_or_else(|p| p.into_inner()).earned.get(a).copied().unwrap_or_default();
    let remaining: U256 = x.host.orders_of(a).iter().map(|e| e.remaining).fold(U256::ZERO, |s, r| s.saturating_add(r));
    let info = facts(&[
        ("Address", format!("<code>{a:?}</code>")),
        ("Name", esc(&ds.name)),
        ("Owner", addr_link("accounts", &ds.owner)),
        ("Location", format!("<code>{}</code>", esc(&html::clip(&ds.multiaddr, 200)))),
        ("Checksum", format!("<code>{}</code>", ds.checksum)),
        ("Registered", registered),
        ("Remaining uses", format!(r#"<strong id="remaining-uses">{remaining}</strong> (over its published orders)"#)),
        ("Used by", deals_count(used)),
        ("Earned its owner", format!(r#"<strong id="earned">{}</strong>"#, rlc(earned))),
    ]);
    let body = format!("<h1>Dataset {}</h1>{info}{}{deals}", esc(&ds.name), orders_table(x, a, "Remaining uses"));
    super::html(StatusCode::OK, "Dataset", &body)
}

pub async fn workerpool(x: &Explorer, a: &Address) -> Response {
    let wp = match x.ledger.workerpool(a).await {
        Ok(v) => v.asset,
        Err(e) => return missing("workerpool", &format!("{a:?}"), &e),
    };
    let (registered, deals, used) = asset_sections(x, a);
    let api = x.host.pool_api(a);
    let workers = match &api {
        Some(url) => workers(x, url).await,
        None => r#"<section><h2>Workers</h2><p class="muted">Its scheduler has not announced an API to this node.</p></section>"#.into(),
    };
    let info = facts(&[
        ("Address", format!("<code>{a:?}</code>")),
        ("Description", esc(&wp.description)),
        ("Owner", addr_link("accounts", &wp.owner)),
        ("Worker stake ratio", format!("{} %", wp.worker_stake_ratio)),
        ("Scheduler reward ratio", format!("{} %", wp.scheduler_reward_ratio)),
        (
            "Scheduler API",
            api.as_deref()
                .map_or("<span class=\"muted\">not announced</span>".into(), |u| format!("<code>{}</code>", esc(u))),
        ),
        ("Registered", registered),
        ("Used by", deals_count(used)),
    ]);
    let body = format!(
        "<h1>Workerpool {}</h1>{info}{workers}{}{deals}",
        esc(&html::clip(&wp.description, 80)),
        orders_table(x, a, "Remaining")
    );
    super::html(StatusCode::OK, "Workerpool", &body)
}

/// The pool's workers, as its scheduler lists them (`GET /workers`).
async fn workers(x: &Explorer, api: &str) -> String {
    let list: Option<serde_json::Value> = scheduler_json(x, &format!("{api}/workers")).await;
    let Some(list) = list else {
        return r#"<section><h2>Workers</h2><p class="muted">The scheduler did not answer.</p></section>"#.into();
    };
    let rows: Vec<Vec<String>> = list["workers"]
        .as_array()
        .map(|ws| {
            ws.iter()
                .take(200)
                .map(|w| {
                    let addr = w["worker"].as_str().and_then(|a| a.parse::<Address>().ok()).unwrap_or_default();
                    vec![addr_link("accounts", &addr), esc(w["status"].as_str().unwrap_or(""))]
                })
                .collect()
        })
        .unwrap_or_default();
    table("Workers (from the scheduler)", &["Worker", "Status"], &rows, "No worker registered.")
}

pub async fn account(x: &Explorer, a: &Address, page: u64) -> Response {
    let acc = match x.ledger.account(a).await {
        Ok(v) => v.account,
        Err(e) => return missing("account", &format!("{a:?}"), &e),
    };
    let moves = x.index.read().unwrap_or_else(|p| p.into_inner()).movements.get(a).cloned().unwrap_or_default();
    let per = 50u64;
    let pages = (moves.len() as u64).div_ceil(per).max(1);
    let page = page.min(pages);
    let rows: Vec<Vec<String>> = moves
        .iter()
        .rev()
        .skip(((page - 1) * per) as usize)
        .take(per as usize)
        .map(|m| {
            vec![
                time(m.timestamp),
                block_link(m.block),
                esc(m.kind),
                rlc(m.amount),
                m.taskid.map(|t| task_link(&t)).or(m.other.map(|o| addr_link("accounts", &o))).unwrap_or_default(),
            ]
        })
        .collect();
    let info = facts(&[
        ("Address", format!("<code>{a:?}</code>")),
        ("Escrow balance", format!(r#"<strong id="balance">{}</strong>"#, rlc(acc.balance.0))),
        ("Locked", rlc(acc.locked.0)),
        ("Wallet (outside the escrow)", rlc(acc.wallet.0)),
        ("Transactions sent", acc.nonce.to_string()),
    ]);
    let body = format!(
        "<h1>Account <span class=\"mono\">{}</span></h1>{info}{}{}",
        html::short_addr(a),
        table(
            &format!("History (page {page} of {pages})"),
            &["Time", "Block", "What", "Amount", "About"],
            &rows,
            "No movement indexed."
        ),
        pager(&format!("/explorer/accounts/{a:?}"), page, pages)
    );
    super::html(StatusCode::OK, "Account", &body)
}

pub async fn block(x: &Explorer, n: u64) -> Response {
    let (head, kept) = {
        let i = x.index.read().unwrap_or_else(|p| p.into_inner());
        (i.head, i.block_events.iter().find(|b| b.block == n).cloned())
    };
    if n > head {
        return not_found("block", &n.to_string());
    }
    let events: Vec<Vec<String>> = kept
        .iter()
        .flat_map(|b| b.events.iter())
        .take(1000)
        .map(|e| {
            let json = serde_json::to_value(e).unwrap_or_default();
            let (kind, fields) = match json.as_object().and_then(|o| o.iter().next()) {
                Some((k, v)) => (k.clone(), v.to_string()),
                None => (json.to_string(), String::new()),
            };
            vec![esc(&kind), format!("<code>{}</code>", esc(&html::clip(&fields, 400)))]
        })
        .collect();
    let empty = if kept.is_some() || x.index.read().unwrap_or_else(|p| p.into_inner()).keeps_block(n) {
        "No event in this block."
    } else {
        "This block is older than the blocks the explorer keeps in memory: ask the ledger's API for it."
    };
    let nav = format!(
        r#"<nav class="pager">{}{}</nav>"#,
        if n > 0 {
            format!(r#"<a href="/explorer/blocks/{}" rel="prev">Previous block</a> "#, n - 1)
        } else {
            String::new()
        },
        if n < head {
            format!(r#"<a href="/explorer/blocks/{}" rel="next">Next block</a>"#, n + 1)
        } else {
            String::new()
        }
    );
    let time = kept.as_ref().map_or(String::new(), |b| format!("<p>{}</p>", time(b.timestamp)));
    let body = format!("<h1>Block #{n}</h1>{time}{}{nav}", table("Events", &["Event", "Fields"], &events, empty));
    super::html(StatusCode::OK, "Block", &body)
}

pub async fn transaction(x: &Explorer, h: &B256) -> Response {
    let r = match x.ledger.transaction(h).await {
        Ok(Some(r)) => r,
        Ok(None) => return not_found("transaction", &h.to_string()),
        Err(e) => return unavailable(&e),
    };
    let events: Vec<Vec<String>> = r
        .events
        .iter()
        .take(1000)
        .map(|e| vec![format!("<code>{}</code>", esc(&html::clip(&serde_json::to_string(e).unwrap_or_default(), 400)))])
        .collect();
    let info = facts(&[
        ("Hash", format!("<code>{h}</code>")),
        ("Block", block_link(r.block)),
        ("Position", r.index.to_string()),
    ]);
    let body = format!("<h1>Transaction</h1>{info}{}", table("Events", &["Event"], &events, "No event."));
    super::html(StatusCode::OK, "Transaction", &body)
}
