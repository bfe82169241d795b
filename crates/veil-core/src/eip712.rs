//! EIP-712 domain separator and typed-data hash, with the PoCo domain (`iExecODB`, `5.0.0`).

use alloy_primitives::{Address, B256, U256, keccak256};
use serde::{Deserialize, Serialize};

pub const DOMAIN_NAME: &str = "iExecODB";
pub const DOMAIN_VERSION: &str = "5.0.0";
const DOMAIN_TYPE: &str = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)";

/// The EIP-712 domain that scopes every order signature to one chain and one PoCo deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Domain {
    pub chain_id: u64,
    pub verifying_contract: Address,
}

impl Domain {
    pub fn separator(&self) -> B256 {
        let mut enc = Encoder::new(DOMAIN_TYPE);
        enc.string(DOMAIN_NAME).string(DOMAIN_VERSION).uint(U256::from(self.chain_id)).address(self.verifying_contract);
        enc.finish()
    }

    /// `keccak256(0x19 0x01 ‖ domainSeparator ‖ structHash)`.
    pub fn typed_hash(&self, struct_hash: &B256) -> B256 {
        typed_hash_with(&self.separator(), struct_hash)
    }
}

pub fn typed_hash_with(separator: &B256, struct_hash: &B256) -> B256 {
    let mut buf = [0u8; 66];
    buf[0] = 0x19;
    buf[1] = 0x01;
    buf[2..34].copy_from_slice(&separator.0);
    buf[34..].copy_from_slice(&struct_hash.0);
    keccak256(buf)
}

/// Builds `keccak256(typeHash ‖ enc(field1) ‖ …)` for a struct of static fields and strings.
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    pub fn new(type_string: &str) -> Self {
        let mut buf = Vec::with_capacity(32 * 16);
        buf.extend_from_slice(&keccak256(type_string.as_bytes()).0);
        Encoder { buf }
    }

    pub fn address(&mut self, a: Address) -> &mut Self {
        self.buf.extend_from_slice(&[0u8; 12]);
        self.buf.extend_from_slice(a.as_slice());
        self
    }

    pub fn uint(&mut self, v: U256) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes::<32>());
        self
    }

    pub fn bytes32(&mut self, b: B256) -> &mut Self {
        self.buf.extend_from_slice(&b.0);
        self
    }

    /// `string` and `bytes` are encoded as the keccak256 of their bytes.
    pub fn string(&mut self, s: &str) -> &mut Self {
        self.buf.extend_from_slice(&keccak256(s.as_bytes()).0);
        self
    }

    pub fn finish(&self) -> B256 {
        keccak256(&self.buf)
    }
}

/// Known PoCo deployments, so `--chain-id` alone picks the right verifying contract.
pub const KNOWN_DEPLOYMENTS: &[(&str, u64, &str)] = &[
    ("bellecour", 134, "0x3eca1B216A7DF1C7689aEb259fFB83ADFB894E7f"),
    ("arbitrum", 42161, "0x098bFCb1E50ebcA0BaA92C12eA0c3F045A1aD9f0"),
    ("arbitrum-sepolia", 421614, "0xB2157BF2fAb286b2A4170E3491Ac39770111Da3E"),
];

/// The chain id of Veil's embedded development ledger.
pub const VEIL_DEV_CHAIN_ID: u64 = 65535;

/// The domain of Veil's embedded development ledger: its verifying contract is
/// `keccak256("veil-poco-hub")[12..]`, an address no real deployment uses.
pub fn veil_dev_domain() -> Domain {
    let h = keccak256(b"veil-poco-hub");
    Domain { chain_id: VEIL_DEV_CHAIN_ID, verifying_contract: Address::from_slice(&h[12..]) }
}

/// The verifying contract of a known deployment, by chain id.
pub fn known_verifying_contract(chain_id: u64) -> Option<Address> {
    KNOWN_DEPLOYMENTS.iter().find(|(_, id, _)| *id == chain_id).and_then(|(_, _, a)| a.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(chain_id: u64, contract: &str, expected: &str) {
        let d = Domain { chain_id, verifying_contract: contract.parse().unwrap() };
        assert_eq!(format!("{:?}", d.separator()), expected, "chain {chain_id}");
    }

    #[test]
    fn iexec_domain_separators() {
        check(
            42161,
            "0x098bFCb1E50ebcA0BaA92C12eA0c3F045A1aD9f0",
            "0x3b211ab198ac0c745a332d34416d88c417c2f06a87bd9f0d2fdd37b242c75402",
        );
        check(
            421614,
            "0xB2157BF2fAb286b2A4170E3491Ac39770111Da3E",
            "0xde6e7a8f1c22386ba73ee5376e4ec7089a2d2b07ebbfce54d4cb386daa34cc92",
        );
    }
}
