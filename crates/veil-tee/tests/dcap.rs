//! Real SGX and TDX quotes (dcap-qvl's samples, `tests/dcap/SOURCE.md`) verified at pinned times inside
//! their collateral windows, and refused when anything they rely on is changed.

use veil_tee::dcap::{self, Measurements, QuoteError, TcbPolicy, VerifiedQuote};

/// 2025-06-20T00:00:00Z: inside the SGX and TDX samples' windows (issued 2025-06-19, valid a month).
const JUNE_2025: u64 = 1_750_377_600;
/// 2026-02-19T00:00:00Z: inside the outdated TDX sample's window.
const FEB_2026: u64 = 1_771_459_200;
/// 2025-08-01: after the June samples' collateral expired.
const AUG_2025: u64 = 1_754_006_400;

struct Sample {
    quote: Vec<u8>,
    collateral: Vec<u8>,
}

fn sample(name: &str) -> Sample {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dcap");
    Sample {
        quote: std::fs::read(dir.join(name)).unwrap(),
        collateral: std::fs::read(dir.join(format!("{name}_collateral.json"))).unwrap(),
    }
}

fn allowing(statuses: &[&str]) -> TcbPolicy {
    TcbPolicy { allowed_statuses: statuses.iter().map(|s| s.to_string()).collect(), ..Default::default() }
}

fn verify(quote: &[u8], collateral: &[u8], now: u64, policy: &TcbPolicy) -> Result<VerifiedQuote, QuoteError> {
    dcap::verify(quote, &dcap::parse_collateral(collateral)?, now, policy)
}

/// The kind of refusal: `Ok` or the error's variant name.
fn outcome(r: &Result<VerifiedQuote, QuoteError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(QuoteError::TooLarge(_)) => "too large",
        Err(QuoteError::Collateral(_)) => "collateral",
        Err(QuoteError::Invalid(_)) => "invalid",
        Err(QuoteError::Refused(_)) => "refused",
        Err(QuoteError::Policy(_)) => "policy",
    }
}

/// The TDX sample's platform is dynamic, caches its keys and runs SMT: a policy must decide to
/// accept each.
fn tdx_policy() -> TcbPolicy {
    TcbPolicy { allow_dynamic_platform: true, allow_cached_keys: true, allow_smt: true, ..Default::default() }
}

/// The SGX sample needs configuration and software hardening (two advisories).
fn sgx_policy() -> TcbPolicy {
    allowing(&["UpToDate", "ConfigurationAndSWHardeningNeeded"])
}

#[test]
fn genuine_quotes_verify_at_a_time_inside_their_windows() {
    let s = sample("sgx_quote");
    let v = verify(&s.quote, &s.collateral, JUNE_2025, &sgx_policy()).unwrap();
    assert_eq!(v.tcb_status, "ConfigurationAndSWHardeningNeeded");
    assert_eq!(v.advisories.len(), 2, "{:?}", v.advisories);
    let Measurements::Sgx { mrenclave, .. } = v.measurements else { panic!("an SGX quote: {v:?}") };
    assert_eq!(mrenclave[..], s.quote[112..144], "MRENCLAVE is read from the report body");
    assert_eq!(v.report_data[..], s.quote[368..432]);
    assert!(v.collateral_expires > JUNE_2025 && v.collateral_expires < AUG_2025);

    let t = sample("tdx_quote");
    let v = verify(&t.quote, &t.collateral, JUNE_2025, &tdx_policy()).unwrap();
    assert_eq!((v.tcb_status.as_str(), v.advisories.len()), ("UpToDate", 0));
    let Measurements::Tdx { mrtd, rtmr } = v.measurements else { panic!("a TDX quote: {v:?}") };
    assert_eq!(mrtd[..], t.quote[184..232]);
    assert_eq!(rtmr[3][..], t.quote[520..568]);
    assert_eq!(v.report_data[..], t.quote[568..632]);
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["measurements"]["tee"], "tdx");
    assert_eq!(serde_json::from_value::<VerifiedQuote>(json).unwrap(), v, "the verdict round-trips");
}

/// Flips one bit of `bytes[at]`.
fn flipped(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at] ^= 0x01;
    b
}

/// A byte inside the first PEM certificate of the quote's certification data (the PCK leaf).
fn in_pck_chain(quote: &[u8]) -> usize {
    let begin = b"-----BEGIN CERTIFICATE-----";
    quote.windows(begin.len()).position(|w| w == begin).expect("a PEM chain in the quote") + begin.len() + 200
}

/// (what, quote, collateral, time, policy, expected outcome)
type Case<'a> = (&'a str, Vec<u8>, Vec<u8>, u64, &'a TcbPolicy, &'a str);

#[test]
fn anything_the_verdict_relies_on_changed_is_refused() {
    let (s, t) = (sample("sgx_quote"), sample("tdx_quote"));
    let (sp, tp, strict) = (sgx_policy(), tdx_policy(), TcbPolicy::default());
    let tdx_tcb = String::from_utf8(t.collateral.clone()).unwrap();
    // A TCB info edited after Intel signed it (its evaluation number).
    let forged_tcb = tdx_tcb.replacen("tcbEvaluationDataNumber\\\":", "tcbEvaluationDataNumber\\\":1", 1);
    assert_ne!(forged_tcb, tdx_tcb, "the edit applies");
    let cases: Vec<Case> = vec![
        ("SGX genuine", s.quote.clone(), s.collateral.clone(), JUNE_2025, &sp, "ok"),
        ("TDX genuine", t.quote.clone(), t.collateral.clone(), JUNE_2025, &tp, "ok"),
        ("SGX after its collateral expired", s.quote.clone(), s.collateral.clone(), AUG_2025, &sp, "invalid"),
        ("TDX after its collateral expired", t.quote.clone(), t.collateral.clone(), AUG_2025, &tp, "invalid"),
        (
            "TDX before its collateral was issued",
            t.quote.clone(),
            t.collateral.clone(),
            JUNE_2025 - 86_400 * 60,
            &tp,
            "invalid",
        ),
        ("SGX report_data", flipped(&s.quote, 400), s.collateral.clone(), JUNE_2025, &sp, "invalid"),
        ("SGX MRENCLAVE", flipped(&s.quote, 120), s.collateral.clone(), JUNE_2025, &sp, "invalid"),
        ("SGX signature", flipped(&s.quote, 450), s.collateral.clone(), JUNE_2025, &sp, "invalid"),
        ("SGX PCK chain", flipped(&s.quote, in_pck_chain(&s.quote)), s.collateral.clone(), JUNE_2025, &sp, "invalid"),
        ("TDX report_data", flipped(&t.quote, 600), t.collateral.clone(), JUNE_2025, &tp, "invalid"),
        ("TDX MRTD", flipped(&t.quote, 200), t.collateral.clone(), JUNE_2025, &tp, "invalid"),
        ("TDX RTMR3", flipped(&t.quote, 540), t.collateral.clone(), JUNE_2025, &tp, "invalid"),
        ("TDX signature", flipped(&t.quote, 650), t.collateral.clone(), JUNE_2025, &tp, "invalid"),
        ("TDX PCK chain", flipped(&t.quote, in_pck_chain(&t.quote)), t.collateral.clone(), JUNE_2025, &tp, "invalid"),
        ("TDX TCB info", t.quote.clone(), forged_tcb.into_bytes(), JUNE_2025, &tp, "invalid"),
        ("TDX truncated", t.quote[..1000].to_vec(), t.collateral.clone(), JUNE_2025, &tp, "invalid"),
        ("TDX empty", vec![], t.collateral.clone(), JUNE_2025, &tp, "invalid"),
        ("TDX with SGX collateral", t.quote.clone(), s.collateral.clone(), JUNE_2025, &tp, "invalid"),
        ("SGX with TDX collateral", s.quote.clone(), t.collateral.clone(), JUNE_2025, &sp, "invalid"),
        ("TDX oversized", vec![0; dcap::MAX_QUOTE + 1], t.collateral.clone(), JUNE_2025, &tp, "too large"),
        ("collateral not JSON", t.quote.clone(), b"{".to_vec(), JUNE_2025, &tp, "collateral"),
        // Policy: the strict default refuses both genuine quotes, each for its reason.
        ("SGX, strict policy", s.quote.clone(), s.collateral.clone(), JUNE_2025, &strict, "refused"),
        ("TDX, strict policy", t.quote.clone(), t.collateral.clone(), JUNE_2025, &strict, "refused"),
    ];
    for (what, quote, collateral, now, policy, want) in cases {
        let r = verify(&quote, &collateral, now, policy);
        assert_eq!(outcome(&r), want, "{what}: {r:?}");
    }
    let outdated = sample("tdx_quote_outdated");
    let r = verify(&outdated.quote, &outdated.collateral, FEB_2026, &tp);
    assert_eq!(outcome(&r), "invalid", "an out-of-date platform matches no TCB level: {r:?}");
}

#[test]
fn policies_refuse_what_they_say_and_name_why() {
    let s = sample("sgx_quote");
    let advisories = verify(&s.quote, &s.collateral, JUNE_2025, &sgx_policy()).unwrap().advisories;
    let listed = TcbPolicy { rejected_advisories: vec![advisories[0].clone()], ..sgx_policy() };
    let e = verify(&s.quote, &s.collateral, JUNE_2025, &listed).unwrap_err().to_string();
    assert!(e.contains(&advisories[0]) || e.contains("dvisor"), "{e}");
    let e = verify(&s.quote, &s.collateral, JUNE_2025, &TcbPolicy::default()).unwrap_err().to_string();
    assert!(e.contains("ConfigurationAndSWHardeningNeeded"), "{e}");
    let t = sample("tdx_quote");
    let e = verify(&t.quote, &t.collateral, JUNE_2025, &TcbPolicy::default()).unwrap_err().to_string();
    assert!(e.contains("ynamic platform"), "{e}");
    for (bad, why) in [(allowing(&["Revoked"]), "Revoked"), (allowing(&["Fine"]), "Fine")] {
        let e = verify(&t.quote, &t.collateral, JUNE_2025, &bad).unwrap_err();
        assert!(matches!(&e, QuoteError::Policy(m) if m.contains(why)), "{e}");
    }
    let json = serde_json::json!({
        "allowedStatuses": ["UpToDate"], "allowDynamicPlatform": true, "allowCachedKeys": true, "allowSmt": true,
    });
    let p: TcbPolicy = serde_json::from_value(json).unwrap();
    assert!(verify(&t.quote, &t.collateral, JUNE_2025, &p).is_ok(), "a policy from the SMS's settings");
    assert!(serde_json::from_value::<TcbPolicy>(serde_json::json!({ "allowDebug": true })).is_err(), "no such knob");
}

mod appraisal {
    use super::*;
    use veil_core::B256;
    use veil_tee::appraise::{AppraisalError, Appraiser, QuoteEvidence, TdImage, replay_rtmr, report_data};
    use veil_tee::{Evidence, EvidenceError, SessionKey};

    fn hex(b: &[u8]) -> String {
        format!("0x{}", hex::encode(b))
    }

    /// Evidence for a fresh session around `quote`.
    fn evidence(quote: &[u8], collateral: &[u8], event_log: Vec<B256>) -> QuoteEvidence {
        QuoteEvidence {
            quote: quote.to_vec().into(),
            collateral: String::from_utf8(collateral.to_vec()).unwrap(),
            session_key: SessionKey::generate().public().into(),
            taskid: B256::repeat_byte(2),
            nonce: B256::repeat_byte(3),
            event_log,
        }
    }

    /// The TD image of the TDX sample (its MRTD and RTMR0–2).
    fn sample_image(quote: &[u8]) -> TdImage {
        TdImage {
            name: "sample".into(),
            mrtd: hex(&quote[184..232]),
            rtmr0: hex(&quote[376..424]),
            rtmr1: hex(&quote[424..472]),
            rtmr2: hex(&quote[472..520]),
        }
    }

    #[test]
    fn a_genuine_quote_made_for_another_session_is_refused() {
        let (s, t) = (sample("sgx_quote"), sample("tdx_quote"));
        let a = Appraiser { tcb_policy: sgx_policy(), ..Default::default() };
        let e = Evidence::Sgx(evidence(&s.quote, &s.collateral, vec![]));
        let r = e.verify(&a, JUNE_2025);
        assert_eq!(r.unwrap_err(), EvidenceError::Appraisal(AppraisalError::Binding));
        let a = Appraiser { tcb_policy: tdx_policy(), td_images: vec![sample_image(&t.quote)], ..Default::default() };
        let e = Evidence::Tdx(evidence(&t.quote, &t.collateral, vec![]));
        assert_eq!(e.verify(&a, JUNE_2025).unwrap_err(), EvidenceError::Appraisal(AppraisalError::Binding));
        // The quote is checked first: a stale or unverifiable one is refused as such.
        let r = e.verify(&a, AUG_2025).unwrap_err();
        assert!(matches!(r, EvidenceError::Appraisal(AppraisalError::Quote(_))), "{r:?}");
        let wrong = Evidence::Sgx(evidence(&t.quote, &t.collateral, vec![]));
        let r = wrong.verify(&Appraiser { tcb_policy: tdx_policy(), ..Default::default() }, JUNE_2025);
        assert!(r.is_err(), "TDX evidence presented as SGX: {r:?}");
    }

    /// A verdict as the verifier would give for a quote made for `e`'s session.
    fn verdict_for(e: &QuoteEvidence, measurements: Measurements) -> VerifiedQuote {
        VerifiedQuote {
            tcb_status: "UpToDate".into(),
            advisories: vec![],
            measurements,
            report_data: report_data(&e.session_key, &e.taskid, &e.nonce),
            collateral_expires: 0,
        }
    }

    #[test]
    fn the_rules_on_a_verified_quote() {
        let t = sample("tdx_quote");
        let image = sample_image(&t.quote);
        let (app, other) = (B256::repeat_byte(0xaa), B256::repeat_byte(0xbb));
        let log = vec![other, app];
        let e = evidence(&t.quote, &t.collateral, log.clone());
        let td = |rtmr3: [u8; 48]| Measurements::Tdx {
            mrtd: t.quote[184..232].try_into().unwrap(),
            rtmr: [
                t.quote[376..424].try_into().unwrap(),
                t.quote[424..472].try_into().unwrap(),
                t.quote[472..520].try_into().unwrap(),
                rtmr3,
            ],
        };
        let sgx = Measurements::Sgx { mrenclave: [7; 32], mrsigner: [0; 32], isv_prod_id: 0, isv_svn: 0 };
        let with_image = Appraiser { td_images: vec![image.clone()], ..Default::default() };
        let other_image = Appraiser { td_images: vec![TdImage { mrtd: hex(&[1; 48]), ..image }], ..Default::default() };
        let none = Appraiser::default();
        let check = |a: &Appraiser, v: VerifiedQuote, e: &QuoteEvidence, tdx: bool, want: Result<Vec<B256>, &str>| {
            let r = a.rules(&v, e, tdx);
            match want {
                Ok(m) => assert_eq!(r, Ok(m)),
                Err(rule) => assert_eq!(r.as_ref().map_err(|e| e.rule()), Err(rule), "{r:?}"),
            }
        };
        let good = td(replay_rtmr(&log));
        check(&with_image, verdict_for(&e, good.clone()), &e, true, Ok(log.clone()));
        check(&none, verdict_for(&e, good.clone()), &e, true, Err("td-image"));
        check(&other_image, verdict_for(&e, good.clone()), &e, true, Err("td-image"));
        check(&with_image, verdict_for(&e, td(replay_rtmr(&[app]))), &e, true, Err("event-log"));
        check(&with_image, verdict_for(&e, td([0; 48])), &e, true, Err("event-log"));
        let long = QuoteEvidence { event_log: vec![app; 65], ..e.clone() };
        check(&with_image, verdict_for(&long, td(replay_rtmr(&long.event_log))), &long, true, Err("event-log"));
        check(&none, verdict_for(&e, sgx.clone()), &e, false, Ok(vec![B256::from([7; 32])]));
        check(&none, verdict_for(&e, sgx.clone()), &e, true, Err("platform"));
        check(&with_image, verdict_for(&e, good.clone()), &e, false, Err("platform"));
        let mut v = verdict_for(&e, sgx.clone());
        v.report_data[63] ^= 1;
        check(&none, v, &e, false, Err("binding"));
        let other_task = QuoteEvidence { taskid: B256::repeat_byte(9), ..e.clone() };
        check(&none, verdict_for(&e, sgx.clone()), &other_task, false, Err("binding"));
        let bad_key = QuoteEvidence { session_key: vec![2; 5].into(), ..e.clone() };
        check(&none, verdict_for(&bad_key, sgx), &bad_key, false, Err("session-key"));
    }

    #[test]
    fn rtmr_replay_is_sha384_chaining_from_zero() {
        use sha2::{Digest, Sha384};
        let e = B256::repeat_byte(1);
        let mut first = [0u8; 48].to_vec();
        first.extend_from_slice(&Sha384::digest(e.as_slice()));
        let want: [u8; 48] = Sha384::digest(&first).into();
        assert_eq!(replay_rtmr(&[e]), want);
        assert_eq!(replay_rtmr(&[]), [0u8; 48]);
        assert_ne!(replay_rtmr(&[e, e]), replay_rtmr(&[e]));
    }
}

/// The collateral a quote needs is named by its PCK certificate, and collateral expires when its
/// first piece does — the same instant dcap-qvl reports after verifying with it.
#[test]
fn a_quotes_collateral_key_and_the_collaterals_expiry() {
    for (name, at, policy, tdx) in
        [("sgx_quote", JUNE_2025, sgx_policy(), false), ("tdx_quote", JUNE_2025, tdx_policy(), true)]
    {
        let s = sample(name);
        let key = dcap::collateral_key(&s.quote).unwrap();
        assert_eq!(key.tdx, tdx, "{name}");
        assert_eq!(key.fmspc.len(), 12, "{name}: {key:?}");
        assert!(key.ca == "processor" || key.ca == "platform", "{name}: {key:?}");
        assert!(key.file_name().ends_with(".json") && !key.file_name().contains('/'));
        let collateral = dcap::parse_collateral(&s.collateral).unwrap();
        let expiry = dcap::collateral_expiry(&collateral).unwrap();
        let (verified, _) = dcap::inspect(&s.quote, &collateral, at, &policy).unwrap();
        assert_eq!(expiry, verified.collateral_expires, "{name}");
    }
    let outdated = sample("tdx_quote_outdated");
    assert!(dcap::collateral_key(&outdated.quote).unwrap().tdx);
    let expiry = dcap::collateral_expiry(&dcap::parse_collateral(&outdated.collateral).unwrap()).unwrap();
    assert!(expiry > FEB_2026, "the outdated sample's collateral is valid at its pinned time");
    assert!(matches!(dcap::collateral_key(b"not a quote"), Err(QuoteError::Invalid(_))));
    for (text, want) in [
        ("1970-01-01T00:00:00Z", Some(0)),
        ("2025-06-20T00:00:00Z", Some(JUNE_2025)),
        ("2026-02-19T00:00:00.123Z", Some(FEB_2026)),
        ("2000-02-29T12:30:15Z", Some(951_827_415)),
        ("2025-13-01T00:00:00Z", None),
        ("2025-06-20 00:00:00Z", None),
        ("2025-06-20T00:00:00+01:00", None),
        ("", None),
    ] {
        assert_eq!(dcap::unix_of_iso(text), want, "{text}");
    }
}
