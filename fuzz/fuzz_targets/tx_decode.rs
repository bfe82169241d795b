//! Transactions as the node receives them (`POST /tx`): decode, then recover the signer.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(stx) = veil_core::tx::decode(data) {
        let _ = stx.signer();
    }
});
