//! Durable storage in redb: blocks (with receipts), a transaction index, metadata and the orderbook.
//! Every write transaction is committed with redb's immediate durability (fsync) before it returns.

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;
use veil_core::B256;
use veil_core::block::Block;
use veil_core::book::BookEntry;

const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const TXS: TableDefinition<&[u8], (u64, u32)> = TableDefinition::new("txs");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Page cache of the database.
pub const CACHE_BYTES: usize = 16 * 1024 * 1024;

const ORDERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("orders");
/// Deals seen on a followed chain (id → JSON `DealView`), for iExec's market `GET /deals`.
const DEALS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("deals");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(String),
    #[error("corrupted record `{what}`: {detail}")]
    Corrupt { what: String, detail: String },
}

fn dberr<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Db(e.to_string())
}

pub struct Store {
    db: Database,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        // redb caches up to 1 GiB by default; the node keeps its state in memory already.
        let db = Database::builder().set_cache_size(CACHE_BYTES).create(path).map_err(dberr)?;
        let w = db.begin_write().map_err(dberr)?;
        {
            w.open_table(BLOCKS).map_err(dberr)?;
            w.open_table(TXS).map_err(dberr)?;
            w.open_table(META).map_err(dberr)?;
            w.open_table(ORDERS).map_err(dberr)?;
            w.open_table(DEALS).map_err(dberr)?;
        }
        w.commit().map_err(dberr)?;
        Ok(Store { db })
    }

    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let r = self.db.begin_read().map_err(dberr)?;
        let t = r.open_table(META).map_err(dberr)?;
        Ok(t.get(key).map_err(dberr)?.map(|v| v.value().to_vec()))
    }

    pub fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let w = self.db.begin_write().map_err(dberr)?;
        w.open_table(META).map_err(dberr)?.insert(key, value).map_err(dberr)?;
        w.commit().map_err(dberr)
    }

    /// Appends a block and indexes its transactions, durably, in one write transaction.
    pub fn append_block(&self, block: &Block) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(block).map_err(dberr)?;
        let w = self.db.begin_write().map_err(dberr)?;
        {
            w.open_table(BLOCKS).map_err(dberr)?.insert(block.header.number, bytes.as_slice()).map_err(dberr)?;
            let mut txs = w.open_table(TXS).map_err(dberr)?;
            for r in &block.receipts {
                txs.insert(r.tx_hash.as_slice(), (r.block, r.index)).map_err(dberr)?;
            }
        }
        w.commit().map_err(dberr)
    }

    pub fn block(&self, number: u64) -> Result<Option<Block>, StoreError> {
        let r = self.db.begin_read().map_err(dberr)?;
        let t = r.open_table(BLOCKS).map_err(dberr)?;
        let Some(v) = t.get(number).map_err(dberr)? else { return Ok(None) };
        serde_json::from_slice(v.value())
            .map(Some)
            .map_err(|e| StoreError::Corrupt { what: format!("block {number}"), detail: e.to_string() })
    }

    /// The highest stored block number.
    pub fn last_block(&self) -> Result<Option<u64>, StoreError> {
        let r = self.db.begin_read().map_err(dberr)?;
        let t = r.open_table(BLOCKS).map_err(dberr)?;
        Ok(t.last().map_err(dberr)?.map(|(k, _)| k.value()))
    }

    pub fn tx_location(&self, hash: &B256) -> Result<Option<(u64, u32)>, StoreError> {
        let r = self.db.begin_read().map_err(dberr)?;
        let t = r.open_table(TXS).map_err(dberr)?;
        Ok(t.get(hash.as_slice()).map_err(dberr)?.map(|v| v.value()))
    }

    pub fn put_order(&self, e: &BookEntry) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(e).map_err(dberr)?;
        let w = self.db.begin_write().map_err(dberr)?;
        w.open_table(ORDERS).map_err(dberr)?.insert(e.order_hash.as_slice(), bytes.as_slice()).map_err(dberr)?;
        w.commit().map_err(dberr)
    }

    /// Writes the given entries and removes the given hashes in one transaction.
    pub fn update_orders(&self, put: &[BookEntry], remove: &[B256]) -> Result<(), StoreError> {
        if put.is_empty() && remove.is_empty() {
            return Ok(());
        }
        let w = self.db.begin_write().map_err(dberr)?;
        {
            let mut t = w.open_table(ORDERS).map_err(dberr)?;
            for e in put {
                let bytes = serde_json::to_vec(e).map_err(dberr)?;
                t.insert(e.order_hash.as_slice(), bytes.as_slice()).map_err(dberr)?;
            }
            for h in remove {
                t.remove(h.as_slice()).map_err(dberr)?;
            }
        }
        w.commit().map_err(dberr)
    }

    pub fn orders(&self) -> Result<Vec<BookEntry>, StoreError> {
        self.all(ORDERS, "order")
    }

    /// Every row of a JSON table.
    fn all<T: serde::de::DeserializeOwned>(
        &self,
        table: TableDefinition<&[u8], &[u8]>,
        what: &str,
    ) -> Result<Vec<T>, StoreError> {
        let r = self.db.begin_read().map_err(dberr)?;
        let t = r.open_table(table).map_err(dberr)?;
        let mut out = vec![];
        for item in t.iter().map_err(dberr)? {
            let (_, v) = item.map_err(dberr)?;
            let e = serde_json::from_slice(v.value())
                .map_err(|e| StoreError::Corrupt { what: what.into(), detail: e.to_string() })?;
            out.push(e);
        }
        Ok(out)
    }

    /// Keeps deals (a deal seen again replaces itself).
    pub fn put_deals(&self, deals: &[veil_sdk::DealView]) -> Result<(), StoreError> {
        let w = self.db.begin_write().map_err(dberr)?;
        {
            let mut t = w.open_table(DEALS).map_err(dberr)?;
            for d in deals {
                let bytes = serde_json::to_vec(d).map_err(dberr)?;
                t.insert(d.dealid.as_slice(), bytes.as_slice()).map_err(dberr)?;
            }
        }
        w.commit().map_err(dberr)
    }

    pub fn deals(&self) -> Result<Vec<veil_sdk::DealView>, StoreError> {
        self.all(DEALS, "deal")
    }
}
