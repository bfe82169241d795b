//! Enclave evidence as the SMS receives it (`POST /sms/sessions`): parse, then verify (dev mode).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = serde_json::from_slice::<veil_tee::Evidence>(data) {
        let _ = e.verify(true);
    }
    let _ = serde_json::from_slice::<veil_tee::SessionRequest>(data);
});
