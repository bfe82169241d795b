//! The orderbook: published signed orders, checked against the ledger, persisted, and pruned when
//! the ledger fills or cancels them.

use crate::store::{Store, StoreError};
use std::collections::HashMap;
use veil_core::book::{BookEntry, BookQuery, sort};
use veil_core::events::Event;
use veil_core::orders::OrderKind;
use veil_core::tx::AnyOrder;
use veil_core::{Address, B256, Domain, Signature, State, U256, crypto};
use veil_sdk::OrderbookPage;

#[derive(Debug, thiserror::Error)]
pub enum BookError {
    #[error("{0}")]
    Invalid(String),
    #[error("order {0} is not in the book")]
    NotFound(B256),
    #[error("only the order's signer {0} may unpublish it")]
    NotSigner(Address),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Default)]
pub struct Book {
    entries: HashMap<B256, BookEntry>,
    seq: u64,
}

/// What the orderbook checks orders against: the ledger's state in process, or facts read from
/// an EVM chain just before (see [`ChainFacts`]).
pub trait Facts {
    fn domain(&self) -> Domain;
    /// The owner of the app, dataset or workerpool `asset` (None: not registered).
    fn owner(&self, kind: OrderKind, asset: &Address) -> Option<Address>;
    fn consumed(&self, order_hash: &B256) -> U256;
    /// Who presigned the order with this hash on the ledger, if anyone.
    fn presigned(&self, order_hash: &B256) -> Option<Address>;
}

impl Facts for State {
    fn domain(&self) -> Domain {
        self.domain
    }
    fn owner(&self, kind: OrderKind, a: &Address) -> Option<Address> {
        match kind {
            OrderKind::App => self.apps.get(a).map(|x| x.owner),
            OrderKind::Dataset => self.datasets.get(a).map(|x| x.owner),
            OrderKind::Workerpool => self.workerpools.get(a).map(|x| x.owner),
            OrderKind::Request => None,
        }
    }
    fn consumed(&self, h: &B256) -> U256 {
        State::consumed(self, h)
    }
    fn presigned(&self, h: &B256) -> Option<Address> {
        self.presigned.get(h).copied()
    }
}

/// Facts about a few orders, read from a ledger that is not in this process (PoCo on an EVM chain).
#[derive(Debug, Clone)]
pub struct ChainFacts {
    pub domain: Domain,
    /// Asset → owner, for the registered assets among those asked about.
    pub owners: HashMap<Address, Address>,
    pub consumed: HashMap<B256, U256>,
}

impl Facts for ChainFacts {
    fn domain(&self) -> Domain {
        self.domain
    }
    fn owner(&self, _: OrderKind, a: &Address) -> Option<Address> {
        self.owners.get(a).copied()
    }
    fn consumed(&self, h: &B256) -> U256 {
        self.consumed.get(h).copied().unwrap_or_default()
    }
    fn presigned(&self, _: &B256) -> Option<Address> {
        None
    }
}

/// Who must have signed an order: the asset's owner, or the requester.
fn expected_signer(facts: &dyn Facts, order: &AnyOrder) -> Result<Address, BookError> {
    if let AnyOrder::Request(o) = order {
        return Ok(o.requester);
    }
    let (kind, asset) = (order.kind(), order.asset());
    facts
        .owner(kind, &asset)
        .ok_or_else(|| BookError::Invalid(format!("{kind} {asset} is not registered on the ledger")))
}

impl Book {
    pub fn load(store: &Store, facts: &dyn Facts) -> Result<Book, StoreError> {
        let mut book = Book::default();
        for e in store.orders()? {
            book.seq = book.seq.max(e.published + 1);
            book.entries.insert(e.order_hash, e);
        }
        let changed: Vec<B256> = book.entries.keys().copied().collect();
        book.refresh(store, facts, &changed)?;
        Ok(book)
    }

    /// Checks and adds a signed order (signature or presign, owner, remaining volume).
    pub fn publish(
        &mut self,
        store: &Store,
        facts: &dyn Facts,
        order: AnyOrder,
        sign: Option<Signature>,
    ) -> Result<BookEntry, BookError> {
        if let AnyOrder::Request(r) = &order
            && r.params.len() > veil_core::apply::MAX_PARAMS
        {
            return Err(BookError::Invalid(format!(
                "params is {} bytes, at most {}",
                r.params.len(),
                veil_core::apply::MAX_PARAMS
            )));
        }
        let hash = order.typed_hash(&facts.domain());
        let signer = expected_signer(facts, &order)?;
        let valid = match &sign {
            Some(s) => match crypto::recover(&hash, s) {
                Ok(a) if a == signer => true,
                Ok(a) => {
                    return Err(BookError::Invalid(format!("order is signed by {a}, but must be signed by {signer}")));
                }
                Err(e) => return Err(BookError::Invalid(format!("order signature: {e}"))),
            },
            None => facts.presigned(&hash) == Some(signer),
        };
        if !valid {
            return Err(BookError::Invalid("order has no signature and is not presigned on the ledger".into()));
        }
        let remaining = order.volume().saturating_sub(facts.consumed(&hash));
        if remaining.is_zero() {
            return Err(BookError::Invalid("order has no volume left (filled or cancelled)".into()));
        }
        if let Some(e) = self.entries.get(&hash) {
            return Ok(e.clone());
        }
        let published_at_ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let entry = BookEntry {
            order_hash: hash,
            kind: order.kind(),
            order,
            sign,
            signer,
            remaining,
            published: self.seq,
            published_at_ms,
        };
        store.put_order(&entry)?;
        self.seq += 1;
        self.entries.insert(hash, entry.clone());
        Ok(entry)
    }

    pub fn unpublish(
        &mut self,
        store: &Store,
        hash: &B256,
        published: u64,
        requester: Option<Address>,
    ) -> Result<BookEntry, BookError> {
        let e = self.entries.get(hash).ok_or(BookError::NotFound(*hash))?;
        if e.published != published {
            let now = e.published;
            return Err(BookError::Invalid(format!(
                "the order was re-published (now publication {now}, not {published})"
            )));
        }
        if requester != Some(e.signer) {
            return Err(BookError::NotSigner(e.signer));
        }
        store.update_orders(&[], &[*hash])?;
        Ok(self.entries.remove(hash).expect("entry checked above"))
    }

    /// Removes the order as it stands now, for `signer` (iExec's market API names no publication).
    pub fn unpublish_current(&mut self, store: &Store, hash: &B256, signer: Address) -> Result<BookEntry, BookError> {
        let published = self.entries.get(hash).ok_or(BookError::NotFound(*hash))?.published;
        self.unpublish(store, hash, published, Some(signer))
    }

    /// Every published order of `kind`.
    pub fn all(&self, kind: OrderKind) -> impl Iterator<Item = &BookEntry> {
        self.entries.values().filter(move |e| e.kind == kind)
    }

    pub fn get(&self, hash: &B256) -> Option<&BookEntry> {
        self.entries.get(hash)
    }

    pub fn query(&self, kind: OrderKind, q: &BookQuery) -> OrderbookPage {
        let mut hits: Vec<&BookEntry> = self.entries.values().filter(|e| e.kind == kind && q.selects(e)).collect();
        sort(&mut hits);
        let size = q.page_size();
        let page = q.page.unwrap_or(0);
        let start = page.saturating_mul(size) as usize;
        let orders: Vec<BookEntry> = hits.iter().skip(start).take(size as usize).map(|e| (*e).clone()).collect();
        let count = hits.len() as u64;
        let next_page = (start as u64 + (orders.len() as u64) < count).then_some(page + 1);
        OrderbookPage { orders, count, page, next_page }
    }

    /// Applies a block's events: matched and cancelled orders lose volume or leave, and orders of
    /// assets that changed owner leave (their signer no longer owns the asset).
    pub fn on_events<'a>(
        &mut self,
        store: &Store,
        facts: &dyn Facts,
        events: impl Iterator<Item = &'a Event>,
    ) -> Result<(), StoreError> {
        let changed = self.changed_by(events);
        self.refresh(store, facts, &changed)
    }

    /// The orders in the book whose remaining volume or owner these events may have changed.
    pub fn changed_by<'a>(&self, events: impl Iterator<Item = &'a Event>) -> Vec<B256> {
        let mut changed = vec![];
        for e in events {
            match e {
                Event::OrdersMatched { app_hash, dataset_hash, workerpool_hash, request_hash, .. } => {
                    changed.extend([*app_hash, *dataset_hash, *workerpool_hash, *request_hash])
                }
                Event::OrderCancelled { hash } => changed.push(*hash),
                Event::OwnershipTransferred { asset, .. } => {
                    changed.extend(self.entries.values().filter(|x| x.order.asset() == *asset).map(|x| x.order_hash))
                }
                _ => {}
            }
        }
        changed.retain(|h| self.entries.contains_key(h));
        changed.sort();
        changed.dedup();
        changed
    }

    /// Checks these orders again: filled ones and ones whose signer lost the asset leave.
    pub fn refresh(&mut self, store: &Store, facts: &dyn Facts, hashes: &[B256]) -> Result<(), StoreError> {
        let mut put = vec![];
        let mut remove = vec![];
        for h in hashes {
            let Some(e) = self.entries.get_mut(h) else { continue };
            let remaining = e.order.volume().saturating_sub(facts.consumed(h));
            let owner_ok = expected_signer(facts, &e.order).is_ok_and(|s| s == e.signer);
            if remaining.is_zero() || !owner_ok {
                remove.push(*h);
            } else if remaining != e.remaining {
                e.remaining = remaining;
                put.push(e.clone());
            }
        }
        store.update_orders(&put, &remove)?;
        for h in &remove {
            self.entries.remove(h);
        }
        Ok(())
    }

    /// The orders with these hashes that are in the book.
    pub fn orders(&self, hashes: &[B256]) -> Vec<AnyOrder> {
        hashes.iter().filter_map(|h| self.entries.get(h)).map(|e| e.order.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
