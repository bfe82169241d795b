//! The ledger state: accounts, registries, categories, order consumption, deals and tasks.

use crate::amount::Nrlc;
use crate::eip712::Domain;
use crate::table::Table;
use crate::uint;
use alloy_primitives::{Address, B256, Bytes, U256, address, keccak256};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The protocol reserve ("kitty"): its *locked* amount is the reserve. Same address as iExec's.
pub const KITTY: Address = address!("99c2268479b93fde36232351229815df80837e23");

/// PoCo constants (DESIGN.md §3.4).
pub const CONTRIBUTION_DEADLINE_RATIO: u64 = 7;
pub const REVEAL_DEADLINE_RATIO: u64 = 2;
pub const FINAL_DEADLINE_RATIO: u64 = 10;
pub const WORKERPOOL_STAKE_RATIO: u64 = 30;
pub const KITTY_RATIO: u64 = 10;
pub const KITTY_MIN: u64 = 1_000_000_000;
pub const DEFAULT_WORKER_STAKE_RATIO: u64 = 30;
pub const DEFAULT_SCHEDULER_REWARD_RATIO: u64 = 1;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// RLC held outside the escrow (the account's token wallet).
    pub wallet: Nrlc,
    /// Escrow balance, free to use.
    pub balance: Nrlc,
    /// Escrow amount locked by deals and contributions.
    pub locked: Nrlc,
    /// Next transaction nonce.
    pub nonce: u64,
    /// Worker score (PoCo).
    pub score: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct App {
    pub owner: Address,
    pub name: String,
    pub app_type: String,
    pub multiaddr: String,
    pub checksum: B256,
    pub mrenclave: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dataset {
    pub owner: Address,
    pub name: String,
    pub multiaddr: String,
    pub checksum: B256,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Workerpool {
    pub owner: Address,
    pub description: String,
    pub worker_stake_ratio: u64,
    pub scheduler_reward_ratio: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Category {
    pub name: String,
    pub description: String,
    /// Reference duration of a task of this category, in seconds.
    pub work_clock_time_ref: u64,
}

/// The five iExec categories.
pub fn default_categories() -> Vec<Category> {
    [("XS", 300), ("S", 1200), ("M", 3600), ("L", 10800), ("XL", 36000)]
        .into_iter()
        .map(|(name, t)| Category {
            name: name.into(),
            description: format!("iExec category {name}"),
            work_clock_time_ref: t,
        })
        .collect()
}

/// iExec's five categories plus two short ones a development ledger adds, so tests can run
/// deadlines out quickly: 5 (`DEV-5S`) and 6 (`DEV-60S`). Veil's dev ledger and the anvil fixture
/// of PoCo both have them.
pub fn dev_categories() -> Vec<Category> {
    let mut c = default_categories();
    for (name, t) in [("DEV-5S", 5), ("DEV-60S", 60)] {
        c.push(Category {
            name: name.into(),
            description: format!("development: {t} s reference time"),
            work_clock_time_ref: t,
        });
    }
    c
}

/// One resource of a deal: its address, its owner at match time and its price.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealAsset {
    pub pointer: Address,
    pub owner: Address,
    pub price: Nrlc,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deal {
    pub app: DealAsset,
    pub dataset: DealAsset,
    pub workerpool: DealAsset,
    #[serde(with = "uint")]
    pub trust: U256,
    pub category: u64,
    pub tag: B256,
    pub requester: Address,
    pub beneficiary: Address,
    pub callback: Address,
    pub params: String,
    pub start_time: u64,
    #[serde(with = "uint")]
    pub bot_first: U256,
    #[serde(with = "uint")]
    pub bot_size: U256,
    pub worker_stake: Nrlc,
    pub scheduler_reward_ratio: u64,
    pub sponsor: Address,
    pub app_order_hash: B256,
    pub dataset_order_hash: B256,
    pub workerpool_order_hash: B256,
    pub request_order_hash: B256,
}

impl Deal {
    pub fn has_dataset(&self) -> bool {
        self.dataset.pointer != Address::ZERO
    }

    /// What the sponsor pays for one task: app + dataset + workerpool price.
    pub fn task_price(&self) -> Result<Nrlc, crate::amount::AmountError> {
        self.app.price.checked_add(self.dataset.price)?.checked_add(self.workerpool.price)
    }

    /// The workerpool owner's stake for one task (always the constant 30 %).
    pub fn pool_stake(&self) -> Result<Nrlc, crate::amount::AmountError> {
        self.workerpool.price.percentage(WORKERPOOL_STAKE_RATIO)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TaskStatus {
    Unset,
    Active,
    Revealing,
    Completed,
    Failed,
}

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TaskStatus::Unset => "UNSET",
            TaskStatus::Active => "ACTIVE",
            TaskStatus::Revealing => "REVEALING",
            TaskStatus::Completed => "COMPLETED",
            TaskStatus::Failed => "FAILED",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ContributionStatus {
    Unset,
    Contributed,
    Proved,
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contribution {
    pub status: ContributionStatus,
    pub result_hash: B256,
    pub result_seal: B256,
    pub enclave_challenge: Address,
    pub weight: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub status: TaskStatus,
    pub dealid: B256,
    #[serde(with = "uint")]
    pub idx: U256,
    pub timeref: u64,
    pub contribution_deadline: u64,
    pub reveal_deadline: u64,
    pub final_deadline: u64,
    pub consensus_value: B256,
    pub reveal_counter: u64,
    pub winner_counter: u64,
    pub contributors: Vec<Address>,
    pub contributions: BTreeMap<Address, Contribution>,
    /// Consensus weight per result hash.
    pub groups: BTreeMap<B256, U256>,
    /// Total consensus weight (starts at 1).
    pub total: U256,
    pub result_digest: B256,
    pub results: Bytes,
    pub results_callback: Bytes,
}

/// `taskid = keccak256(dealid ‖ uint256(idx))`.
pub fn task_id(dealid: &B256, idx: U256) -> B256 {
    crate::crypto::keccak_packed(&[&dealid.0, &idx.to_be_bytes::<32>()])
}

/// Where registered assets live: `keccak256(kind ‖ owner ‖ nonce)[12..]`, unique per transaction.
pub fn asset_address(kind: &str, owner: &Address, nonce: u64) -> Address {
    let h = keccak256([kind.as_bytes(), owner.as_slice(), &nonce.to_be_bytes()].concat());
    Address::from_slice(&h[12..])
}

/// What the ledger starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Genesis {
    pub domain: Domain,
    /// May add categories.
    pub admin: Address,
    pub categories: Vec<Category>,
    /// Initial RLC held in each account's wallet (outside the escrow).
    pub allocations: Vec<(Address, Nrlc)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub domain: Domain,
    pub admin: Address,
    pub accounts: Table<Address, Account>,
    pub apps: Table<Address, App>,
    pub datasets: Table<Address, Dataset>,
    pub workerpools: Table<Address, Workerpool>,
    pub categories: Table<u64, Category>,
    /// Consumed volume per order typed hash.
    pub consumed: Table<B256, U256>,
    /// Orders presigned on the ledger: typed hash → signer.
    pub presigned: Table<B256, Address>,
    pub deals: Table<B256, Deal>,
    pub tasks: Table<B256, Task>,
    /// Digest of every entry of every table, as of the last [`State::seal`].
    #[serde(with = "uint")]
    pub digest: U256,
}

/// One entry's share of the state digest: `keccak256(table ‖ json(key) ‖ json(value))`.
fn entry_hash<K: Serialize, V: Serialize>(table: u8, k: &K, v: &V) -> U256 {
    let mut buf = vec![table];
    // Plain data serializes without error.
    serde_json::to_writer(&mut buf, k).expect("key serializes");
    buf.push(0);
    serde_json::to_writer(&mut buf, v).expect("value serializes");
    U256::from_be_bytes(keccak256(&buf).0)
}

fn fold_changes<K, V>(digest: U256, id: u8, t: &mut Table<K, V>) -> U256
where
    K: Ord + Clone + Serialize,
    V: Clone + Serialize,
{
    t.take_changes().into_iter().fold(digest, |d, (k, before, after)| {
        let d = before.map_or(d, |v| d.wrapping_sub(entry_hash(id, &k, &v)));
        after.map_or(d, |v| d.wrapping_add(entry_hash(id, &k, v)))
    })
}

fn fold_all<K, V>(digest: U256, id: u8, t: &Table<K, V>) -> U256
where
    K: Ord + Clone + Serialize,
    V: Clone + Serialize,
{
    t.iter().fold(digest, |d, (k, v)| d.wrapping_add(entry_hash(id, k, v)))
}

impl State {
    pub fn genesis(g: &Genesis) -> State {
        let mut s = State {
            domain: g.domain,
            admin: g.admin,
            accounts: Table::default(),
            apps: Table::default(),
            datasets: Table::default(),
            workerpools: Table::default(),
            categories: Table::default(),
            consumed: Table::default(),
            presigned: Table::default(),
            deals: Table::default(),
            tasks: Table::default(),
            digest: U256::ZERO,
        };
        for (i, c) in g.categories.iter().enumerate() {
            s.categories.insert(i as u64, c.clone());
        }
        for (a, amount) in &g.allocations {
            let acc = s.accounts.entry(a);
            acc.wallet = acc.wallet.checked_add(*amount).unwrap_or(acc.wallet);
        }
        s.commit();
        s.seal();
        s
    }

    /// Folds every change since the last seal into the state digest and returns it. The digest is a
    /// sum (mod 2^256) of one keccak256 per entry, so a block updates it in time proportional to
    /// what the block changed; it always equals [`State::full_digest`].
    pub fn seal(&mut self) -> B256 {
        let mut d = self.digest;
        d = fold_changes(d, 1, &mut self.accounts);
        d = fold_changes(d, 2, &mut self.apps);
        d = fold_changes(d, 3, &mut self.datasets);
        d = fold_changes(d, 4, &mut self.workerpools);
        d = fold_changes(d, 5, &mut self.categories);
        d = fold_changes(d, 6, &mut self.consumed);
        d = fold_changes(d, 7, &mut self.presigned);
        d = fold_changes(d, 8, &mut self.deals);
        d = fold_changes(d, 9, &mut self.tasks);
        self.digest = d;
        self.digest_b256()
    }

    /// The digest as of the last seal.
    pub fn digest_b256(&self) -> B256 {
        B256::from(self.digest.to_be_bytes::<32>())
    }

    /// The digest recomputed from every entry (slow: for verification).
    pub fn full_digest(&self) -> B256 {
        let mut d = U256::ZERO;
        d = fold_all(d, 1, &self.accounts);
        d = fold_all(d, 2, &self.apps);
        d = fold_all(d, 3, &self.datasets);
        d = fold_all(d, 4, &self.workerpools);
        d = fold_all(d, 5, &self.categories);
        d = fold_all(d, 6, &self.consumed);
        d = fold_all(d, 7, &self.presigned);
        d = fold_all(d, 8, &self.deals);
        d = fold_all(d, 9, &self.tasks);
        B256::from(d.to_be_bytes::<32>())
    }

    pub fn account(&self, a: &Address) -> Account {
        self.accounts.get(a).cloned().unwrap_or_default()
    }

    pub fn consumed(&self, h: &B256) -> U256 {
        self.consumed.get(h).copied().unwrap_or(U256::ZERO)
    }

    /// Sum of every account's wallet, balance and locked amount (the reserve included).
    pub fn total_rlc(&self) -> Result<Nrlc, crate::amount::AmountError> {
        self.accounts
            .values()
            .try_fold(Nrlc::ZERO, |t, a| t.checked_add(a.wallet)?.checked_add(a.balance)?.checked_add(a.locked))
    }

    pub(crate) fn rollback(&mut self) {
        self.accounts.rollback();
        self.apps.rollback();
        self.datasets.rollback();
        self.workerpools.rollback();
        self.categories.rollback();
        self.consumed.rollback();
        self.presigned.rollback();
        self.deals.rollback();
        self.tasks.rollback();
    }

    /// Moves a registered asset to another address. Differential tests need it: PoCo's registries
    /// place assets by CREATE2 where Veil derives them from (kind, owner, nonce), and orders, deal ids
    /// and task ids only agree when the addresses do. Returns whether an asset was moved.
    pub fn move_asset(&mut self, from: &Address, to: Address) -> bool {
        let moved = if let Some(v) = self.apps.remove(from) {
            self.apps.insert(to, v);
            true
        } else if let Some(v) = self.datasets.remove(from) {
            self.datasets.insert(to, v);
            true
        } else if let Some(v) = self.workerpools.remove(from) {
            self.workerpools.insert(to, v);
            true
        } else {
            false
        };
        self.commit();
        moved
    }

    pub(crate) fn commit(&mut self) {
        self.accounts.commit();
        self.apps.commit();
        self.datasets.commit();
        self.workerpools.commit();
        self.categories.commit();
        self.consumed.commit();
        self.presigned.commit();
        self.deals.commit();
        self.tasks.commit();
    }
}
