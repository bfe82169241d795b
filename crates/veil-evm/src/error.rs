//! What can go wrong talking to an EVM chain, each saying what to do.

use alloy::primitives::B256;
use alloy::transports::{RpcError, TransportErrorKind};

#[derive(Debug, Clone, thiserror::Error)]
pub enum EvmError {
    #[error(
        "cannot reach the EVM RPC at {url}: {reason} (is the chain running? `veil evm anvil` starts one; set --rpc or VEIL_RPC)"
    )]
    Unreachable { url: String, reason: String },
    #[error("PoCo refused {what}: {reason}")]
    Reverted { what: String, reason: String },
    #[error("the RPC at {url} refused {what}: {reason}")]
    Refused { url: String, what: String, reason: String },
    #[error("{what} was sent as {tx} but not mined within 120 s: check the chain, then the transaction")]
    Timeout { what: String, tx: B256 },
    #[error(
        "{what} was sent as {tx}, then dropped by the node, its nonce used by another transaction of the same account (signed again {} times): send it again",
        crate::rpc::MAX_RESIGN
    )]
    Dropped { what: String, tx: B256 },
    #[error("{0}")]
    Setup(String),
    #[error("iExec's PoCo package: {0}")]
    Package(String),
    #[error("unexpected answer from PoCo: {0}")]
    Decode(String),
}

impl EvmError {
    /// The node refused a transaction because its nonce was already used (or is being used).
    pub fn is_nonce_conflict(&self) -> bool {
        match self {
            EvmError::Refused { reason, .. } => {
                let r = reason.to_ascii_lowercase();
                r.contains("nonce too low")
                    || r.contains("already known")
                    || r.contains("already imported")
                    || r.contains("replacement transaction")
            }
            _ => false,
        }
    }

    pub fn unreachable(url: &str, e: impl std::error::Error) -> EvmError {
        // The innermost causes say what really failed (refused, certificate, DNS).
        let mut reason = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            let text = s.to_string();
            if !reason.contains(&text) {
                reason = format!("{reason}: {text}");
            }
            source = s.source();
        }
        EvmError::Unreachable { url: url.to_string(), reason }
    }

    /// Sorts an RPC error: a revert (with PoCo's reason decoded), a refusal by the node (nonce,
    /// funds), or an unreachable endpoint.
    pub fn from_rpc(url: &str, what: &str, e: RpcError<TransportErrorKind>) -> EvmError {
        match e {
            RpcError::ErrorResp(payload) => {
                if let Some(data) = payload.as_revert_data() {
                    return EvmError::Reverted { what: what.to_string(), reason: crate::rpc::decode_revert(&data) };
                }
                let msg = payload.message.to_string();
                let lower = msg.to_ascii_lowercase();
                if lower.contains("revert") || lower.contains("evm error") {
                    // An old-style assert (RLC's invalid opcode) or a revert the node did not decode.
                    return EvmError::Reverted {
                        what: what.to_string(),
                        reason: format!("{} ({msg})", crate::rpc::NO_REASON),
                    };
                }
                let hint = if lower.contains("insufficient funds") {
                    " (the sender has no ETH for gas: fund it first)"
                } else if lower.contains("nonce") {
                    " (another program sent from this account: retry)"
                } else {
                    ""
                };
                EvmError::Refused { url: url.to_string(), what: what.to_string(), reason: format!("{msg}{hint}") }
            }
            other => EvmError::unreachable(url, other),
        }
    }
}
