//! Enclave sessions against a ledger the test controls: one case per rule of DESIGN §6, each
//! refusal naming its rule, and the released secrets opening only with the session key.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use veil_core::state::{App, Dataset, Deal, DealAsset, Task, TaskStatus};
use veil_core::*;
use veil_sdk::{SecretKind, SmsWrite, sms_message};
use veil_sms::ledger::Lookup;
use veil_sms::{LedgerLookup, Sms, SmsError};
use veil_tee::{Evidence, SessionKey, SessionRequest, SessionSecrets, SimEvidence};

#[derive(Default)]
struct Fake {
    apps: HashMap<Address, App>,
    datasets: HashMap<Address, Dataset>,
    deals: HashMap<B256, Deal>,
    tasks: HashMap<B256, Task>,
}

struct FakeLedger(Mutex<Fake>);

impl LedgerLookup for FakeLedger {
    fn app(&self, a: Address) -> Lookup<'_, App> {
        let v = self.0.lock().unwrap().apps.get(&a).cloned();
        Box::pin(async move { Ok(v) })
    }
    fn dataset(&self, d: Address) -> Lookup<'_, Dataset> {
        let v = self.0.lock().unwrap().datasets.get(&d).cloned();
        Box::pin(async move { Ok(v) })
    }
    fn deal(&self, id: B256) -> Lookup<'_, Deal> {
        let v = self.0.lock().unwrap().deals.get(&id).cloned();
        Box::pin(async move { Ok(v) })
    }
    fn task(&self, id: B256) -> Lookup<'_, Task> {
        let v = self.0.lock().unwrap().tasks.get(&id).cloned();
        Box::pin(async move { Ok(v) })
    }
}

const MEASUREMENT: B256 = B256::new([0x4d; 32]);
const TASK: B256 = B256::new([0x7a; 32]);
const DEAL: B256 = B256::new([0xde; 32]);

fn key(n: &str) -> PrivateKey {
    PrivateKey::from_seed(n)
}

fn asset(a: Address, owner: Address) -> DealAsset {
    DealAsset { pointer: a, owner, price: Nrlc::ZERO }
}

fn world(params: &str) -> Fake {
    let (app, ds) = (Address::repeat_byte(0xaa), Address::repeat_byte(0xda));
    let mut f = Fake::default();
    let mrenclave = format!("{MEASUREMENT}");
    let owner = key("dev").address();
    f.apps.insert(
        app,
        App {
            owner,
            name: "a".into(),
            app_type: "VEIL".into(),
            multiaddr: String::new(),
            checksum: B256::ZERO,
            mrenclave,
        },
    );
    f.datasets.insert(
        ds,
        Dataset {
            owner: key("owner").address(),
            name: "d".into(),
            multiaddr: "http://x/d".into(),
            checksum: B256::ZERO,
        },
    );
    f.deals.insert(
        DEAL,
        Deal {
            app: asset(app, owner),
            dataset: asset(ds, key("owner").address()),
            workerpool: asset(Address::ZERO, Address::ZERO),
            trust: U256::from(1),
            category: 0,
            tag: B256::with_last_byte(1),
            requester: key("requester").address(),
            beneficiary: key("requester").address(),
            callback: Address::ZERO,
            params: params.into(),
            start_time: 0,
            bot_first: U256::ZERO,
            bot_size: U256::from(1),
            worker_stake: Nrlc::ZERO,
            scheduler_reward_ratio: 0,
            sponsor: key("requester").address(),
            app_order_hash: B256::ZERO,
            dataset_order_hash: B256::ZERO,
            workerpool_order_hash: B256::ZERO,
            request_order_hash: B256::ZERO,
        },
    );
    f.tasks.insert(
        TASK,
        Task {
            status: TaskStatus::Active,
            dealid: DEAL,
            idx: U256::ZERO,
            timeref: 10,
            contribution_deadline: u64::MAX / 2,
            reveal_deadline: 0,
            final_deadline: u64::MAX / 2,
            consensus_value: B256::ZERO,
            reveal_counter: 0,
            winner_counter: 0,
            contributors: vec![],
            contributions: BTreeMap::new(),
            groups: BTreeMap::new(),
            total: U256::from(1),
            result_digest: B256::ZERO,
            results: Bytes::new(),
            results_callback: Bytes::new(),
        },
    );
    f
}

async fn push(sms: &Sms, kind: SecretKind, target: Address, name: &str, value: &str, signer: &PrivateKey) {
    let challenge = sms.challenge().challenge;
    let signature = signer.sign_message_hash(&sms_message(kind, &target, name, value, &challenge));
    sms.write(kind, &target, name, &SmsWrite { value: value.into(), challenge, signature }).await.unwrap();
}

struct Setup {
    sms: Sms,
    ledger: Arc<FakeLedger>,
    _dir: tempfile::TempDir,
}

async fn setup(dev: bool, params: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(FakeLedger(Mutex::new(world(params))));
    let sms = Sms::open(&dir.path().join("sms"), &dir.path().join("master.key"), ledger.clone(), dev).unwrap();
    let ds = Address::repeat_byte(0xda);
    push(&sms, SecretKind::DatasetKey, ds, "", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", &key("owner")).await;
    let requester = key("requester");
    push(&sms, SecretKind::RequesterSecret, requester.address(), "api-token", "s3cret", &requester).await;
    push(&sms, SecretKind::RequesterSecret, key("other").address(), "theirs", "not-yours", &key("other")).await;
    Setup { sms, ledger, _dir: dir }
}

fn request(sms: &Sms, measurement: B256, taskid: B256) -> (SessionKey, SessionRequest) {
    let k = SessionKey::generate();
    let nonce = sms.challenge().challenge;
    let evidence = Evidence::Sim(SimEvidence::new(measurement, k.public(), taskid, nonce));
    (k, SessionRequest { evidence })
}

/// Runs a session after `prepare`; the refusal's rule, or "ok".
async fn check(dev: bool, params: &str, prepare: impl FnOnce(&Setup), measurement: B256, want: &str) {
    let s = setup(dev, params).await;
    prepare(&s);
    let _ = s.sms.enclave_challenge(&TASK).await;
    let (_, req) = request(&s.sms, measurement, TASK);
    let got = match s.sms.session(&req).await {
        Ok(_) => "ok".to_string(),
        Err(SmsError::Session { rule, detail }) => {
            assert!(!detail.contains("s3cret"), "{detail}");
            rule.to_string()
        }
        Err(e) => panic!("not a session refusal: {e}"),
    };
    assert_eq!(got, want, "params {params}");
}

fn edit(s: &Setup, f: impl FnOnce(&mut Fake)) {
    f(&mut s.ledger.0.lock().unwrap());
}

#[tokio::test]
async fn every_rule_refuses_by_name() {
    let asks = r#"{"iexec_secrets":{"1":"api-token"}}"#;
    check(true, asks, |_| {}, MEASUREMENT, "ok").await;
    check(false, asks, |_| {}, MEASUREMENT, "evidence").await;
    check(true, asks, |_| {}, B256::repeat_byte(1), "measurement").await;
    check(
        true,
        asks,
        |s| edit(s, |f| f.tasks.get_mut(&TASK).unwrap().status = TaskStatus::Completed),
        MEASUREMENT,
        "task",
    )
    .await;
    check(true, asks, |s| edit(s, |f| f.tasks.get_mut(&TASK).unwrap().final_deadline = 1), MEASUREMENT, "task").await;
    check(true, asks, |s| edit(s, |f| f.tasks.clear()), MEASUREMENT, "task").await;
    check(true, asks, |s| edit(s, |f| f.deals.get_mut(&DEAL).unwrap().tag = B256::ZERO), MEASUREMENT, "tee").await;
    check(true, r#"{"iexec_secrets":{"1":"theirs"}}"#, |_| {}, MEASUREMENT, "requester-secret").await;
    check(true, r#"{"iexec_result_encryption":true}"#, |_| {}, MEASUREMENT, "result-key").await;
    let no_key = |s: &Setup| edit(s, |f| f.deals.get_mut(&DEAL).unwrap().dataset.pointer = Address::repeat_byte(0xdb));
    check(true, asks, no_key, MEASUREMENT, "dataset").await;
}

#[tokio::test]
async fn no_challenge_no_secrets_and_a_nonce_serves_once() {
    let s = setup(true, "{}").await;
    let (_, req) = request(&s.sms, MEASUREMENT, TASK);
    assert!(matches!(s.sms.session(&req).await, Err(SmsError::Session { rule: "challenge", .. })));
    let challenge = s.sms.enclave_challenge(&TASK).await.unwrap();
    assert_eq!(s.sms.enclave_challenge(&TASK).await.unwrap(), challenge, "one challenge per task");
    let (k, req) = request(&s.sms, MEASUREMENT, TASK);
    let sealed = s.sms.session(&req).await.unwrap();
    assert!(matches!(s.sms.session(&req).await, Err(SmsError::Session { rule: "nonce", .. })), "replayed nonce");
    // Only the session key opens what was released; the challenge key inside matches the address.
    assert!(SessionSecrets::open(&sealed, &SessionKey::generate(), &TASK).is_err());
    let secrets = SessionSecrets::open(&sealed, &k, &TASK).unwrap();
    assert_eq!(PrivateKey::from_hex(&secrets.challenge_key).unwrap().address(), challenge);
    let d = secrets.dataset.unwrap();
    assert_eq!((d.url.as_str(), d.key.len()), ("http://x/d", 44));
}

#[tokio::test]
async fn a_challenge_only_for_active_tee_tasks() {
    let s = setup(true, "{}").await;
    edit(&s, |f| f.deals.get_mut(&DEAL).unwrap().tag = B256::ZERO);
    assert!(matches!(s.sms.enclave_challenge(&TASK).await, Err(SmsError::Session { rule: "tee", .. })));
    assert!(matches!(s.sms.enclave_challenge(&B256::ZERO).await, Err(SmsError::Session { rule: "task", .. })));
}
