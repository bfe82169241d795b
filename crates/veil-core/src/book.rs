//! Orderbook semantics (iExec market API): which published orders a query selects, and in which
//! order. Storage and HTTP are the node's; the rules are here, pure.

use crate::orders::{Order, OrderKind};
use crate::tag;
use crate::tx::AnyOrder;
use crate::uint;
use crate::{Domain, Signature};
use alloy_primitives::{Address, B256, U256};
use serde::{Deserialize, Serialize};

/// A published order with what the book knows about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BookEntry {
    pub order_hash: B256,
    pub kind: OrderKind,
    pub order: AnyOrder,
    /// `None` when the order is presigned on the ledger.
    pub sign: Option<Signature>,
    /// Owner of the asset (or the requester) who signed it.
    pub signer: Address,
    #[serde(with = "uint")]
    pub remaining: U256,
    /// Publication sequence number: smaller is older.
    pub published: u64,
    /// When it was published (unix milliseconds; 0 for orders kept before it was recorded).
    #[serde(default)]
    pub published_at_ms: u64,
}

impl AnyOrder {
    pub fn kind(&self) -> OrderKind {
        match self {
            AnyOrder::App(_) => OrderKind::App,
            AnyOrder::Dataset(_) => OrderKind::Dataset,
            AnyOrder::Workerpool(_) => OrderKind::Workerpool,
            AnyOrder::Request(_) => OrderKind::Request,
        }
    }

    pub fn typed_hash(&self, d: &Domain) -> B256 {
        match self {
            AnyOrder::App(o) => o.typed_hash(d),
            AnyOrder::Dataset(o) => o.typed_hash(d),
            AnyOrder::Workerpool(o) => o.typed_hash(d),
            AnyOrder::Request(o) => o.typed_hash(d),
        }
    }

    pub fn volume(&self) -> U256 {
        match self {
            AnyOrder::App(o) => o.volume,
            AnyOrder::Dataset(o) => o.volume,
            AnyOrder::Workerpool(o) => o.volume,
            AnyOrder::Request(o) => o.volume,
        }
    }

    /// The asset the order is about (the app, for a request).
    pub fn asset(&self) -> Address {
        match self {
            AnyOrder::App(o) => o.app,
            AnyOrder::Dataset(o) => o.dataset,
            AnyOrder::Workerpool(o) => o.workerpool,
            AnyOrder::Request(o) => o.app,
        }
    }

    pub fn tag(&self) -> B256 {
        match self {
            AnyOrder::App(o) => o.tag,
            AnyOrder::Dataset(o) => o.tag,
            AnyOrder::Workerpool(o) => o.tag,
            AnyOrder::Request(o) => o.tag,
        }
    }

    /// The price the book sorts by: the ask, or for a request the total it offers.
    pub fn price(&self) -> U256 {
        match self {
            AnyOrder::App(o) => o.appprice,
            AnyOrder::Dataset(o) => o.datasetprice,
            AnyOrder::Workerpool(o) => o.workerpoolprice,
            AnyOrder::Request(o) => {
                o.appmaxprice.saturating_add(o.datasetmaxprice).saturating_add(o.workerpoolmaxprice)
            }
        }
    }
}

/// Filters of an orderbook query. Restriction filters (`app`, `dataset`, `workerpool`, `requester`)
/// select orders usable by that party: restricted to it, or unrestricted unless `strict`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BookQuery {
    pub app: Option<Address>,
    pub dataset: Option<Address>,
    pub workerpool: Option<Address>,
    pub requester: Option<Address>,
    /// Every bit of `min_tag` must be in the order's tag.
    pub min_tag: Option<B256>,
    /// The order's tag must be within `max_tag`.
    pub max_tag: Option<B256>,
    pub category: Option<u64>,
    pub min_trust: Option<u64>,
    pub max_trust: Option<u64>,
    pub min_volume: Option<u64>,
    /// Restriction filters match only orders restricted to exactly that party.
    pub strict: bool,
    pub page: Option<u64>,
    pub page_size: Option<u64>,
    /// Only orders signed by this address (the asset's owner, or the requester).
    pub signer: Option<Address>,
    /// Request orders paying out to this beneficiary.
    pub beneficiary: Option<Address>,
    /// Dataset orders that are free and of (practically) unlimited volume: iExec's "bulk" orders.
    pub bulk_only: bool,
    /// Per-party restriction filters that replace the ones above (iExec's market API, where a party
    /// left out means "unrestricted orders only" and each party has its own strict flag).
    #[serde(skip)]
    pub restrictions: Option<Restrictions>,
}

/// What a query wants of an order's restriction for one party.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Want {
    /// Any restriction.
    #[default]
    Any,
    /// Usable by this party: restricted to it, or unrestricted.
    Usable(Address),
    /// Restricted to exactly this party.
    Exactly(Address),
    /// Not restricted at all.
    Unrestricted,
}

impl Want {
    fn accepts(self, restriction: Address) -> bool {
        match self {
            Want::Any => true,
            Want::Usable(p) => restriction == p || restriction == Address::ZERO,
            Want::Exactly(p) => restriction == p,
            Want::Unrestricted => restriction == Address::ZERO,
        }
    }
}

/// [`Want`]s for each restriction an order can carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restrictions {
    pub app: Want,
    pub dataset: Want,
    pub workerpool: Want,
    pub requester: Want,
}

/// iExec's volume for a dataset order that never runs out (`Number.MAX_SAFE_INTEGER`); one less is
/// accepted, as iExec's market does for older orders.
pub const BULK_VOLUME: u64 = (1 << 53) - 2;

pub const MAX_PAGE_SIZE: u64 = 1000;
pub const DEFAULT_PAGE_SIZE: u64 = 20;

fn same(value: Address, wanted: Option<Address>) -> bool {
    wanted.is_none_or(|w| w == value)
}

impl BookQuery {
    /// The restriction filters in force: the per-party ones, or those the party fields make.
    fn wants(&self) -> Restrictions {
        let want = |party: Option<Address>| match party {
            None => Want::Any,
            Some(p) if self.strict => Want::Exactly(p),
            Some(p) => Want::Usable(p),
        };
        self.restrictions.unwrap_or(Restrictions {
            app: want(self.app),
            dataset: want(self.dataset),
            workerpool: want(self.workerpool),
            requester: want(self.requester),
        })
    }

    pub fn selects(&self, e: &BookEntry) -> bool {
        let w = self.wants();
        let t = e.order.tag();
        let tags_ok =
            self.min_tag.is_none_or(|m| tag::is_subset(&m, &t)) && self.max_tag.is_none_or(|m| tag::is_subset(&t, &m));
        let volume_ok = self.min_volume.is_none_or(|v| e.remaining >= U256::from(v));
        let signer_ok = same(e.signer, self.signer);
        let u = |x: U256| u64::try_from(x).unwrap_or(u64::MAX);
        let terms_ok = match &e.order {
            AnyOrder::App(o) => {
                same(o.app, self.app)
                    && w.dataset.accepts(o.datasetrestrict)
                    && w.workerpool.accepts(o.workerpoolrestrict)
                    && w.requester.accepts(o.requesterrestrict)
            }
            AnyOrder::Dataset(o) => {
                same(o.dataset, self.dataset)
                    && w.app.accepts(o.apprestrict)
                    && w.workerpool.accepts(o.workerpoolrestrict)
                    && w.requester.accepts(o.requesterrestrict)
                    && (!self.bulk_only || (o.datasetprice.is_zero() && o.volume >= U256::from(BULK_VOLUME)))
            }
            AnyOrder::Workerpool(o) => {
                same(o.workerpool, self.workerpool)
                    && w.app.accepts(o.apprestrict)
                    && w.dataset.accepts(o.datasetrestrict)
                    && w.requester.accepts(o.requesterrestrict)
                    && self.category.is_none_or(|c| u(o.category) == c)
                    && self.min_trust.is_none_or(|m| u(o.trust) >= m)
                    && self.max_trust.is_none_or(|m| u(o.trust) <= m)
            }
            AnyOrder::Request(o) => {
                same(o.app, self.app)
                    && same(o.dataset, self.dataset)
                    && same(o.requester, self.requester)
                    && same(o.beneficiary, self.beneficiary)
                    && w.workerpool.accepts(o.workerpool)
                    && self.category.is_none_or(|c| u(o.category) == c)
                    && self.min_trust.is_none_or(|m| u(o.trust) >= m)
                    && self.max_trust.is_none_or(|m| u(o.trust) <= m)
            }
        };
        tags_ok && volume_ok && signer_ok && terms_ok
    }

    pub fn page_size(&self) -> u64 {
        self.page_size.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE)
    }
}

/// Best first: the cheapest ask (or the highest bid, for requests), then the oldest.
pub fn sort(entries: &mut [&BookEntry]) {
    entries.sort_by(|a, b| {
        let by_price = if a.kind == OrderKind::Request {
            b.order.price().cmp(&a.order.price())
        } else {
            a.order.price().cmp(&b.order.price())
        };
        by_price.then(a.published.cmp(&b.published))
    });
}
