//! The entry point of the state machine: check a signed transaction, run it, and either keep all of
//! its effects or none.

use crate::amount::Nrlc;
use crate::error::CoreError;
use crate::events::Event;
use crate::state::{
    App, DEFAULT_SCHEDULER_REWARD_RATIO, DEFAULT_WORKER_STAKE_RATIO, Dataset, State, Workerpool, asset_address,
};
use crate::tx::{AnyOrder, Call, SignedTx};
use crate::{market, orders::Order, tasks};
use alloy_primitives::{Address, B256};

/// Upper bounds on sizes that come from users, so one transaction cannot bloat the state.
pub const MAX_NAME: usize = 256;
pub const MAX_TEXT: usize = 4096;
pub const MAX_PARAMS: usize = 64 * 1024;
pub const MAX_RESULTS: usize = 64 * 1024;

/// A transaction whose signature has been checked: the only thing [`apply_verified`] takes.
///
/// Checking the signature needs no state, so a node does it when a transaction arrives (on as many
/// threads as it likes) and applies the verified transaction in order later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedTx {
    stx: SignedTx,
    hash: B256,
    /// For matchOrders: the orders' typed hashes and recovered signers.
    proofs: Option<crate::market::MatchProofs>,
}

impl VerifiedTx {
    pub fn signed(&self) -> &SignedTx {
        &self.stx
    }

    pub fn sender(&self) -> Address {
        self.stx.tx.from
    }

    /// The transaction hash (what the sender signed).
    pub fn hash(&self) -> B256 {
        self.hash
    }

    pub fn into_signed(self) -> SignedTx {
        self.stx
    }
}

/// Checks that `stx` is signed by the account it claims to come from and, for matchOrders,
/// recovers who signed each order under `domain` (the ledger's). Needs no state: a node runs it
/// on any thread when a transaction arrives.
pub fn verify(stx: SignedTx, domain: &crate::Domain) -> Result<VerifiedTx, CoreError> {
    verify_with(stx, domain, &crate::crypto::recover)
}

/// [`verify`], recovering order signers with `recover` (e.g. a memo: the same app, dataset and
/// workerpool orders recur in many matches).
pub fn verify_with(
    stx: SignedTx,
    domain: &crate::Domain,
    recover: crate::market::Recover<'_>,
) -> Result<VerifiedTx, CoreError> {
    let hash = stx.tx.hash();
    let signer = crate::crypto::recover_message_hash(&hash, &stx.signature).map_err(CoreError::TxSignature)?;
    if signer != stx.tx.from {
        return Err(CoreError::WrongSigner { claimed: stx.tx.from, signer });
    }
    let proofs = match &stx.tx.call {
        Call::MatchOrders { app_order, dataset_order, workerpool_order, request_order } => {
            Some(crate::market::MatchProofs::of(
                domain,
                app_order,
                dataset_order.as_ref(),
                workerpool_order,
                request_order,
                recover,
            ))
        }
        _ => None,
    };
    Ok(VerifiedTx { stx, hash, proofs })
}

/// Verifies and applies `stx` at time `now` (seconds). On success the state holds every effect and
/// the events say what happened; on error the state is exactly as before.
pub fn apply(state: &mut State, stx: &SignedTx, now: u64) -> Result<Vec<Event>, CoreError> {
    let domain = state.domain;
    apply_verified(state, &verify(stx.clone(), &domain)?, now)
}

/// Applies a verified transaction: checks chain and nonce, runs the call, keeps all or nothing.
pub fn apply_verified(state: &mut State, vtx: &VerifiedTx, now: u64) -> Result<Vec<Event>, CoreError> {
    let tx = &vtx.stx.tx;
    if tx.chain_id != state.domain.chain_id {
        return Err(CoreError::WrongChain { expected: state.domain.chain_id, got: tx.chain_id });
    }
    let sender = tx.from;
    let expected = state.accounts.get(&sender).map_or(0, |a| a.nonce);
    if tx.nonce != expected {
        return Err(CoreError::BadNonce { sender, expected, got: tx.nonce });
    }
    let mut ctx = Ctx { s: state, sender, nonce: tx.nonce, now, events: Vec::new() };
    match ctx.dispatch(&tx.call, vtx.proofs.as_ref()) {
        Ok(()) => {
            ctx.s.accounts.entry(&sender).nonce += 1;
            let events = ctx.events;
            state.commit();
            Ok(events)
        }
        Err(e) => {
            state.rollback();
            Err(e)
        }
    }
}

/// One transaction in progress.
pub(crate) struct Ctx<'a> {
    pub s: &'a mut State,
    pub sender: Address,
    pub nonce: u64,
    pub now: u64,
    pub events: Vec<Event>,
}

pub(crate) fn bounded(field: &'static str, v: &str, max: usize) -> Result<(), CoreError> {
    if v.len() > max {
        return Err(CoreError::Invalid { field, reason: format!("{} bytes, at most {max} allowed", v.len()) });
    }
    Ok(())
}

impl Ctx<'_> {
    fn dispatch(&mut self, call: &Call, proofs: Option<&crate::market::MatchProofs>) -> Result<(), CoreError> {
        match call {
            Call::Deposit { amount } => self.deposit(*amount),
            Call::Withdraw { amount } => self.withdraw(*amount),
            Call::Transfer { to, amount } => self.transfer(*to, *amount),
            Call::CreateApp { name, app_type, multiaddr, checksum, mrenclave } => {
                bounded("name", name, MAX_NAME)?;
                bounded("appType", app_type, MAX_NAME)?;
                bounded("multiaddr", multiaddr, MAX_TEXT)?;
                bounded("mrenclave", mrenclave, MAX_TEXT)?;
                let app = asset_address("app", &self.sender, self.nonce);
                let v = App {
                    owner: self.sender,
                    name: name.clone(),
                    app_type: app_type.clone(),
                    multiaddr: multiaddr.clone(),
                    checksum: *checksum,
                    mrenclave: mrenclave.clone(),
                };
                self.s.apps.insert(app, v);
                self.events.push(Event::AppCreated { app, owner: self.sender });
                Ok(())
            }
            Call::CreateDataset { name, multiaddr, checksum } => {
                bounded("name", name, MAX_NAME)?;
                bounded("multiaddr", multiaddr, MAX_TEXT)?;
                let dataset = asset_address("dataset", &self.sender, self.nonce);
                let v = Dataset {
                    owner: self.sender,
                    name: name.clone(),
                    multiaddr: multiaddr.clone(),
                    checksum: *checksum,
                };
                self.s.datasets.insert(dataset, v);
                self.events.push(Event::DatasetCreated { dataset, owner: self.sender });
                Ok(())
            }
            Call::CreateWorkerpool { description } => {
                bounded("description", description, MAX_TEXT)?;
                let workerpool = asset_address("workerpool", &self.sender, self.nonce);
                let v = Workerpool {
                    owner: self.sender,
                    description: description.clone(),
                    worker_stake_ratio: DEFAULT_WORKER_STAKE_RATIO,
                    scheduler_reward_ratio: DEFAULT_SCHEDULER_REWARD_RATIO,
                };
                self.s.workerpools.insert(workerpool, v);
                self.events.push(Event::WorkerpoolCreated { workerpool, owner: self.sender });
                Ok(())
            }
            Call::SetWorkerpoolPolicy { workerpool, worker_stake_ratio, scheduler_reward_ratio } => {
                self.set_policy(*workerpool, *worker_stake_ratio, *scheduler_reward_ratio)
            }
            Call::TransferOwnership { asset, to } => self.transfer_ownership(*asset, *to),
            Call::CreateCategory { name, description, work_clock_time_ref } => {
                self.create_category(name, description, *work_clock_time_ref)
            }
            Call::PresignOrder { order } => self.manage_order(order, true),
            Call::CancelOrder { order } => self.manage_order(order, false),
            Call::MatchOrders { app_order, dataset_order, workerpool_order, request_order } => {
                market::match_orders(self, app_order, dataset_order.as_ref(), workerpool_order, request_order, proofs)
            }
            Call::Initialize { dealid, idx } => tasks::initialize(self, dealid, *idx),
            Call::Contribute {
                taskid,
                result_hash,
                result_seal,
                enclave_challenge,
                enclave_sign,
                authorization_sign,
            } => {
                let proofs = tasks::Proofs {
                    challenge: enclave_challenge,
                    enclave_sign: enclave_sign.as_ref(),
                    authorization: authorization_sign,
                };
                tasks::contribute(self, taskid, result_hash, result_seal, &proofs)
            }
            Call::Reveal { taskid, result_digest } => tasks::reveal(self, taskid, result_digest),
            Call::Reopen { taskid } => tasks::reopen(self, taskid),
            Call::Finalize { taskid, results, results_callback } => {
                tasks::finalize(self, taskid, results, results_callback)
            }
            Call::ContributeAndFinalize {
                taskid,
                result_digest,
                results,
                results_callback,
                enclave_challenge,
                enclave_sign,
                authorization_sign,
            } => {
                let proofs = tasks::Proofs {
                    challenge: enclave_challenge,
                    enclave_sign: enclave_sign.as_ref(),
                    authorization: authorization_sign,
                };
                tasks::contribute_and_finalize(self, taskid, result_digest, results, results_callback, &proofs)
            }
            Call::Claim { taskid } => tasks::claim(self, taskid),
        }
    }

    fn deposit(&mut self, amount: Nrlc) -> Result<(), CoreError> {
        let acc = self.s.accounts.entry(&self.sender);
        acc.wallet = acc.wallet.checked_sub(amount).map_err(|_| CoreError::Insufficient {
            account: self.sender,
            what: "in its wallet",
            needed: amount,
            available: acc.wallet,
        })?;
        acc.balance = acc.balance.checked_add(amount)?;
        self.events.push(Event::Deposit { owner: self.sender, amount });
        Ok(())
    }

    fn withdraw(&mut self, amount: Nrlc) -> Result<(), CoreError> {
        let acc = self.s.accounts.entry(&self.sender);
        acc.balance = acc.balance.checked_sub(amount).map_err(|_| CoreError::Insufficient {
            account: self.sender,
            what: "free in escrow",
            needed: amount,
            available: acc.balance,
        })?;
        acc.wallet = acc.wallet.checked_add(amount)?;
        self.events.push(Event::Withdraw { owner: self.sender, amount });
        Ok(())
    }

    fn transfer(&mut self, to: Address, amount: Nrlc) -> Result<(), CoreError> {
        if to == crate::state::KITTY {
            return Err(CoreError::Invalid { field: "to", reason: "the protocol reserve takes no transfers".into() });
        }
        self.debit(self.sender, amount)?;
        self.credit(to, amount)?;
        self.events.push(Event::Transfer { from: self.sender, to, amount });
        Ok(())
    }

    fn set_policy(&mut self, pool: Address, stake: u64, reward: u64) -> Result<(), CoreError> {
        if stake > 100 || reward > 100 {
            return Err(CoreError::Invalid { field: "policy", reason: "ratios are percentages, at most 100".into() });
        }
        let sender = self.sender;
        let wp = self.s.workerpools.get_mut(&pool).ok_or(CoreError::Unknown { kind: "workerpool", address: pool })?;
        if wp.owner != sender {
            return Err(CoreError::NotOwner { asset: pool, owner: wp.owner, sender });
        }
        wp.worker_stake_ratio = stake;
        wp.scheduler_reward_ratio = reward;
        self.events.push(Event::WorkerpoolPolicyUpdate {
            workerpool: pool,
            worker_stake_ratio: stake,
            scheduler_reward_ratio: reward,
        });
        Ok(())
    }

    fn transfer_ownership(&mut self, asset: Address, to: Address) -> Result<(), CoreError> {
        if to == Address::ZERO {
            return Err(CoreError::Invalid { field: "to", reason: "cannot transfer to the zero address".into() });
        }
        let sender = self.sender;
        let owner = if let Some(a) = self.s.apps.get_mut(&asset) {
            std::mem::replace(&mut a.owner, to)
        } else if let Some(d) = self.s.datasets.get_mut(&asset) {
            std::mem::replace(&mut d.owner, to)
        } else if let Some(w) = self.s.workerpools.get_mut(&asset) {
            std::mem::replace(&mut w.owner, to)
        } else {
            return Err(CoreError::Unknown { kind: "asset", address: asset });
        };
        if owner != sender {
            return Err(CoreError::NotOwner { asset, owner, sender });
        }
        self.events.push(Event::OwnershipTransferred { asset, from: owner, to });
        Ok(())
    }

    fn create_category(&mut self, name: &str, description: &str, time_ref: u64) -> Result<(), CoreError> {
        if self.sender != self.s.admin {
            return Err(CoreError::NotAdmin { admin: self.s.admin });
        }
        bounded("name", name, MAX_NAME)?;
        bounded("description", description, MAX_TEXT)?;
        if time_ref == 0 || time_ref > 10 * 365 * 86400 {
            return Err(CoreError::Invalid {
                field: "workClockTimeRef",
                reason: "must be between 1 s and 10 years".into(),
            });
        }
        let id = self.s.categories.len() as u64;
        let c = crate::state::Category {
            name: name.into(),
            description: description.into(),
            work_clock_time_ref: time_ref,
        };
        self.s.categories.insert(id, c);
        self.events.push(Event::CategoryCreated { id, name: name.into(), work_clock_time_ref: time_ref });
        Ok(())
    }

    /// Presign (`sign`) or cancel an order; only its owner (or requester) may.
    fn manage_order(&mut self, order: &AnyOrder, sign: bool) -> Result<(), CoreError> {
        let d = self.s.domain;
        let (hash, volume, owner) = match order {
            AnyOrder::App(o) => (o.typed_hash(&d), o.volume, self.asset_owner("app", &o.app)?),
            AnyOrder::Dataset(o) => (o.typed_hash(&d), o.volume, self.asset_owner("dataset", &o.dataset)?),
            AnyOrder::Workerpool(o) => (o.typed_hash(&d), o.volume, self.asset_owner("workerpool", &o.workerpool)?),
            AnyOrder::Request(o) => {
                bounded("params", &o.params, MAX_PARAMS)?;
                (o.typed_hash(&d), o.volume, o.requester)
            }
        };
        if owner != self.sender {
            return Err(CoreError::NotOwner { asset: owner, owner, sender: self.sender });
        }
        if sign {
            self.s.presigned.insert(hash, owner);
            self.events.push(Event::OrderPresigned { hash, signer: owner });
        } else {
            self.s.consumed.insert(hash, volume);
            self.events.push(Event::OrderCancelled { hash });
        }
        Ok(())
    }

    pub(crate) fn asset_owner(&self, kind: &'static str, a: &Address) -> Result<Address, CoreError> {
        let owner = match kind {
            "app" => self.s.apps.get(a).map(|x| x.owner),
            "dataset" => self.s.datasets.get(a).map(|x| x.owner),
            _ => self.s.workerpools.get(a).map(|x| x.owner),
        };
        owner.ok_or(CoreError::Unknown { kind, address: *a })
    }

    // ---- the four money primitives (plus plain balance moves) ----

    fn debit(&mut self, who: Address, amount: Nrlc) -> Result<(), CoreError> {
        let acc = self.s.accounts.entry(&who);
        acc.balance = acc.balance.checked_sub(amount).map_err(|_| CoreError::Insufficient {
            account: who,
            what: "free in escrow",
            needed: amount,
            available: acc.balance,
        })?;
        Ok(())
    }

    fn credit(&mut self, who: Address, amount: Nrlc) -> Result<(), CoreError> {
        let acc = self.s.accounts.entry(&who);
        acc.balance = acc.balance.checked_add(amount)?;
        Ok(())
    }

    /// balance → locked.
    pub(crate) fn lock(&mut self, who: Address, amount: Nrlc) -> Result<(), CoreError> {
        if amount.is_zero() {
            return Ok(());
        }
        self.debit(who, amount)?;
        let acc = self.s.accounts.entry(&who);
        acc.locked = acc.locked.checked_add(amount)?;
        self.events.push(Event::Lock { owner: who, amount });
        Ok(())
    }

    /// locked → balance.
    pub(crate) fn unlock(&mut self, who: Address, amount: Nrlc) -> Result<(), CoreError> {
        if amount.is_zero() {
            return Ok(());
        }
        self.take_locked(who, amount)?;
        self.credit(who, amount)?;
        self.events.push(Event::Unlock { owner: who, amount });
        Ok(())
    }

    /// Takes from locked; the caller gives it to someone with `reward` (or to the reserve).
    pub(crate) fn seize(&mut self, who: Address, amount: Nrlc, taskid: B256) -> Result<(), CoreError> {
        if amount.is_zero() {
            return Ok(());
        }
        self.take_locked(who, amount)?;
        self.events.push(Event::Seize { owner: who, amount, taskid });
        Ok(())
    }

    /// Credits the balance.
    pub(crate) fn reward(&mut self, who: Address, amount: Nrlc, taskid: B256) -> Result<(), CoreError> {
        if amount.is_zero() {
            return Ok(());
        }
        self.credit(who, amount)?;
        self.events.push(Event::Reward { owner: who, amount, taskid });
        Ok(())
    }

    fn take_locked(&mut self, who: Address, amount: Nrlc) -> Result<(), CoreError> {
        let acc = self.s.accounts.entry(&who);
        acc.locked = acc.locked.checked_sub(amount).map_err(|_| CoreError::Insufficient {
            account: who,
            what: "locked",
            needed: amount,
            available: acc.locked,
        })?;
        Ok(())
    }

    /// Adds to the reserve (the kitty's locked amount): PoCo's reward then lock of the kitty.
    pub(crate) fn fill_reserve(&mut self, amount: Nrlc, taskid: B256) -> Result<(), CoreError> {
        self.reward(crate::state::KITTY, amount, taskid)?;
        self.lock(crate::state::KITTY, amount)
    }
}
