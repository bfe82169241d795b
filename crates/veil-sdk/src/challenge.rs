//! iExec's EIP-712 challenge login, as its market API ("iExec Gateway") and its workerpool API
//! ("iExec Core") use it: the service hands out `Challenge(string challenge)` typed data under
//! `EIP712Domain(name, version "1", chainId)`, the client signs it and sends
//! `authorization: <typed hash>_<signature>_<address>`, and the service accepts each challenge once,
//! within [`CHALLENGE_TTL`], from the address it was made for.
//!
//! Pure bookkeeping: the caller supplies the random challenge and reads the clock through `Instant`.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use veil_core::eip712::{Encoder, typed_hash_with};
use veil_core::{Address, B256, Signature};

/// How long a challenge may wait for its signature.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(300);
/// How many challenges may wait at once.
pub const MAX_CHALLENGES: usize = 10_000;

/// Why an authorization was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("this call needs an authorization header (a signed challenge: GET {0} first)")]
    Missing(&'static str),
    #[error("the authorization header is <challenge hash>_<signature>_<address>")]
    Malformed,
    #[error("the authorization's signature is invalid")]
    BadSignature,
    #[error("the authorization is not signed by the address it names")]
    WrongSigner,
    #[error("unknown, expired or already used challenge: get a new one")]
    UnknownChallenge,
    #[error("too many open challenges: try again later")]
    Busy,
}

/// The challenges a service handed out and that were not used yet.
pub struct Challenges {
    domain_name: &'static str,
    chain_id: u64,
    open: Mutex<HashMap<B256, (Address, Instant)>>,
}

impl Challenges {
    pub fn new(domain_name: &'static str, chain_id: u64) -> Challenges {
        Challenges { domain_name, chain_id, open: Mutex::new(HashMap::new()) }
    }

    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The EIP-712 hash of `challenge` under this service's domain: what a client signs.
    pub fn typed_hash(&self, challenge: &str) -> B256 {
        let domain = Encoder::new("EIP712Domain(string name,string version,uint256 chainId)")
            .string(self.domain_name)
            .string("1")
            .uint(veil_core::U256::from(self.chain_id))
            .finish();
        typed_hash_with(&domain, &Encoder::new("Challenge(string challenge)").string(challenge).finish())
    }

    /// A new challenge for `address` made of `random`, as EIP-712 typed data.
    pub fn issue(&self, address: Address, random: [u8; 32]) -> Result<Value, AuthError> {
        let challenge = format!("0x{}", hex::encode(random));
        let hash = self.typed_hash(&challenge);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|_, (_, at)| at.elapsed() < CHALLENGE_TTL);
        if open.len() >= MAX_CHALLENGES {
            return Err(AuthError::Busy);
        }
        open.insert(hash, (address, Instant::now()));
        Ok(json!({
            "types": {
                "EIP712Domain": [
                    { "name": "name", "type": "string" },
                    { "name": "version", "type": "string" },
                    { "name": "chainId", "type": "uint256" },
                ],
                "Challenge": [{ "name": "challenge", "type": "string" }],
            },
            "domain": { "name": self.domain_name, "version": "1", "chainId": self.chain_id.to_string() },
            "primaryType": "Challenge",
            "message": { "challenge": challenge },
        }))
    }

    /// The address an authorization header proves, spending its challenge. `challenge_path` names
    /// where a client gets one, for the error.
    pub fn redeem(&self, header: Option<&str>, challenge_path: &'static str) -> Result<Address, AuthError> {
        let value = header.ok_or(AuthError::Missing(challenge_path))?;
        let parts: Vec<&str> = value.split('_').collect();
        let [hash, sign, address] = parts.as_slice() else { return Err(AuthError::Malformed) };
        let (Ok(hash), Ok(address)) = (hash.parse::<B256>(), address.parse::<Address>()) else {
            return Err(AuthError::Malformed);
        };
        let sign = Signature::parse_hex(sign).map_err(|_| AuthError::Malformed)?;
        let signer = veil_core::crypto::recover(&hash, &sign).map_err(|_| AuthError::BadSignature)?;
        if signer != address {
            return Err(AuthError::WrongSigner);
        }
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        // Only its own address spends a challenge: someone else's attempt leaves it usable.
        match open.get(&hash) {
            Some((a, at)) if *a == address && at.elapsed() < CHALLENGE_TTL => {
                open.remove(&hash);
                Ok(address)
            }
            _ => Err(AuthError::UnknownChallenge),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use veil_core::PrivateKey;

    fn signed(c: &Challenges, key: &PrivateKey, typed: &Value) -> String {
        let hash = c.typed_hash(typed["message"]["challenge"].as_str().unwrap());
        let sign = key.sign_hash(&hash);
        format!("{hash}_{}_{}", sign.to_hex(), key.address())
    }

    #[test]
    fn a_challenge_is_accepted_once_from_its_address_only() {
        let c = Challenges::new("iExec Core", 31337);
        let (alice, bob) = (PrivateKey::from_bytes(&[7; 32]).unwrap(), PrivateKey::from_bytes(&[8; 32]).unwrap());
        let typed = c.issue(alice.address(), [1; 32]).unwrap();
        let auth = signed(&c, &alice, &typed);
        assert_eq!(c.redeem(Some(&auth), "/challenge"), Ok(alice.address()));
        assert_eq!(c.redeem(Some(&auth), "/challenge"), Err(AuthError::UnknownChallenge), "replayed");
        let typed = c.issue(alice.address(), [2; 32]).unwrap();
        assert_eq!(c.redeem(Some(&signed(&c, &bob, &typed)), "/challenge"), Err(AuthError::UnknownChallenge));
        let lying = signed(&c, &bob, &typed).replace(&bob.address().to_string(), &alice.address().to_string());
        assert_eq!(c.redeem(Some(&lying), "/challenge"), Err(AuthError::WrongSigner));
        assert_eq!(c.redeem(None, "/challenge"), Err(AuthError::Missing("/challenge")));
        assert_eq!(c.redeem(Some("0x00_0x00"), "/challenge"), Err(AuthError::Malformed));
        assert_eq!(c.redeem(Some(&signed(&c, &alice, &typed)), "/challenge"), Ok(alice.address()));
    }

    #[test]
    fn the_typed_hash_is_eip712_of_the_issued_data() {
        // The typed data names exactly the domain and type the hash is made of.
        let c = Challenges::new("iExec Gateway", 1);
        let typed = c.issue(Address::ZERO, [0; 32]).unwrap();
        assert_eq!(typed["domain"]["name"], "iExec Gateway");
        assert_eq!(typed["domain"]["chainId"], "1");
        assert_eq!(typed["message"]["challenge"], format!("0x{}", "00".repeat(32)));
    }
}
