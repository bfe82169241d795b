//! Intel DCAP quotes (SGX v3, TDX v4/v5) verified with `dcap-qvl` against Intel's root, then judged
//! by an explicit [`TcbPolicy`]: which TCB statuses pass, which advisories are refused, whether
//! dynamic platforms, cached keys and SMT are allowed. Debug enclaves are always refused. Verification
//! takes the time as an input (`now`), so collateral outside its validity window is refused and tests
//! can pin a time; nothing here reads the clock or the network.

pub use dcap_qvl::QuoteCollateralV3;
use dcap_qvl::quote::Report;
use dcap_qvl::verify::QuoteVerifier;
use dcap_qvl::{QuotePolicy, TcbStatus};
use serde::{Deserialize, Serialize};

/// Largest quote accepted (a TDX quote with its certification data is about 5 KiB).
pub const MAX_QUOTE: usize = 64 * 1024;

/// The TCB policy a verifier applies after the signatures check out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct TcbPolicy {
    /// TCB statuses accepted (Intel's names: `UpToDate`, `SWHardeningNeeded`, `ConfigurationNeeded`,
    /// `ConfigurationAndSWHardeningNeeded`, `OutOfDate`, …). `Revoked` never passes.
    pub allowed_statuses: Vec<String>,
    /// Intel security advisories (`INTEL-SA-…`) that refuse a quote whatever its status.
    pub rejected_advisories: Vec<String>,
    /// Platforms whose TCB can change at run time (Intel's "dynamic platform" flag).
    pub allow_dynamic_platform: bool,
    /// Platforms that cache their platform keys.
    pub allow_cached_keys: bool,
    /// Platforms with simultaneous multithreading on.
    pub allow_smt: bool,
}

impl Default for TcbPolicy {
    /// Strict: only `UpToDate`, no advisory listed, no dynamic platform, cached keys or SMT.
    fn default() -> TcbPolicy {
        TcbPolicy {
            allowed_statuses: vec!["UpToDate".into()],
            rejected_advisories: vec![],
            allow_dynamic_platform: false,
            allow_cached_keys: false,
            allow_smt: false,
        }
    }
}

impl TcbPolicy {
    /// The policy as dcap-qvl applies it at `now` (unix seconds).
    fn at(&self, now: u64) -> Result<QuotePolicy, QuoteError> {
        let mut p = QuotePolicy::strict(now)
            .reject_advisories(&self.rejected_advisories)
            .allow_dynamic_platform(self.allow_dynamic_platform)
            .allow_cached_keys(self.allow_cached_keys)
            .allow_smt(self.allow_smt);
        for s in &self.allowed_statuses {
            let status: TcbStatus = serde_json::from_value(serde_json::json!(s))
                .map_err(|_| QuoteError::Policy(format!("unknown TCB status `{s}` in the policy")))?;
            if status == TcbStatus::Revoked {
                return Err(QuoteError::Policy("a policy cannot allow the `Revoked` TCB status".into()));
            }
            p = p.allow_status(status);
        }
        Ok(p)
    }
}

/// What the enclave's quote measures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "tee", rename_all = "lowercase")]
pub enum Measurements {
    Sgx {
        #[serde(with = "hex_bytes")]
        mrenclave: [u8; 32],
        #[serde(with = "hex_bytes")]
        mrsigner: [u8; 32],
        isv_prod_id: u16,
        isv_svn: u16,
    },
    Tdx {
        #[serde(with = "hex_bytes")]
        mrtd: [u8; 48],
        /// RTMR0–3.
        #[serde(with = "rtmrs")]
        rtmr: [[u8; 48]; 4],
    },
}

/// A quote that verified and passed the policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedQuote {
    pub tcb_status: String,
    pub advisories: Vec<String>,
    pub measurements: Measurements,
    #[serde(with = "hex_bytes")]
    pub report_data: [u8; 64],
    /// When the first piece of the collateral expires (unix seconds): the verdict holds until then.
    pub collateral_expires: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    #[error("the quote is {0} bytes: at most {MAX_QUOTE}")]
    TooLarge(usize),
    #[error("the collateral is not dcap-qvl's JSON (QuoteCollateralV3): {0}")]
    Collateral(String),
    #[error("the quote does not verify: {0}")]
    Invalid(String),
    #[error("the quote verifies but the TCB policy refuses it: {0}")]
    Refused(String),
    #[error("the TCB policy is invalid: {0}")]
    Policy(String),
}

/// Parses collateral as dcap-qvl writes it (JSON).
pub fn parse_collateral(json: &[u8]) -> Result<QuoteCollateralV3, QuoteError> {
    serde_json::from_slice(json).map_err(|e| QuoteError::Collateral(e.to_string()))
}

/// Verifies `quote` against Intel's root with `collateral` at `now`, then applies `policy`.
pub fn verify(
    quote: &[u8],
    collateral: &QuoteCollateralV3,
    now: u64,
    policy: &TcbPolicy,
) -> Result<VerifiedQuote, QuoteError> {
    let (verified, verdict) = inspect(quote, collateral, now, policy)?;
    verdict.map(|()| verified)
}

/// Verifies `quote`'s signatures, certificate chain and collateral at `now`, then judges it by
/// `policy`: what it shows, and the policy's verdict (what `veil tee verify-quote` prints).
pub fn inspect(
    quote: &[u8],
    collateral: &QuoteCollateralV3,
    now: u64,
    policy: &TcbPolicy,
) -> Result<(VerifiedQuote, Result<(), QuoteError>), QuoteError> {
    let (verified, claims) = checked(quote, collateral, now)?;
    let verdict = judge(&claims, now, policy);
    Ok((verified, verdict))
}

fn judge(claims: &dcap_qvl::QuoteClaims, now: u64, policy: &TcbPolicy) -> Result<(), QuoteError> {
    dcap_qvl::Policy::validate(&policy.at(now)?, claims).map_err(|e| QuoteError::Refused(format!("{e:#}")))
}

fn checked(
    quote: &[u8],
    collateral: &QuoteCollateralV3,
    now: u64,
) -> Result<(VerifiedQuote, dcap_qvl::QuoteClaims), QuoteError> {
    if quote.len() > MAX_QUOTE {
        return Err(QuoteError::TooLarge(quote.len()));
    }
    let verifier = QuoteVerifier::new_prod().allow_debug(false);
    // Signatures and chains first, with no policy, so a policy refusal is told apart from forgery.
    let claims = verifier
        .verify_with_policy(quote, collateral.clone(), now, &QuotePolicy::claims_only(now))
        .map_err(|e| QuoteError::Invalid(format!("{e:#}")))?;
    let (measurements, report_data) = match &claims.report {
        Report::SgxEnclave(r) => (
            Measurements::Sgx {
                mrenclave: r.mr_enclave,
                mrsigner: r.mr_signer,
                isv_prod_id: r.isv_prod_id,
                isv_svn: r.isv_svn,
            },
            r.report_data,
        ),
        Report::TD10(r) => tdx(r),
        Report::TD15(r) => tdx(&r.base),
        Report::TD15Ex(r) => tdx(&r.base.base),
    };
    let verified = VerifiedQuote {
        tcb_status: claims.tcb.status.to_string(),
        advisories: claims.tcb.advisory_ids.clone(),
        measurements,
        report_data,
        collateral_expires: claims.earliest_expiration_date,
    };
    Ok((verified, claims))
}

fn tdx(r: &dcap_qvl::quote::TDReport10) -> (Measurements, [u8; 64]) {
    (Measurements::Tdx { mrtd: r.mr_td, rtmr: [r.rt_mr0, r.rt_mr1, r.rt_mr2, r.rt_mr3] }, r.report_data)
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer, const N: usize>(b: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("0x{}", hex::encode(b)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(d: D) -> Result<[u8; N], D::Error> {
        let text = String::deserialize(d)?;
        let bytes = hex::decode(text.trim_start_matches("0x")).map_err(serde::de::Error::custom)?;
        bytes.try_into().map_err(|_| serde::de::Error::custom(format!("expected {N} bytes")))
    }
}

mod rtmrs {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(r: &[[u8; 48]; 4], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(r.iter().map(|m| format!("0x{}", hex::encode(m))))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[[u8; 48]; 4], D::Error> {
        let texts = <Vec<String>>::deserialize(d)?;
        let mut out = [[0u8; 48]; 4];
        if texts.len() != 4 {
            return Err(serde::de::Error::custom("expected RTMR0–3"));
        }
        for (o, t) in out.iter_mut().zip(texts) {
            let b = hex::decode(t.trim_start_matches("0x")).map_err(serde::de::Error::custom)?;
            *o = b.try_into().map_err(|_| serde::de::Error::custom("an RTMR is 48 bytes"))?;
        }
        Ok(out)
    }
}

/// Which collateral a quote needs: Intel publishes it per TEE (SGX or TDX), per FMSPC (the
/// platform's family, read from the quote's PCK certificate) and per PCK CA (processor or platform).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CollateralKey {
    pub tdx: bool,
    /// Six bytes, upper-case hex (as Intel's PCS writes it).
    pub fmspc: String,
    /// `processor` or `platform`.
    pub ca: String,
}

impl CollateralKey {
    /// A file name for this key (only hex and lowercase letters).
    pub fn file_name(&self) -> String {
        format!("{}-{}-{}.json", if self.tdx { "tdx" } else { "sgx" }, self.fmspc.to_ascii_lowercase(), self.ca)
    }
}

/// The collateral `quote` needs, from the PCK certificate chain it carries.
pub fn collateral_key(quote: &[u8]) -> Result<CollateralKey, QuoteError> {
    if quote.len() > MAX_QUOTE {
        return Err(QuoteError::TooLarge(quote.len()));
    }
    let parsed = dcap_qvl::quote::Quote::parse(quote).map_err(|e| QuoteError::Invalid(format!("{e:#}")))?;
    let fmspc = dcap_qvl::intel::quote_fmspc(&parsed)
        .map_err(|e| QuoteError::Invalid(format!("no FMSPC in its PCK certificate: {e:#}")))?;
    let ca = dcap_qvl::intel::quote_ca(&parsed)
        .map_err(|e| QuoteError::Invalid(format!("no PCK CA in its PCK certificate: {e:#}")))?;
    Ok(CollateralKey { tdx: !parsed.header.is_sgx(), fmspc: hex::encode_upper(fmspc), ca: ca.as_id_str().into() })
}

/// When `c` stops being usable (unix seconds): the earliest `nextUpdate` of its TCB info, QE
/// identity, PCK CRL and root CA CRL.
pub fn collateral_expiry(c: &QuoteCollateralV3) -> Result<u64, QuoteError> {
    let json_next = |what: &str, text: &str| -> Result<u64, QuoteError> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| QuoteError::Collateral(format!("{what}: {e}")))?;
        v["nextUpdate"]
            .as_str()
            .and_then(unix_of_iso)
            .ok_or_else(|| QuoteError::Collateral(format!("{what} has no readable nextUpdate")))
    };
    let crl_next = |what: &str, der: &[u8]| -> Result<u64, QuoteError> {
        use der::Decode;
        let crl = x509_cert::crl::CertificateList::<x509_cert::certificate::Rfc5280>::from_der(der)
            .map_err(|e| QuoteError::Collateral(format!("{what} is not a DER CRL: {e}")))?;
        crl.tbs_cert_list
            .next_update
            .map(|t| t.to_unix_duration().as_secs())
            .ok_or_else(|| QuoteError::Collateral(format!("{what} has no nextUpdate")))
    };
    Ok(json_next("TCB info", &c.tcb_info)?
        .min(json_next("QE identity", &c.qe_identity)?)
        .min(crl_next("the PCK CRL", &c.pck_crl)?)
        .min(crl_next("the root CA CRL", &c.root_ca_crl)?))
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` (Intel's dates) as unix seconds.
pub fn unix_of_iso(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !text.ends_with('Z') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from 1970-01-01 in the proleptic Gregorian calendar (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}
