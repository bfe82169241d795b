//! The scheduler's embedded database (redb): the last block it followed and its unfinished tasks,
//! one row per task, so a restart resumes in-flight work.
//!
//! Most commits skip the fsync (redb's `Durability::None`); a durable commit follows new tasks and
//! at most every [`DURABLE_EVERY`]. A crash can lose only recent non-durable commits, and those are
//! rebuilt: the scheduler replays the ledger from the last durable block (taking a deal again is
//! idempotent) and reassigns tasks whose assignment was lost.

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use veil_core::B256;

const TASKS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("tasks");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Apps' output per task (JSON), kept after the task ends: its requester reads it later.
const LOGS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("logs");
/// Finished tasks' status histories (JSON), for `GET /tasks/{id}` after the end.
const HISTORY: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("history");
const CACHE_BYTES: usize = 8 * 1024 * 1024;
/// Longest time between two durable commits while work goes on.
pub const DURABLE_EVERY: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
#[error("scheduler database {path}: {detail}")]
pub struct StoreError {
    path: String,
    detail: String,
}

pub struct Store {
    db: Database,
    path: String,
    last_durable: Instant,
}

/// One commit's worth of changes.
pub struct Changes<'a, T> {
    pub last_block: u64,
    pub upsert: Vec<(B256, &'a T)>,
    pub remove: Vec<B256>,
    /// fsync now, whatever the time since the last durable commit.
    pub durable: bool,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let name = path.display().to_string();
        let err = |e: &dyn std::fmt::Display| StoreError { path: name.clone(), detail: e.to_string() };
        let db = Database::builder().set_cache_size(CACHE_BYTES).create(path).map_err(|e| err(&e))?;
        let w = db.begin_write().map_err(|e| err(&e))?;
        w.open_table(TASKS).map_err(|e| err(&e))?;
        w.open_table(META).map_err(|e| err(&e))?;
        w.open_table(LOGS).map_err(|e| err(&e))?;
        w.open_table(HISTORY).map_err(|e| err(&e))?;
        w.commit().map_err(|e| err(&e))?;
        Ok(Store { db, path: name, last_durable: Instant::now() })
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError { path: self.path.clone(), detail: e.to_string() }
    }

    /// The last followed block and every saved task.
    pub fn load<T: DeserializeOwned>(&self) -> Result<(u64, BTreeMap<B256, T>), StoreError> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let meta = r.open_table(META).map_err(|e| self.err(e))?;
        let last = meta.get("last_block").map_err(|e| self.err(e))?.map(|v| v.value()).unwrap_or(0);
        let mut tasks = BTreeMap::new();
        for row in r.open_table(TASKS).map_err(|e| self.err(e))?.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            let id = B256::from(*k.value());
            let t = serde_json::from_slice(v.value()).map_err(|e| self.err(format!("task {id}: {e}")))?;
            tasks.insert(id, t);
        }
        Ok((last, tasks))
    }

    pub fn save<T: Serialize>(&mut self, c: Changes<'_, T>) -> Result<(), StoreError> {
        let durable = c.durable || self.last_durable.elapsed() >= DURABLE_EVERY;
        let mut w = self.db.begin_write().map_err(|e| self.err(e))?;
        w.set_durability(if durable { Durability::Immediate } else { Durability::None }).map_err(|e| self.err(e))?;
        {
            let mut tasks = w.open_table(TASKS).map_err(|e| self.err(e))?;
            for (id, t) in c.upsert {
                let bytes = serde_json::to_vec(t).map_err(|e| self.err(e))?;
                tasks.insert(&id.0, bytes.as_slice()).map_err(|e| self.err(e))?;
            }
            for id in c.remove {
                tasks.remove(&id.0).map_err(|e| self.err(e))?;
            }
            w.open_table(META).map_err(|e| self.err(e))?.insert("last_block", c.last_block).map_err(|e| self.err(e))?;
        }
        w.commit().map_err(|e| self.err(e))?;
        if durable {
            self.last_durable = Instant::now();
        }
        Ok(())
    }
}

impl Store {
    /// Replaces a task's logs. Not fsynced on its own: a crash may lose the latest logs, never tasks.
    pub fn put_logs<T: Serialize>(&mut self, taskid: &B256, logs: &T) -> Result<(), StoreError> {
        self.put_kept(LOGS, taskid, logs)
    }

    pub fn logs<T: DeserializeOwned>(&self, taskid: &B256) -> Result<Option<T>, StoreError> {
        self.kept(LOGS, "logs", taskid)
    }

    /// Keeps a finished task's history (not fsynced on its own, like logs).
    pub fn put_history<T: Serialize>(&mut self, taskid: &B256, history: &T) -> Result<(), StoreError> {
        self.put_kept(HISTORY, taskid, history)
    }

    pub fn history<T: DeserializeOwned>(&self, taskid: &B256) -> Result<Option<T>, StoreError> {
        self.kept(HISTORY, "history", taskid)
    }

    fn put_kept<T: Serialize>(
        &mut self,
        table: TableDefinition<&[u8; 32], &[u8]>,
        taskid: &B256,
        value: &T,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).map_err(|e| self.err(e))?;
        let mut w = self.db.begin_write().map_err(|e| self.err(e))?;
        w.set_durability(Durability::None).map_err(|e| self.err(e))?;
        w.open_table(table).map_err(|e| self.err(e))?.insert(&taskid.0, bytes.as_slice()).map_err(|e| self.err(e))?;
        w.commit().map_err(|e| self.err(e))
    }

    fn kept<T: DeserializeOwned>(
        &self,
        table: TableDefinition<&[u8; 32], &[u8]>,
        what: &str,
        taskid: &B256,
    ) -> Result<Option<T>, StoreError> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = r.open_table(table).map_err(|e| self.err(e))?;
        let Some(v) = t.get(&taskid.0).map_err(|e| self.err(e))? else { return Ok(None) };
        serde_json::from_slice(v.value()).map(Some).map_err(|e| self.err(format!("{what} of {taskid}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> B256 {
        B256::from([n; 32])
    }

    #[test]
    fn tasks_and_the_last_block_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let (a, b) = ("task a".to_string(), "task b".to_string());
        {
            let mut s = Store::open(&path).unwrap();
            let up = vec![(id(1), &a), (id(2), &b)];
            s.save(Changes { last_block: 7, upsert: up, remove: vec![], durable: true }).unwrap();
            // A non-durable commit followed by a durable one: both reach the disk.
            s.save(Changes::<String> { last_block: 8, upsert: vec![], remove: vec![id(1)], durable: false }).unwrap();
            s.save(Changes::<String> { last_block: 9, upsert: vec![], remove: vec![], durable: true }).unwrap();
        }
        let s = Store::open(&path).unwrap();
        let (last, tasks) = s.load::<String>().unwrap();
        assert_eq!(last, 9);
        assert_eq!(tasks.into_iter().collect::<Vec<_>>(), vec![(id(2), b)]);
    }

    #[test]
    fn a_corrupt_row_is_reported_with_its_task() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let mut s = Store::open(&path).unwrap();
        let n = 5u64;
        s.save(Changes { last_block: 1, upsert: vec![(id(3), &n)], remove: vec![], durable: true }).unwrap();
        let err = s.load::<String>().unwrap_err().to_string();
        assert!(err.contains(&format!("{}", id(3))) && err.contains("s.redb"), "{err}");
    }
}
