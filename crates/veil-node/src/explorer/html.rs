//! HTML building blocks: escaping (every value from outside goes through [`esc`]), the page layout,
//! links, amounts, times and the small SVG bar charts. No JavaScript is needed to read a page.

use std::fmt::Write;
use veil_core::{Address, B256, U256};

/// Text made safe for HTML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// At most `n` characters of `text`, with an ellipsis when cut.
pub fn clip(text: &str, n: usize) -> String {
    match text.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

pub fn short_hash(h: &B256) -> String {
    let s = format!("{h}");
    format!("{}…{}", &s[..10], &s[s.len() - 6..])
}

pub fn short_addr(a: &Address) -> String {
    let s = format!("{a:?}");
    format!("{}…{}", &s[..8], &s[s.len() - 4..])
}

pub fn deal_link(id: &B256) -> String {
    format!(r#"<a class="mono" href="/explorer/deals/{id}" title="{id}">{}</a>"#, short_hash(id))
}

pub fn task_link(id: &B256) -> String {
    format!(r#"<a class="mono" href="/explorer/tasks/{id}" title="{id}">{}</a>"#, short_hash(id))
}

pub fn block_link(n: u64) -> String {
    format!(r#"<a href="/explorer/blocks/{n}">#{n}</a>"#)
}

/// A link to an address's page: `kind` is `apps`, `datasets`, `workerpools` or `accounts`.
pub fn addr_link(kind: &str, a: &Address) -> String {
    if *a == Address::ZERO {
        return "<span class=\"muted\">none</span>".into();
    }
    format!(r#"<a class="mono" href="/explorer/{kind}/{a:?}" title="{a:?}">{}</a>"#, short_addr(a))
}

/// nRLC as RLC, with up to 9 decimals.
pub fn rlc(n: U256) -> String {
    let whole = n / U256::from(1_000_000_000u64);
    let frac = (n % U256::from(1_000_000_000u64)).to::<u64>();
    if frac == 0 {
        return format!("{whole} RLC");
    }
    let f = format!("{frac:09}");
    format!("{whole}.{} RLC", f.trim_end_matches('0'))
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn time(secs: u64) -> String {
    let iso = veil_sdk::iso8601_ms(secs.saturating_mul(1000));
    format!(r#"<time datetime="{iso}">{} UTC</time>"#, iso.get(..19).unwrap_or(&iso).replace('T', " "))
}

pub fn status_badge(status: &str) -> String {
    let class = match status {
        "COMPLETED" => "ok",
        "FAILED" => "bad",
        _ => "run",
    };
    format!(r#"<span class="status {class}">{}</span>"#, esc(status))
}

/// A bar chart of `values` (oldest first) with an accessible title.
pub fn bars(title: &str, values: &[f64], unit: &str) -> String {
    let max = values.iter().cloned().fold(0.0, f64::max);
    let total: f64 = values.iter().sum();
    let (w, h) = (4.0, 40.0);
    let mut svg = format!(
        r#"<figure class="chart"><figcaption>{} <strong>{}</strong> {}</figcaption><svg role="img" aria-label="{}" viewBox="0 0 {} {h}" preserveAspectRatio="none">"#,
        esc(title),
        fmt_num(total),
        esc(unit),
        esc(title),
        values.len() as f64 * w
    );
    for (i, v) in values.iter().enumerate() {
        let bh = if max > 0.0 { (v / max * (h - 2.0)).max(if *v > 0.0 { 1.0 } else { 0.0 }) } else { 0.0 };
        let _ = write!(svg, r#"<rect x="{}" y="{}" width="{}" height="{bh}"/>"#, i as f64 * w, h - bh, w - 1.0);
    }
    svg.push_str("</svg></figure>");
    svg
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 { format!("{v}") } else { format!("{v:.3}") }
}

/// A whole page: `title` (escaped here), `body` (already HTML).
pub fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{t} · Veil explorer</title><link rel="stylesheet" href="/explorer/assets/style.css"></head>
<body><header><a class="brand" href="/explorer">Veil explorer</a>
<form action="/explorer/search" method="get" role="search"><label for="q" class="sr">Search</label>
<input id="q" name="q" type="search" maxlength="200" placeholder="address, deal, task or transaction" required>
<button type="submit">Search</button></form></header>
<main>{body}</main>
<footer>Served by the Veil node: no CDN, no tracking. <a href="/openapi.json">API</a></footer>
<script src="/explorer/assets/live.js" defer></script></body></html>"#,
        t = esc(title)
    )
}

/// A definition list of (label, HTML value) pairs.
pub fn facts(rows: &[(&str, String)]) -> String {
    let mut out = String::from("<dl class=\"facts\">");
    for (k, v) in rows {
        let _ = write!(out, "<dt>{}</dt><dd>{v}</dd>", esc(k));
    }
    out.push_str("</dl>");
    out
}

/// A table with a caption, header cells and rows of HTML cells; `empty` when there are no rows.
pub fn table(caption: &str, head: &[&str], rows: &[Vec<String>], empty: &str) -> String {
    if rows.is_empty() {
        return format!(r#"<section><h2>{}</h2><p class="muted">{}</p></section>"#, esc(caption), esc(empty));
    }
    let mut out = format!(r#"<section><h2>{}</h2><div class="scroll"><table><thead><tr>"#, esc(caption));
    for h in head {
        let _ = write!(out, r#"<th scope="col">{}</th>"#, esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for r in rows {
        out.push_str("<tr>");
        for c in r {
            let _ = write!(out, "<td>{c}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div></section>");
    out
}
