//! Encrypted results as a beneficiary downloads them (`veil result get --key`, `result decrypt`).
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn key() -> &'static str {
    static KEY: OnceLock<String> = OnceLock::new();
    KEY.get_or_init(|| veil_protect::result::generate_keypair(2048).expect("key").0)
}

fuzz_target!(|data: &[u8]| {
    let _ = veil_protect::result::decrypt_result(data, key());
});
