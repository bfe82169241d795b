//! Order files and orderbook entries (`veil order sign|publish`, `POST /orders`), each kind.
#![no_main]
use libfuzzer_sys::fuzz_target;
use veil_core::orders::parse_order;
use veil_core::{AppOrder, DatasetOrder, RequestOrder, WorkerpoolOrder};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = parse_order::<AppOrder>(text);
    let _ = parse_order::<DatasetOrder>(text);
    let _ = parse_order::<WorkerpoolOrder>(text);
    let _ = parse_order::<RequestOrder>(text);
    let _ = serde_json::from_str::<veil_core::tx::AnyOrder>(text);
});
