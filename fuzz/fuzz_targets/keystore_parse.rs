//! Keystore v3 files (`veil wallet show|import`, `--wallet`): KDF parameters are bounded first.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = veil_wallet::claimed_address(text);
    let _ = veil_wallet::decrypt(text, b"password");
});
