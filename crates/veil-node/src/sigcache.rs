//! A bounded memo of recovered order signers. Recovery is a pure function of (hash, signature), so a
//! memo cannot change a result; it saves the recoveries of orders that recur in many matches.

use std::collections::HashMap;
use std::sync::Mutex;
use veil_core::crypto::{self, SignatureError};
use veil_core::{Address, B256, Signature};

/// Entries kept before the memo starts over.
pub const CAPACITY: usize = 65_536;

#[derive(Default)]
pub struct SigCache {
    map: Mutex<HashMap<(B256, Signature), Address>>,
}

impl SigCache {
    pub fn recover(&self, hash: &B256, sig: &Signature) -> Result<Address, SignatureError> {
        let key = (*hash, *sig);
        if let Some(a) = self.map.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(*a);
        }
        let a = crypto::recover(hash, sig)?;
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= CAPACITY {
            m.clear();
        }
        m.insert(key, a);
        Ok(a)
    }
}
