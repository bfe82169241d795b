//! The development genesis: deterministic funded accounts (like anvil's) and short categories.

use veil_core::eip712::veil_dev_domain;
use veil_core::state::Genesis;
pub use veil_core::state::dev_categories;
use veil_core::{Nrlc, PrivateKey};

pub const DEV_ACCOUNTS: usize = 10;
pub const DEV_FUNDS_RLC: u64 = 1_000_000;

/// Development account `i`: the key is `keccak256("veil dev account {i}")`. Public knowledge: never
/// hold value with these keys.
pub fn dev_key(i: usize) -> PrivateKey {
    PrivateKey::from_seed(&format!("veil dev account {i}"))
}

pub fn dev_genesis() -> Genesis {
    Genesis {
        domain: veil_dev_domain(),
        admin: dev_key(0).address(),
        categories: dev_categories(),
        allocations: (0..DEV_ACCOUNTS).map(|i| (dev_key(i).address(), Nrlc::rlc(DEV_FUNDS_RLC))).collect(),
    }
}
