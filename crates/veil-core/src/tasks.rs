//! Tasks: initialize, contribute, consensus, reveal, reopen, finalize, contributeAndFinalize and
//! claim, with the deadlines, stakes, rewards, scores and reserve of PoCo v6 (DESIGN.md §3.4).

use crate::amount::Nrlc;
use crate::apply::{Ctx, MAX_RESULTS};
use crate::crypto::{Signature, recover_message_hash};
use crate::error::{CoreError, TaskError};
use crate::events::Event;
use crate::state::{
    CONTRIBUTION_DEADLINE_RATIO, Contribution, ContributionStatus, Deal, FINAL_DEADLINE_RATIO, KITTY, KITTY_MIN,
    KITTY_RATIO, REVEAL_DEADLINE_RATIO, Task, TaskStatus, task_id,
};
use crate::tag;
use crate::tx::{authorization_hash, enclave_message, result_hash, result_seal};
use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use std::collections::BTreeMap;

fn deal_of(ctx: &Ctx<'_>, dealid: &B256) -> Result<Deal, CoreError> {
    ctx.s.deals.get(dealid).cloned().ok_or(CoreError::UnknownId { kind: "deal", id: *dealid })
}

fn task_of(ctx: &Ctx<'_>, taskid: &B256) -> Result<Task, CoreError> {
    ctx.s.tasks.get(taskid).cloned().ok_or(CoreError::UnknownId { kind: "task", id: *taskid })
}

fn status(taskid: &B256, t: &Task, want: &[TaskStatus], expected: &'static str) -> Result<(), TaskError> {
    if want.contains(&t.status) {
        Ok(())
    } else {
        Err(TaskError::Status { taskid: *taskid, actual: t.status, expected })
    }
}

fn only_pool_owner(ctx: &Ctx<'_>, deal: &Deal) -> Result<(), CoreError> {
    if ctx.sender != deal.workerpool.owner {
        return Err(CoreError::NotOwner {
            asset: deal.workerpool.pointer,
            owner: deal.workerpool.owner,
            sender: ctx.sender,
        });
    }
    Ok(())
}

fn bounded_bytes(field: &'static str, b: &Bytes) -> Result<(), CoreError> {
    if b.len() > MAX_RESULTS {
        return Err(CoreError::Invalid { field, reason: format!("{} bytes, at most {MAX_RESULTS} allowed", b.len()) });
    }
    Ok(())
}

pub(crate) fn initialize(ctx: &mut Ctx<'_>, dealid: &B256, idx: U256) -> Result<(), CoreError> {
    let deal = deal_of(ctx, dealid)?;
    let end = deal.bot_first.saturating_add(deal.bot_size);
    if idx < deal.bot_first || idx >= end {
        return Err(TaskError::IndexOutOfRange { idx, first: deal.bot_first, size: deal.bot_size }.into());
    }
    let taskid = task_id(dealid, idx);
    if let Some(t) = ctx.s.tasks.get(&taskid) {
        return Err(TaskError::Status { taskid, actual: t.status, expected: "UNSET (not yet initialized)" }.into());
    }
    let cat = ctx
        .s
        .categories
        .get(&deal.category)
        .ok_or(CoreError::UnknownId { kind: "category", id: B256::from(U256::from(deal.category)) })?;
    let timeref = cat.work_clock_time_ref;
    let deadline = |ratio: u64| deal.start_time.saturating_add(timeref.saturating_mul(ratio));
    let task = Task {
        status: TaskStatus::Active,
        dealid: *dealid,
        idx,
        timeref,
        contribution_deadline: deadline(CONTRIBUTION_DEADLINE_RATIO),
        reveal_deadline: 0,
        final_deadline: deadline(FINAL_DEADLINE_RATIO),
        consensus_value: B256::ZERO,
        reveal_counter: 0,
        winner_counter: 0,
        contributors: Vec::new(),
        contributions: BTreeMap::new(),
        groups: BTreeMap::new(),
        total: U256::from(1),
        result_digest: B256::ZERO,
        results: Bytes::new(),
        results_callback: Bytes::new(),
    };
    ctx.s.tasks.insert(taskid, task);
    ctx.events.push(Event::TaskInitialize { taskid, workerpool: deal.workerpool.pointer });
    Ok(())
}

/// What a worker shows with its result: the scheduler's authorization and, in an enclave, the
/// enclave's signature by the challenge key.
pub(crate) struct Proofs<'a> {
    pub challenge: &'a Address,
    pub enclave_sign: Option<&'a Signature>,
    pub authorization: &'a Signature,
}

/// The checks shared by contribute and contributeAndFinalize: authorization and enclave signature.
fn check_worker_proofs(
    ctx: &Ctx<'_>,
    deal: &Deal,
    taskid: &B256,
    rhash: &B256,
    rseal: &B256,
    p: &Proofs<'_>,
) -> Result<(), CoreError> {
    let Proofs { challenge, enclave_sign, authorization } = *p;
    if tag::has_tee(&deal.tag) && *challenge == Address::ZERO {
        return Err(TaskError::MissingEnclaveChallenge.into());
    }
    let auth = authorization_hash(&ctx.sender, taskid, challenge);
    if recover_message_hash(&auth, authorization).ok() != Some(deal.workerpool.owner) {
        return Err(TaskError::BadAuthorization { owner: deal.workerpool.owner }.into());
    }
    if *challenge != Address::ZERO {
        let msg = enclave_message(rhash, rseal);
        let ok = enclave_sign.and_then(|s| recover_message_hash(&msg, s).ok()) == Some(*challenge);
        if !ok {
            return Err(TaskError::BadEnclaveSignature { challenge: *challenge }.into());
        }
    }
    Ok(())
}

fn contribution_open(ctx: &Ctx<'_>, taskid: &B256, task: &Task) -> Result<(), CoreError> {
    status(taskid, task, &[TaskStatus::Active], "ACTIVE")?;
    if ctx.now >= task.contribution_deadline {
        return Err(TaskError::ContributionDeadline { deadline: task.contribution_deadline, now: ctx.now }.into());
    }
    if task.contributions.contains_key(&ctx.sender) {
        return Err(TaskError::AlreadyContributed(ctx.sender).into());
    }
    Ok(())
}

pub(crate) fn contribute(
    ctx: &mut Ctx<'_>,
    taskid: &B256,
    rhash: &B256,
    rseal: &B256,
    proofs: &Proofs<'_>,
) -> Result<(), CoreError> {
    let mut task = task_of(ctx, taskid)?;
    contribution_open(ctx, taskid, &task)?;
    let deal = deal_of(ctx, &task.dealid)?;
    check_worker_proofs(ctx, &deal, taskid, rhash, rseal, proofs)?;
    let worker = ctx.sender;
    ctx.lock(worker, deal.worker_stake)?;

    let score = ctx.s.account(&worker).score;
    let w = U256::from((score / 3).max(3) - 1);
    let g = task.groups.get(rhash).copied().unwrap_or(U256::ZERO);
    let grown = g.max(U256::from(1)).checked_mul(w).ok_or(TaskError::WeightOverflow)?;
    let delta = grown - g;
    task.groups.insert(*rhash, grown);
    task.total = task.total.checked_add(delta).ok_or(TaskError::WeightOverflow)?;
    task.contributors.push(worker);
    task.contributions.insert(
        worker,
        Contribution {
            status: ContributionStatus::Contributed,
            result_hash: *rhash,
            result_seal: *rseal,
            enclave_challenge: *proofs.challenge,
            weight: u64::from(w.bit_len() as u32).saturating_sub(1),
        },
    );
    ctx.events.push(Event::TaskContribute { taskid: *taskid, worker, hash: *rhash });

    // Consensus when group × trust > total × (trust − 1).
    let trust = deal.trust;
    let lhs = grown.checked_mul(trust).ok_or(TaskError::WeightOverflow)?;
    let rhs = task.total.checked_mul(trust - U256::from(1)).ok_or(TaskError::WeightOverflow)?;
    if lhs > rhs {
        task.status = TaskStatus::Revealing;
        task.consensus_value = *rhash;
        task.reveal_deadline = ctx.now.saturating_add(task.timeref.saturating_mul(REVEAL_DEADLINE_RATIO));
        task.reveal_counter = 0;
        task.winner_counter = task
            .contributions
            .values()
            .filter(|c| c.status == ContributionStatus::Contributed && c.result_hash == *rhash)
            .count() as u64;
        ctx.events.push(Event::TaskConsensus { taskid: *taskid, consensus: *rhash });
    }
    ctx.s.tasks.insert(*taskid, task);
    Ok(())
}

pub(crate) fn reveal(ctx: &mut Ctx<'_>, taskid: &B256, digest: &B256) -> Result<(), CoreError> {
    let mut task = task_of(ctx, taskid)?;
    status(taskid, &task, &[TaskStatus::Revealing], "REVEALING")?;
    if ctx.now >= task.reveal_deadline {
        return Err(TaskError::RevealDeadline { deadline: task.reveal_deadline, now: ctx.now }.into());
    }
    let worker = ctx.sender;
    let consensus = task.consensus_value;
    let c = task
        .contributions
        .get_mut(&worker)
        .filter(|c| c.status == ContributionStatus::Contributed && c.result_hash == consensus)
        .ok_or(TaskError::NotAWinner(worker))?;
    if c.result_hash != result_hash(taskid, digest) || c.result_seal != result_seal(&worker, taskid, digest) {
        return Err(TaskError::RevealMismatch.into());
    }
    c.status = ContributionStatus::Proved;
    task.reveal_counter += 1;
    task.result_digest = *digest;
    ctx.s.tasks.insert(*taskid, task);
    ctx.events.push(Event::TaskReveal { taskid: *taskid, worker, digest: *digest });
    Ok(())
}

pub(crate) fn reopen(ctx: &mut Ctx<'_>, taskid: &B256) -> Result<(), CoreError> {
    let mut task = task_of(ctx, taskid)?;
    let deal = deal_of(ctx, &task.dealid)?;
    only_pool_owner(ctx, &deal)?;
    status(taskid, &task, &[TaskStatus::Revealing], "REVEALING")?;
    if ctx.now >= task.final_deadline {
        return Err(TaskError::FinalDeadline { deadline: task.final_deadline, now: ctx.now }.into());
    }
    if ctx.now < task.reveal_deadline {
        return Err(TaskError::RevealNotOver { deadline: task.reveal_deadline, now: ctx.now }.into());
    }
    if task.reveal_counter != 0 {
        return Err(TaskError::AlreadyRevealed.into());
    }
    let consensus = task.consensus_value;
    for c in task.contributions.values_mut().filter(|c| c.result_hash == consensus) {
        c.status = ContributionStatus::Rejected;
    }
    let g = task.groups.insert(consensus, U256::ZERO).unwrap_or(U256::ZERO);
    task.total = task.total.saturating_sub(g);
    task.status = TaskStatus::Active;
    task.consensus_value = B256::ZERO;
    task.reveal_deadline = 0;
    task.winner_counter = 0;
    ctx.s.tasks.insert(*taskid, task);
    ctx.events.push(Event::TaskReopen { taskid: *taskid });
    Ok(())
}

pub(crate) fn finalize(ctx: &mut Ctx<'_>, taskid: &B256, results: &Bytes, callback: &Bytes) -> Result<(), CoreError> {
    bounded_bytes("results", results)?;
    bounded_bytes("resultsCallback", callback)?;
    let mut task = task_of(ctx, taskid)?;
    let deal = deal_of(ctx, &task.dealid)?;
    only_pool_owner(ctx, &deal)?;
    status(taskid, &task, &[TaskStatus::Revealing], "REVEALING")?;
    if ctx.now >= task.final_deadline {
        return Err(TaskError::FinalDeadline { deadline: task.final_deadline, now: ctx.now }.into());
    }
    let all_revealed = task.reveal_counter == task.winner_counter;
    let some_after_deadline = task.reveal_counter > 0 && task.reveal_deadline <= ctx.now;
    if !(all_revealed || some_after_deadline) {
        return Err(TaskError::NotAllRevealed { revealed: task.reveal_counter, winners: task.winner_counter }.into());
    }
    check_callback(&deal, &task.result_digest, callback)?;
    task.status = TaskStatus::Completed;
    task.results = results.clone();
    task.results_callback = callback.clone();
    success_work(ctx, &deal, taskid)?;
    distribute_rewards(ctx, &deal, &task, taskid)?;
    ctx.s.tasks.insert(*taskid, task);
    ctx.events.push(Event::TaskFinalize { taskid: *taskid, results: results.clone() });
    Ok(())
}

/// PoCo: valid when there is no callback and no callback data, or when the data hashes to the digest.
fn check_callback(deal: &Deal, digest: &B256, callback: &Bytes) -> Result<(), TaskError> {
    let none = deal.callback == Address::ZERO && callback.is_empty();
    if none || keccak256(callback) == *digest { Ok(()) } else { Err(TaskError::CallbackMismatch) }
}

pub(crate) fn contribute_and_finalize(
    ctx: &mut Ctx<'_>,
    taskid: &B256,
    digest: &B256,
    results: &Bytes,
    callback: &Bytes,
    proofs: &Proofs<'_>,
) -> Result<(), CoreError> {
    bounded_bytes("results", results)?;
    bounded_bytes("resultsCallback", callback)?;
    let mut task = task_of(ctx, taskid)?;
    contribution_open(ctx, taskid, &task)?;
    let deal = deal_of(ctx, &task.dealid)?;
    if deal.trust != U256::from(1) {
        return Err(TaskError::TrustNotOne(deal.trust).into());
    }
    if !task.contributors.is_empty() {
        return Err(TaskError::HasContributors.into());
    }
    let worker = ctx.sender;
    let rhash = result_hash(taskid, digest);
    let rseal = result_seal(&worker, taskid, digest);
    check_worker_proofs(ctx, &deal, taskid, &rhash, &rseal, proofs)?;
    check_callback(&deal, digest, callback)?;

    task.contributors.push(worker);
    task.contributions.insert(
        worker,
        Contribution {
            status: ContributionStatus::Proved,
            result_hash: rhash,
            result_seal: rseal,
            enclave_challenge: *proofs.challenge,
            weight: 0,
        },
    );
    task.status = TaskStatus::Completed;
    task.consensus_value = rhash;
    task.reveal_deadline = ctx.now.saturating_add(task.timeref.saturating_mul(REVEAL_DEADLINE_RATIO));
    task.reveal_counter = 1;
    task.winner_counter = 1;
    task.result_digest = *digest;
    task.results = results.clone();
    task.results_callback = callback.clone();
    success_work(ctx, &deal, taskid)?;
    let price = deal.workerpool.price;
    let worker_share = price.percentage(100 - deal.scheduler_reward_ratio.min(100))?;
    ctx.reward(worker, worker_share, *taskid)?;
    ctx.reward(deal.workerpool.owner, price.checked_sub(worker_share)?, *taskid)?;
    ctx.s.tasks.insert(*taskid, task);
    // PoCo's order: the payments first, then the task's four events (found by the differential test).
    ctx.events.push(Event::TaskContribute { taskid: *taskid, worker, hash: rhash });
    ctx.events.push(Event::TaskConsensus { taskid: *taskid, consensus: rhash });
    ctx.events.push(Event::TaskReveal { taskid: *taskid, worker, digest: *digest });
    ctx.events.push(Event::TaskFinalize { taskid: *taskid, results: results.clone() });
    Ok(())
}

/// Pays app and dataset owners, frees the pool stake and hands the scheduler its reserve bonus.
fn success_work(ctx: &mut Ctx<'_>, deal: &Deal, taskid: &B256) -> Result<(), CoreError> {
    ctx.seize(deal.sponsor, deal.task_price()?, *taskid)?;
    ctx.reward(deal.app.owner, deal.app.price, *taskid)?;
    if deal.has_dataset() {
        ctx.reward(deal.dataset.owner, deal.dataset.price, *taskid)?;
    }
    ctx.unlock(deal.workerpool.owner, deal.pool_stake()?)?;
    let k = ctx.s.account(&KITTY).locked;
    if !k.is_zero() {
        let bonus = k.percentage(KITTY_RATIO)?.max(Nrlc::new(KITTY_MIN)).min(k);
        ctx.seize(KITTY, bonus, *taskid)?;
        ctx.reward(deal.workerpool.owner, bonus, *taskid)?;
    }
    Ok(())
}

fn distribute_rewards(ctx: &mut Ctx<'_>, deal: &Deal, task: &Task, taskid: &B256) -> Result<(), CoreError> {
    let proved = |c: &Contribution| c.status == ContributionStatus::Proved;
    let mut total_reward = deal.workerpool.price;
    let mut total_weight = U256::ZERO;
    for c in task.contributors.iter().filter_map(|w| task.contributions.get(w)) {
        if proved(c) {
            total_weight += U256::from(c.weight);
        } else {
            total_reward = total_reward.checked_add(deal.worker_stake)?;
        }
    }
    let workers_reward = total_reward.percentage(100 - deal.scheduler_reward_ratio.min(100))?;
    let several = task.contributors.len() > 1;
    for worker in &task.contributors {
        let Some(c) = task.contributions.get(worker) else { continue };
        if proved(c) {
            let share = if total_weight.is_zero() {
                Nrlc::ZERO
            } else {
                workers_reward.mul_div(U256::from(c.weight), total_weight)?
            };
            total_reward = total_reward.checked_sub(share)?;
            ctx.unlock(*worker, deal.worker_stake)?;
            ctx.reward(*worker, share, *taskid)?;
            if several {
                let acc = ctx.s.accounts.entry(worker);
                acc.score = acc.score.saturating_add(1);
                ctx.events.push(Event::AccurateContribution { worker: *worker, taskid: *taskid });
            }
        } else {
            ctx.seize(*worker, deal.worker_stake, *taskid)?;
            let acc = ctx.s.accounts.entry(worker);
            acc.score = acc.score.saturating_mul(2) / 3;
            ctx.events.push(Event::FaultyContribution { worker: *worker, taskid: *taskid });
        }
    }
    ctx.reward(deal.workerpool.owner, total_reward, *taskid)
}

pub(crate) fn claim(ctx: &mut Ctx<'_>, taskid: &B256) -> Result<(), CoreError> {
    let mut task = task_of(ctx, taskid)?;
    status(taskid, &task, &[TaskStatus::Active, TaskStatus::Revealing], "ACTIVE or REVEALING")?;
    if ctx.now < task.final_deadline {
        return Err(TaskError::NotExpired { deadline: task.final_deadline, now: ctx.now }.into());
    }
    let deal = deal_of(ctx, &task.dealid)?;
    task.status = TaskStatus::Failed;
    ctx.unlock(deal.sponsor, deal.task_price()?)?;
    let stake = deal.pool_stake()?;
    ctx.seize(deal.workerpool.owner, stake, *taskid)?;
    ctx.fill_reserve(stake, *taskid)?;
    for worker in &task.contributors {
        ctx.unlock(*worker, deal.worker_stake)?;
    }
    ctx.s.tasks.insert(*taskid, task);
    ctx.events.push(Event::TaskClaimed { taskid: *taskid });
    Ok(())
}
