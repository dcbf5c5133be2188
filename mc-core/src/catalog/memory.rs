//! An in-memory catalog store, for the simulator and engine tests.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{CatalogStore, WriteBatch};
use crate::error::Result;

#[derive(Debug, Default)]
pub struct MemoryStore {
    data: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
    /// Batches written: what a commit of the replicated catalog would cost each.
    writes: std::sync::atomic::AtomicU64,
}

impl MemoryStore {
    /// Batches written so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl CatalogStore for MemoryStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.data.lock().expect("catalog lock").get(key).cloned())
    }

    async fn write(&self, batch: WriteBatch) -> Result<()> {
        super::keys::check_write(batch.ops.iter().map(|(k, _)| k.as_slice()))?;
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut data = self.data.lock().expect("catalog lock");
        for (key, value) in batch.ops {
            match value {
                Some(v) => data.insert(key, v),
                None => data.remove(&key),
            };
        }
        Ok(())
    }

    fn scan(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let data = self.data.lock().expect("catalog lock");
        Ok(data
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn scan_range(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if start >= end {
            return Ok(vec![]);
        }
        let data = self.data.lock().expect("catalog lock");
        Ok(data
            .range(start.to_vec()..end.to_vec())
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}
