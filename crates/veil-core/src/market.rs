//! `matchOrders`: every check of DESIGN.md §3.3 in PoCo's order, then the deal and its locks.

use crate::amount::Nrlc;
use crate::apply::{Ctx, MAX_PARAMS, bounded};
use crate::crypto::SignatureError;
use crate::crypto::keccak_packed;
use crate::eip712::Domain;
use crate::error::{CoreError, MatchError};
use crate::events::Event;
use crate::orders::{AppOrder, DatasetOrder, Order, RequestOrder, Signed, WorkerpoolOrder};
use crate::state::{Deal, DealAsset, WORKERPOOL_STAKE_RATIO};
use crate::tag;
use alloy_primitives::{Address, B256, U256};

/// Passes when the restriction is unset or names exactly `actual`.
fn restriction(code: u8, what: &'static str, restriction: Address, actual: Address) -> Result<(), MatchError> {
    if restriction == Address::ZERO || restriction == actual {
        Ok(())
    } else {
        Err(MatchError::Restriction { code, what, restriction, actual })
    }
}

/// An order's typed hash and, when it carries a signature, who signed it. Computing it needs no
/// state, so [`crate::verify`] does it when a transaction arrives, off the ordering path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderProof {
    pub hash: B256,
    pub signer: Option<Result<Address, SignatureError>>,
}

/// How a signer is recovered from a hash and a signature: [`crate::crypto::recover`], or a memo of
/// it kept by a shell (the result is a pure function of its inputs).
pub type Recover<'a> = &'a dyn Fn(&B256, &crate::Signature) -> Result<Address, SignatureError>;

impl OrderProof {
    pub fn of<O: Order>(order: &Signed<O>, domain_separator: &B256, recover: Recover<'_>) -> OrderProof {
        let hash = crate::eip712::typed_hash_with(domain_separator, &order.order.struct_hash());
        let signer = order.sign.as_ref().map(|s| recover(&hash, s));
        OrderProof { hash, signer }
    }
}

/// The proofs of a matchOrders' four orders (no dataset: `None`), for one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchProofs {
    pub domain: Domain,
    pub app: OrderProof,
    pub dataset: Option<OrderProof>,
    pub workerpool: OrderProof,
    pub request: OrderProof,
}

impl MatchProofs {
    pub fn of(
        domain: &Domain,
        app: &Signed<AppOrder>,
        dataset: Option<&Signed<DatasetOrder>>,
        pool: &Signed<WorkerpoolOrder>,
        req: &Signed<RequestOrder>,
        recover: Recover<'_>,
    ) -> MatchProofs {
        let sep = domain.separator();
        MatchProofs {
            domain: *domain,
            app: OrderProof::of(app, &sep, recover),
            dataset: dataset.filter(|d| d.order.dataset != Address::ZERO).map(|d| OrderProof::of(d, &sep, recover)),
            workerpool: OrderProof::of(pool, &sep, recover),
            request: OrderProof::of(req, &sep, recover),
        }
    }
}

pub(crate) fn match_orders(
    ctx: &mut Ctx<'_>,
    app: &Signed<AppOrder>,
    dataset: Option<&Signed<DatasetOrder>>,
    pool: &Signed<WorkerpoolOrder>,
    req: &Signed<RequestOrder>,
    proofs: Option<&MatchProofs>,
) -> Result<(), CoreError> {
    bounded("params", &req.order.params, MAX_PARAMS)?;
    let empty_dataset = Signed::presigned(DatasetOrder::none());
    let ds = dataset.unwrap_or(&empty_dataset);
    let has_dataset = ds.order.dataset != Address::ZERO;
    let (a, d, w, r) = (&app.order, &ds.order, &pool.order, &req.order);

    check_terms(ctx, a, d, w, r)?;

    // Proofs made for another domain are of no use here: make them now.
    let computed;
    let p = match proofs.filter(|p| p.domain == ctx.s.domain) {
        Some(p) => p,
        None => {
            computed = MatchProofs::of(&ctx.s.domain, app, dataset, pool, req, &crate::crypto::recover);
            &computed
        }
    };
    let app_owner = registered_and_signed(ctx, 0x20, "app", a.app, &p.app)?;
    let (dataset_hash, dataset_owner) = match (&p.dataset, has_dataset) {
        (Some(dp), true) => (dp.hash, registered_and_signed(ctx, 0x30, "dataset", d.dataset, dp)?),
        _ => (B256::ZERO, Address::ZERO),
    };
    let pool_owner = registered_and_signed(ctx, 0x40, "workerpool", w.workerpool, &p.workerpool)?;
    check_signature(ctx, 0x50, "request", r.requester, &p.request)?;
    let (app_hash, pool_hash, req_hash) = (p.app.hash, p.workerpool.hash, p.request.hash);

    let left = |o: U256, h: &B256| o.saturating_sub(ctx.s.consumed(h));
    let (va, vw, vr) = (left(a.volume, &app_hash), left(w.volume, &pool_hash), left(r.volume, &req_hash));
    let vd = if has_dataset { left(d.volume, &dataset_hash) } else { U256::MAX };
    let volume = va.min(vd).min(vw).min(vr);
    if volume.is_zero() {
        let ds = if has_dataset { vd.to_string() } else { "none".into() };
        let remaining = format!("app {va}, dataset {ds}, workerpool {vw}, request {vr}");
        return Err(MatchError::NoVolume { remaining }.into());
    }

    let wp = ctx
        .s
        .workerpools
        .get(&w.workerpool)
        .cloned()
        .ok_or(CoreError::Unknown { kind: "workerpool", address: w.workerpool })?;
    let req_consumed = ctx.s.consumed(&req_hash);
    let dealid = keccak_packed(&[&req_hash.0, &req_consumed.to_be_bytes::<32>()]);
    let combined = combined_tag(a, d, r);
    let pool_price = Nrlc(w.workerpoolprice);
    let deal = Deal {
        app: DealAsset { pointer: a.app, owner: app_owner, price: Nrlc(a.appprice) },
        dataset: if has_dataset {
            DealAsset { pointer: d.dataset, owner: dataset_owner, price: Nrlc(d.datasetprice) }
        } else {
            DealAsset::default()
        },
        workerpool: DealAsset { pointer: w.workerpool, owner: pool_owner, price: pool_price },
        trust: r.trust.max(U256::from(1)),
        category: u64::try_from(r.category).map_err(|_| MatchError::UnknownCategory(r.category))?,
        tag: combined,
        requester: r.requester,
        beneficiary: r.beneficiary,
        callback: r.callback,
        params: r.params.clone(),
        start_time: ctx.now,
        bot_first: req_consumed,
        bot_size: volume,
        worker_stake: pool_price.percentage(wp.worker_stake_ratio)?,
        scheduler_reward_ratio: wp.scheduler_reward_ratio,
        sponsor: r.requester,
        app_order_hash: app_hash,
        dataset_order_hash: dataset_hash,
        workerpool_order_hash: pool_hash,
        request_order_hash: req_hash,
    };

    for h in [app_hash, pool_hash, req_hash].into_iter().chain(has_dataset.then_some(dataset_hash)) {
        let c = ctx
            .s
            .consumed(&h)
            .checked_add(volume)
            .ok_or(CoreError::Invalid { field: "volume", reason: "consumed volume overflows".into() })?;
        ctx.s.consumed.insert(h, c);
    }
    let sponsor_lock = deal.task_price()?.checked_mul(volume)?;
    ctx.lock(deal.sponsor, sponsor_lock)?;
    let pool_lock = pool_price.percentage(WORKERPOOL_STAKE_RATIO)?.checked_mul(volume)?;
    ctx.lock(pool_owner, pool_lock)?;
    ctx.s.deals.insert(dealid, deal);
    // PoCo's order: the scheduler's notice, then the match (found by the differential test).
    ctx.events.push(Event::SchedulerNotice { workerpool: w.workerpool, dealid });
    ctx.events.push(Event::OrdersMatched {
        dealid,
        app_hash,
        dataset_hash,
        workerpool_hash: pool_hash,
        request_hash: req_hash,
        volume,
    });
    Ok(())
}

/// `app.tag | (dataset.tag & ~0xE) | request.tag`.
pub fn combined_tag(a: &AppOrder, d: &DatasetOrder, r: &RequestOrder) -> B256 {
    tag::or(&tag::or(&a.tag, &tag::dataset_mask(&d.tag)), &r.tag)
}

/// Checks 0x00 to 0x1b: the terms the four orders must agree on.
fn check_terms(
    ctx: &Ctx<'_>,
    a: &AppOrder,
    d: &DatasetOrder,
    w: &WorkerpoolOrder,
    r: &RequestOrder,
) -> Result<(), MatchError> {
    if r.category != w.category {
        return Err(MatchError::Category { request: r.category, workerpool: w.category });
    }
    let known = u64::try_from(r.category).is_ok_and(|c| ctx.s.categories.contains(&c));
    if !known {
        return Err(MatchError::UnknownCategory(r.category));
    }
    if r.trust > w.trust {
        return Err(MatchError::Trust { request: r.trust, workerpool: w.trust });
    }
    if r.appmaxprice < a.appprice {
        return Err(MatchError::AppPrice { price: a.appprice, max: r.appmaxprice });
    }
    if r.datasetmaxprice < d.datasetprice {
        return Err(MatchError::DatasetPrice { price: d.datasetprice, max: r.datasetmaxprice });
    }
    if r.workerpoolmaxprice < w.workerpoolprice {
        return Err(MatchError::WorkerpoolPrice { price: w.workerpoolprice, max: r.workerpoolmaxprice });
    }
    let t = combined_tag(a, d, r);
    if !tag::is_subset(&t, &w.tag) {
        return Err(MatchError::Tag { tag: t, offered: w.tag });
    }
    if tag::has_tee(&t) != tag::has_tee(&a.tag) {
        return Err(MatchError::TeeBit { tag: t });
    }
    if r.app != a.app {
        return Err(MatchError::AppMismatch { request: r.app, order: a.app });
    }
    if r.dataset != d.dataset {
        return Err(MatchError::DatasetMismatch { request: r.dataset, order: d.dataset });
    }
    restriction(0x12, "the request's workerpool", r.workerpool, w.workerpool)?;
    restriction(0x13, "the app order's dataset", a.datasetrestrict, d.dataset)?;
    restriction(0x14, "the app order's workerpool", a.workerpoolrestrict, w.workerpool)?;
    restriction(0x15, "the app order's requester", a.requesterrestrict, r.requester)?;
    restriction(0x16, "the dataset order's app", d.apprestrict, a.app)?;
    restriction(0x17, "the dataset order's workerpool", d.workerpoolrestrict, w.workerpool)?;
    restriction(0x18, "the dataset order's requester", d.requesterrestrict, r.requester)?;
    restriction(0x19, "the workerpool order's app", w.apprestrict, a.app)?;
    restriction(0x1a, "the workerpool order's dataset", w.datasetrestrict, d.dataset)?;
    restriction(0x1b, "the workerpool order's requester", w.requesterrestrict, r.requester)?;
    Ok(())
}

fn registered_and_signed(
    ctx: &Ctx<'_>,
    code: u8,
    kind: &'static str,
    asset: Address,
    proof: &OrderProof,
) -> Result<Address, CoreError> {
    let owner = ctx.asset_owner(kind, &asset).map_err(|_| MatchError::NotRegistered { code, kind, address: asset })?;
    check_signature(ctx, code + 1, kind, owner, proof)?;
    Ok(owner)
}

/// Valid when the order was presigned by `signer` on the ledger, or its signature recovers to `signer`.
fn check_signature(
    ctx: &Ctx<'_>,
    code: u8,
    kind: &'static str,
    signer: Address,
    proof: &OrderProof,
) -> Result<(), MatchError> {
    if ctx.s.presigned.get(&proof.hash) == Some(&signer) {
        return Ok(());
    }
    let bad = |reason: String| MatchError::BadSignature { code, kind, reason };
    match &proof.signer {
        None => Err(bad("no signature and not presigned".into())),
        Some(Ok(who)) if *who == signer => Ok(()),
        Some(Ok(who)) => Err(bad(format!("signed by {who}, expected {signer}"))),
        Some(Err(e)) => Err(bad(e.to_string())),
    }
}
