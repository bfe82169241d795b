//! What the explorer remembers as blocks arrive, beyond what the ledger answers directly: recent
//! blocks, deals and tasks, each task's timeline, which deals used an asset, when assets were
//! registered, accounts' money movements, what datasets and apps earned, and per-minute throughput.
//! Pure: blocks (with the deals and task→deal links the follower looked up) in, state out. Lists
//! and the task and deal tables are bounded (the oldest forgotten first); per-account and per-asset
//! entries grow with the number of accounts and assets.

use std::collections::{BTreeMap, HashMap, VecDeque};
use veil_core::events::Event;
use veil_core::state::Deal;
use veil_core::{Address, B256, U256};
use veil_sdk::BlockEvents;

/// Recent blocks, deals and tasks kept for the home page.
pub const RECENT: usize = 20;
/// Deals remembered per asset, and movements per account.
pub const PER_KEY: usize = 500;
/// Minutes of throughput kept.
pub const MINUTES: usize = 60;
/// Blocks whose events are kept whole, for block pages.
pub const KEPT_BLOCKS: usize = 500;
/// Tasks and deals remembered (timelines, deals' parties); the oldest are forgotten first, and
/// their pages then show what the ledger alone says.
pub const MAX_TASKS: usize = 200_000;
pub const MAX_DEALS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRow {
    pub number: u64,
    pub timestamp: u64,
    pub events: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DealRow {
    pub dealid: B256,
    pub block: u64,
    pub timestamp: u64,
    pub volume: U256,
}

/// One step of a task's life, as the ledger's events tell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub status: &'static str,
    pub block: u64,
    pub timestamp: u64,
    /// The worker, for contributions and reveals.
    pub worker: Option<Address>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskRow {
    pub dealid: Option<B256>,
    pub steps: Vec<Step>,
}

impl TaskRow {
    /// The latest status (`ACTIVE` before any step is known).
    pub fn status(&self) -> &'static str {
        self.steps.last().map_or("ACTIVE", |s| s.status)
    }
}

/// RLC moving in or out of an account's escrow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    pub block: u64,
    pub timestamp: u64,
    pub kind: &'static str,
    pub amount: U256,
    pub taskid: Option<B256>,
    /// The other side of a transfer.
    pub other: Option<Address>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Minute {
    pub tasks: u64,
    pub paid: U256,
}

#[derive(Debug, Default)]
pub struct Index {
    /// The last block applied.
    pub head: u64,
    pub blocks: VecDeque<BlockRow>,
    pub recent_deals: VecDeque<DealRow>,
    pub recent_tasks: VecDeque<B256>,
    pub tasks: HashMap<B256, TaskRow>,
    pub deals: HashMap<B256, Deal>,
    /// Deals per app, dataset and workerpool, newest last.
    pub deals_of: HashMap<Address, VecDeque<B256>>,
    /// Block and time each asset was registered.
    pub registered: HashMap<Address, (u64, u64)>,
    pub movements: HashMap<Address, VecDeque<Movement>>,
    /// nRLC an app or dataset earned its owner (its price, per completed task).
    pub earned: HashMap<Address, U256>,
    /// Completed tasks per deal.
    pub completed: HashMap<B256, u64>,
    /// Throughput per minute (unix minute), oldest first.
    pub minutes: BTreeMap<u64, Minute>,
    pub events_seen: u64,
    /// The last [`KEPT_BLOCKS`] blocks with events, whole, oldest first.
    pub block_events: VecDeque<BlockEvents>,
    /// The block the follower started from.
    pub first: Option<u64>,
    /// Tasks and deals in the order they were first seen, for forgetting the oldest.
    task_order: VecDeque<B256>,
    deal_order: VecDeque<B256>,
}

fn push_bounded<T>(q: &mut VecDeque<T>, v: T, max: usize) {
    q.push_back(v);
    while q.len() > max {
        q.pop_front();
    }
}

impl Index {
    /// Applies one block. `deals` holds the deals its `OrdersMatched` events made, `task_deals`
    /// the deal of each task its `TaskInitialize` events started (looked up by the follower).
    pub fn apply(&mut self, b: &BlockEvents, deals: &HashMap<B256, Deal>, task_deals: &HashMap<B256, B256>) {
        self.head = self.head.max(b.block);
        if !b.events.is_empty() {
            push_bounded(&mut self.block_events, b.clone(), KEPT_BLOCKS);
        }
        self.events_seen += b.events.len() as u64;
        push_bounded(
            &mut self.blocks,
            BlockRow { number: b.block, timestamp: b.timestamp, events: b.events.len() },
            RECENT,
        );
        let at = (b.block, b.timestamp);
        for e in &b.events {
            self.event(e, at, deals, task_deals);
        }
        while self.minutes.len() > MINUTES {
            self.minutes.pop_first();
        }
    }

    /// The task's row, made (and the oldest forgotten past [`MAX_TASKS`]) when new.
    fn task_row(&mut self, taskid: &B256) -> &mut TaskRow {
        if !self.tasks.contains_key(taskid) {
            self.task_order.push_back(*taskid);
            while self.task_order.len() > MAX_TASKS {
                if let Some(old) = self.task_order.pop_front() {
                    self.tasks.remove(&old);
                }
            }
        }
        self.tasks.entry(*taskid).or_default()
    }

    fn step(&mut self, taskid: &B256, status: &'static str, at: (u64, u64), worker: Option<Address>) {
        let row = self.task_row(taskid);
        // A task reopened many times still has a bounded timeline.
        if row.steps.len() < 256 {
            row.steps.push(Step { status, block: at.0, timestamp: at.1, worker });
        }
    }

    fn remember_deal(&mut self, dealid: &B256, d: &Deal) {
        if self.deals.insert(*dealid, d.clone()).is_none() {
            self.deal_order.push_back(*dealid);
            while self.deal_order.len() > MAX_DEALS {
                if let Some(old) = self.deal_order.pop_front() {
                    self.deals.remove(&old);
                    self.completed.remove(&old);
                }
            }
        }
    }

    fn move_money(
        &mut self,
        owner: &Address,
        kind: &'static str,
        amount: U256,
        at: (u64, u64),
        taskid: Option<B256>,
        other: Option<Address>,
    ) {
        let m = Movement { block: at.0, timestamp: at.1, kind, amount, taskid, other };
        push_bounded(self.movements.entry(*owner).or_default(), m, PER_KEY);
    }

    fn event(&mut self, e: &Event, at: (u64, u64), deals: &HashMap<B256, Deal>, task_deals: &HashMap<B256, B256>) {
        match e {
            Event::Deposit { owner, amount } => self.move_money(owner, "deposit", amount.0, at, None, None),
            Event::Withdraw { owner, amount } => self.move_money(owner, "withdraw", amount.0, at, None, None),
            Event::Transfer { from, to, amount } => {
                self.move_money(from, "sent", amount.0, at, None, Some(*to));
                self.move_money(to, "received", amount.0, at, None, Some(*from));
            }
            Event::Lock { owner, amount } => self.move_money(owner, "lock", amount.0, at, None, None),
            Event::Unlock { owner, amount } => self.move_money(owner, "unlock", amount.0, at, None, None),
            Event::Seize { owner, amount, taskid } => {
                self.move_money(owner, "seize", amount.0, at, Some(*taskid), None)
            }
            Event::Reward { owner, amount, taskid } => {
                self.move_money(owner, "reward", amount.0, at, Some(*taskid), None);
                let m = self.minutes.entry(at.1 / 60).or_default();
                m.paid = m.paid.saturating_add(amount.0);
            }
            Event::AppCreated { app: a, .. }
            | Event::DatasetCreated { dataset: a, .. }
            | Event::WorkerpoolCreated { workerpool: a, .. } => {
                self.registered.insert(*a, at);
            }
            Event::OrdersMatched { dealid, volume, .. } => {
                push_bounded(
                    &mut self.recent_deals,
                    DealRow { dealid: *dealid, block: at.0, timestamp: at.1, volume: *volume },
                    RECENT,
                );
                if let Some(d) = deals.get(dealid) {
                    for asset in [d.app.pointer, d.dataset.pointer, d.workerpool.pointer] {
                        if asset != Address::ZERO {
                            push_bounded(self.deals_of.entry(asset).or_default(), *dealid, PER_KEY);
                        }
                    }
                    self.remember_deal(dealid, d);
                }
            }
            Event::TaskInitialize { taskid, .. } => {
                push_bounded(&mut self.recent_tasks, *taskid, RECENT);
                self.task_row(taskid).dealid = task_deals.get(taskid).copied();
                self.step(taskid, "INITIALIZED", at, None);
            }
            Event::TaskContribute { taskid, worker, .. } => self.step(taskid, "CONTRIBUTED", at, Some(*worker)),
            Event::TaskConsensus { taskid, .. } => self.step(taskid, "CONSENSUS_REACHED", at, None),
            Event::TaskReveal { taskid, worker, .. } => self.step(taskid, "REVEALED", at, Some(*worker)),
            Event::TaskReopen { taskid } => self.step(taskid, "REOPENED", at, None),
            Event::TaskFinalize { taskid, .. } => {
                self.step(taskid, "COMPLETED", at, None);
                self.minutes.entry(at.1 / 60).or_default().tasks += 1;
                let deal = self
                    .tasks
                    .get(taskid)
                    .and_then(|t| t.dealid)
                    .and_then(|d| self.deals.get(&d).map(|x| (d, x.clone())));
                if let Some((dealid, d)) = deal {
                    *self.completed.entry(dealid).or_default() += 1;
                    for asset in [&d.app, &d.dataset] {
                        if asset.pointer != Address::ZERO {
                            let e = self.earned.entry(asset.pointer).or_default();
                            *e = e.saturating_add(asset.price.0);
                        }
                    }
                }
            }
            Event::TaskClaimed { taskid } => self.step(taskid, "FAILED", at, None),
            _ => {}
        }
    }

    /// Whether block `n`'s events would be kept, were there any (it is recent enough).
    pub fn keeps_block(&self, n: u64) -> bool {
        let oldest = match self.block_events.front() {
            Some(b) if self.block_events.len() == KEPT_BLOCKS => b.block,
            _ => self.first.unwrap_or(u64::MAX),
        };
        n >= oldest
    }

    /// Tasks completed and nRLC paid in each of the last `n` minutes up to `now_minute`, oldest first.
    pub fn throughput(&self, now_minute: u64, n: u64) -> Vec<(u64, Minute)> {
        (now_minute.saturating_sub(n - 1)..=now_minute)
            .map(|m| (m, self.minutes.get(&m).copied().unwrap_or_default()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use veil_core::Nrlc;
    use veil_core::state::DealAsset;

    fn deal(dataset: Address, owner: Address) -> Deal {
        let asset = |pointer: Address, price: u64| DealAsset { pointer, owner, price: Nrlc(U256::from(price)) };
        Deal {
            app: asset(Address::repeat_byte(1), 5),
            dataset: asset(dataset, 3),
            workerpool: asset(Address::repeat_byte(3), 7),
            trust: U256::from(1),
            category: 0,
            tag: B256::ZERO,
            requester: Address::repeat_byte(4),
            beneficiary: Address::repeat_byte(4),
            callback: Address::ZERO,
            params: String::new(),
            start_time: 60,
            bot_first: U256::ZERO,
            bot_size: U256::from(1),
            worker_stake: Nrlc(U256::ZERO),
            scheduler_reward_ratio: 1,
            sponsor: Address::repeat_byte(4),
            app_order_hash: B256::ZERO,
            dataset_order_hash: B256::ZERO,
            workerpool_order_hash: B256::ZERO,
            request_order_hash: B256::ZERO,
        }
    }

    fn block(n: u64, events: Vec<Event>) -> BlockEvents {
        BlockEvents { block: n, timestamp: 600 + n, events }
    }

    #[test]
    fn a_task_from_match_to_payment() {
        let (dealid, taskid, worker, owner) =
            (B256::repeat_byte(9), B256::repeat_byte(8), Address::repeat_byte(7), Address::repeat_byte(6));
        let dataset = Address::repeat_byte(2);
        let mut i = Index::default();
        let deals = HashMap::from([(dealid, deal(dataset, owner))]);
        let task_deals = HashMap::from([(taskid, dealid)]);
        let matched = Event::OrdersMatched {
            dealid,
            app_hash: B256::ZERO,
            dataset_hash: B256::ZERO,
            workerpool_hash: B256::ZERO,
            request_hash: B256::ZERO,
            volume: U256::from(1),
        };
        i.apply(&block(1, vec![Event::DatasetCreated { dataset, owner }]), &deals, &task_deals);
        i.apply(
            &block(2, vec![matched, Event::TaskInitialize { taskid, workerpool: Address::repeat_byte(3) }]),
            &deals,
            &task_deals,
        );
        let done = vec![
            Event::TaskContribute { taskid, worker, hash: B256::ZERO },
            Event::TaskConsensus { taskid, consensus: B256::ZERO },
            Event::TaskReveal { taskid, worker, digest: B256::ZERO },
            Event::TaskFinalize { taskid, results: Default::default() },
            Event::Reward { owner, amount: Nrlc(U256::from(3)), taskid },
        ];
        i.apply(&block(3, done), &deals, &task_deals);
        let t = &i.tasks[&taskid];
        let steps: Vec<&str> = t.steps.iter().map(|s| s.status).collect();
        assert_eq!(steps, ["INITIALIZED", "CONTRIBUTED", "CONSENSUS_REACHED", "REVEALED", "COMPLETED"]);
        assert_eq!((t.status(), t.dealid), ("COMPLETED", Some(dealid)));
        assert_eq!(t.steps[1].worker, Some(worker));
        assert_eq!(i.earned[&dataset], U256::from(3), "the dataset's price, once");
        assert_eq!(i.earned[&Address::repeat_byte(1)], U256::from(5), "the app's");
        assert_eq!(i.completed[&dealid], 1);
        assert_eq!(i.deals_of[&dataset], [dealid]);
        assert_eq!(i.registered[&dataset], (1, 601));
        assert_eq!(i.movements[&owner].back().map(|m| (m.kind, m.amount)), Some(("reward", U256::from(3))));
        let minute = i.throughput(603 / 60, 2);
        assert_eq!(minute.last().map(|(_, m)| (m.tasks, m.paid)), Some((1, U256::from(3))));
        assert_eq!((i.head, i.events_seen, i.block_events.len()), (3, 8, 3));
    }

    #[test]
    fn lists_and_tables_stay_bounded() {
        let mut i = Index::default();
        let (no_deals, no_links) = (HashMap::new(), HashMap::new());
        for n in 0..(MAX_TASKS as u64 + 10) {
            let taskid = B256::from(U256::from(n));
            i.apply(&block(n, vec![Event::TaskInitialize { taskid, workerpool: Address::ZERO }]), &no_deals, &no_links);
        }
        assert_eq!(i.tasks.len(), MAX_TASKS);
        assert!(!i.tasks.contains_key(&B256::ZERO), "the oldest task is forgotten first");
        assert_eq!((i.blocks.len(), i.recent_tasks.len(), i.block_events.len()), (RECENT, RECENT, KEPT_BLOCKS));
        assert!(i.keeps_block(MAX_TASKS as u64) && !i.keeps_block(3));
        assert!(i.minutes.len() <= MINUTES + 1);
    }
}
