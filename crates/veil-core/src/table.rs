//! An ordered map with an undo log, so a transaction that fails halfway leaves the state exactly as
//! it was (byte-identical), without copying the state for every transaction.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table<K: Ord + Clone, V: Clone> {
    map: BTreeMap<K, V>,
    undo: Vec<(K, Option<V>)>,
    /// Value each key had when the current block began, for keys committed since (state digest).
    block_orig: BTreeMap<K, Option<V>>,
}

impl<K: Ord + Clone, V: Clone> Default for Table<K, V> {
    fn default() -> Self {
        Table { map: BTreeMap::new(), undo: Vec::new(), block_orig: BTreeMap::new() }
    }
}

impl<K: Ord + Clone, V: Clone> Table<K, V> {
    pub fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k)
    }

    pub fn contains(&self, k: &K) -> bool {
        self.map.contains_key(k)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter()
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.map.values()
    }

    pub fn insert(&mut self, k: K, v: V) {
        let old = self.map.insert(k.clone(), v);
        self.undo.push((k, old));
    }

    /// Removes an entry (remembered, like every change).
    pub fn remove(&mut self, k: &K) -> Option<V> {
        let old = self.map.remove(k)?;
        self.undo.push((k.clone(), Some(old.clone())));
        Some(old)
    }

    /// A mutable reference to an existing entry; its previous value is remembered.
    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        let old = self.map.get(k)?.clone();
        self.undo.push((k.clone(), Some(old)));
        self.map.get_mut(k)
    }

    /// A mutable reference to the entry, created with `V::default()` when missing.
    pub fn entry(&mut self, k: &K) -> &mut V
    where
        V: Default,
    {
        let old = self.map.get(k).cloned();
        self.undo.push((k.clone(), old));
        self.map.entry(k.clone()).or_default()
    }

    /// Undoes every change since the last `commit`.
    pub fn rollback(&mut self) {
        while let Some((k, old)) = self.undo.pop() {
            match old {
                Some(v) => self.map.insert(k, v),
                None => self.map.remove(&k),
            };
        }
    }

    pub fn commit(&mut self) {
        // The earliest undo entry of a key holds its value before this transaction; keep the value
        // from before the block, i.e. the first one seen.
        for (k, old) in self.undo.drain(..) {
            self.block_orig.entry(k).or_insert(old);
        }
    }

    /// The keys changed since the last call, with their value before and after; then forgets them.
    pub fn take_changes(&mut self) -> Vec<(K, Option<V>, Option<&V>)> {
        let orig = std::mem::take(&mut self.block_orig);
        orig.into_iter()
            .map(|(k, before)| {
                let after = self.map.get(&k);
                (k, before, after)
            })
            .collect()
    }
}

impl<K: Ord + Clone + Serialize, V: Clone + Serialize> Serialize for Table<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.map.serialize(s)
    }
}

impl<'de, K: Ord + Clone + Deserialize<'de>, V: Clone + Deserialize<'de>> Deserialize<'de> for Table<K, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Table { map: BTreeMap::deserialize(d)?, undo: Vec::new(), block_orig: BTreeMap::new() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_restores_inserts_updates_and_creations() {
        let mut t: Table<u8, u32> = Table::default();
        t.insert(1, 10);
        t.commit();
        t.insert(2, 20);
        *t.get_mut(&1).unwrap() += 5;
        *t.entry(&3) += 7;
        *t.entry(&1) += 1;
        assert_eq!(t.get(&1), Some(&16));
        t.rollback();
        assert_eq!(t.get(&1), Some(&10));
        assert!(!t.contains(&2) && !t.contains(&3));
    }
}
