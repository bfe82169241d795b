//! Appraising SGX and TDX evidence: the quote verifies ([`crate::dcap`]), its report_data binds the
//! enclave's session key, the task and the SMS's nonce (compared in constant time), and its
//! measurements are allowed — SGX: MRENCLAVE is what the enclave claims to run; TDX: MRTD and
//! RTMR0–2 are one of the operator's allowed worker images, and RTMR3 replayed from the event log
//! (one event per measured app) equals the quote's, so the log's events are what the TD ran.
//! Every refusal names its rule.

use crate::dcap::{self, Measurements, TcbPolicy, VerifiedQuote};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha384, Sha512};
use veil_core::{B256, Bytes};

/// Most events a TDX event log may carry (one per app the TD measured).
pub const MAX_EVENTS: usize = 64;

/// A TDX quote or an SGX quote with what it binds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuoteEvidence {
    pub quote: Bytes,
    /// Intel's collateral for the quote (dcap-qvl's JSON). Signed by Intel, so the enclave may carry it;
    /// the verifier still judges its validity at its own time.
    pub collateral: String,
    /// The enclave's ephemeral secp256k1 public key, compressed (33 bytes).
    pub session_key: Bytes,
    pub taskid: B256,
    pub nonce: B256,
    /// TDX: the digests extended into RTMR3, in order (each an app's measurement).
    #[serde(default)]
    pub event_log: Vec<B256>,
}

/// A TD image the operator allows workers to run: its MRTD and RTMR0–2 (hex, 48 bytes each).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TdImage {
    pub name: String,
    pub mrtd: String,
    pub rtmr0: String,
    pub rtmr1: String,
    pub rtmr2: String,
}

/// What an SMS operator decides about real enclaves (`veil sms --tee-policy FILE`): the TCB policy
/// and the TD images TDX workers may run. (`sim` is decided by dev mode alone.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct TeeSettings {
    pub tcb_policy: TcbPolicy,
    pub td_images: Vec<TdImage>,
}

impl TeeSettings {
    /// Reads a settings file, checking every TD image's measurements are 48-byte hex values.
    pub fn parse(json: &[u8]) -> Result<TeeSettings, String> {
        let s: TeeSettings = serde_json::from_slice(json).map_err(|e| e.to_string())?;
        for i in &s.td_images {
            for (what, v) in [("mrtd", &i.mrtd), ("rtmr0", &i.rtmr0), ("rtmr1", &i.rtmr1), ("rtmr2", &i.rtmr2)] {
                if hex48(v).is_none() {
                    return Err(format!("TD image `{}`: {what} is not 48 bytes of hex", i.name));
                }
            }
        }
        Ok(s)
    }

    pub fn appraiser(self, allow_sim: bool) -> Appraiser {
        Appraiser { allow_sim, tcb_policy: self.tcb_policy, td_images: self.td_images }
    }
}

/// What an SMS accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Appraiser {
    /// `sim` evidence (no hardware protection): only in dev mode.
    pub allow_sim: bool,
    pub tcb_policy: TcbPolicy,
    /// TD images allowed for TDX workers (none: TDX evidence is refused).
    pub td_images: Vec<TdImage>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppraisalError {
    #[error("quote: {0}")]
    Quote(#[from] dcap::QuoteError),
    #[error("platform: a {0} quote was presented as {1} evidence")]
    Platform(&'static str, &'static str),
    #[error(
        "binding: the quote's report_data does not bind this session key, task and nonce (a quote made for another session?)"
    )]
    Binding,
    #[error("session key: not a compressed secp256k1 public key")]
    SessionKey,
    #[error("td-image: MRTD/RTMR0–2 are not an allowed TD image ({0})")]
    TdImage(String),
    #[error("event-log: {0}")]
    EventLog(String),
}

impl AppraisalError {
    /// The rule a refusal names.
    pub fn rule(&self) -> &'static str {
        match self {
            AppraisalError::Quote(_) => "quote",
            AppraisalError::Platform(..) => "platform",
            AppraisalError::Binding => "binding",
            AppraisalError::SessionKey => "session-key",
            AppraisalError::TdImage(_) => "td-image",
            AppraisalError::EventLog(_) => "event-log",
        }
    }
}

/// What an enclave puts in its quote's report_data: SHA-512 of the domain, its session key, the
/// task and the SMS's nonce.
pub fn report_data(session_key: &[u8], taskid: &B256, nonce: &B256) -> [u8; 64] {
    let mut h = Sha512::new();
    h.update(b"veil-report-data-v1");
    h.update(session_key);
    h.update(taskid.as_slice());
    h.update(nonce.as_slice());
    h.finalize().into()
}

/// RTMR3 after extending each event in order: `RTMR = SHA384(RTMR ‖ SHA384(event))`, from zero.
pub fn replay_rtmr(events: &[B256]) -> [u8; 48] {
    events.iter().fold([0u8; 48], |rtmr, e| {
        let mut h = Sha384::new();
        h.update(rtmr);
        h.update(Sha384::digest(e.as_slice()));
        h.finalize().into()
    })
}

/// Equal in constant time (for equal lengths).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex48(text: &str) -> Option<[u8; 48]> {
    hex::decode(text.trim_start_matches("0x")).ok()?.try_into().ok()
}

impl Appraiser {
    /// Verifies `e`'s quote at `now` and applies the rules; the app measurements it proves.
    pub fn appraise(&self, e: &QuoteEvidence, tdx: bool, now: u64) -> Result<Vec<B256>, AppraisalError> {
        let collateral = dcap::parse_collateral(e.collateral.as_bytes())?;
        let verified = dcap::verify(&e.quote, &collateral, now, &self.tcb_policy)?;
        self.rules(&verified, e, tdx)
    }

    /// The rules on a verified quote (separate so they can be tested on any verdict).
    pub fn rules(&self, v: &VerifiedQuote, e: &QuoteEvidence, tdx: bool) -> Result<Vec<B256>, AppraisalError> {
        if e.session_key.len() != 33 || secp256k1::PublicKey::from_slice(&e.session_key).is_err() {
            return Err(AppraisalError::SessionKey);
        }
        if !ct_eq(&v.report_data, &report_data(&e.session_key, &e.taskid, &e.nonce)) {
            return Err(AppraisalError::Binding);
        }
        match (&v.measurements, tdx) {
            (Measurements::Sgx { mrenclave, .. }, false) => Ok(vec![B256::from(*mrenclave)]),
            (Measurements::Tdx { mrtd, rtmr }, true) => {
                self.td_image(mrtd, rtmr)?;
                if e.event_log.len() > MAX_EVENTS {
                    return Err(AppraisalError::EventLog(format!("more than {MAX_EVENTS} events")));
                }
                if !ct_eq(&replay_rtmr(&e.event_log), &rtmr[3]) {
                    return Err(AppraisalError::EventLog("replaying it does not give the quote's RTMR3".into()));
                }
                Ok(e.event_log.clone())
            }
            (Measurements::Sgx { .. }, true) => Err(AppraisalError::Platform("SGX", "TDX")),
            (Measurements::Tdx { .. }, false) => Err(AppraisalError::Platform("TDX", "SGX")),
        }
    }

    fn td_image(&self, mrtd: &[u8; 48], rtmr: &[[u8; 48]; 4]) -> Result<(), AppraisalError> {
        if self.td_images.is_empty() {
            return Err(AppraisalError::TdImage("the SMS allows no TD image: its operator lists them".into()));
        }
        let same = |want: &str, have: &[u8; 48]| hex48(want).is_some_and(|w| ct_eq(&w, have));
        let allowed = self.td_images.iter().any(|i| {
            same(&i.mrtd, mrtd) && same(&i.rtmr0, &rtmr[0]) && same(&i.rtmr1, &rtmr[1]) && same(&i.rtmr2, &rtmr[2])
        });
        match allowed {
            true => Ok(()),
            false => {
                Err(AppraisalError::TdImage(format!("MRTD 0x{} is not listed with these RTMRs", hex::encode(mrtd))))
            }
        }
    }
}
