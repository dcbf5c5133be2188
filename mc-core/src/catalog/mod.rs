//! The catalog store: the key-value state every MC decision is persisted in before it acts.
//! The server puts it under openraft on RocksDB (`mc::catalog::raft::RaftCatalog`); the
//! simulator and engine tests use the in-memory store; both pass the same conformance tests
//! (in the `mc` crate, which has both).

pub mod cluster_id;
pub mod keys;
pub mod memory;
pub mod schema;
pub mod tokens;
pub mod users;
mod wire;

use crate::error::Result;

/// Writes applied together or not at all.
/// Its Raft-log encoding is in `wire`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    pub ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl WriteBatch {
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push((key.into(), Some(value.into())));
    }

    pub fn delete(&mut self, key: impl Into<Vec<u8>>) {
        self.ops.push((key.into(), None));
    }

    /// Bytes of keys and values in the batch.
    pub fn bytes(&self) -> usize {
        self.ops
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

pub trait CatalogStore: Send + Sync + 'static {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Durable when it resolves. Concurrent writes may share one fsync (group commit).
    fn write(&self, batch: WriteBatch) -> impl std::future::Future<Output = Result<()>> + Send;
    /// Every pair whose key starts with `prefix`, in key order.
    fn scan(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// Pairs with `start <= key < end`, in key order, at most `limit` of them (a page of an
    /// index).
    fn scan_range(&self, start: &[u8], end: &[u8], limit: usize)
    -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
}

impl<T: CatalogStore> CatalogStore for std::sync::Arc<T> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        (**self).get(key)
    }
    fn write(&self, batch: WriteBatch) -> impl std::future::Future<Output = Result<()>> + Send {
        (**self).write(batch)
    }
    fn scan(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        (**self).scan(prefix)
    }
    fn scan_range(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        (**self).scan_range(start, end, limit)
    }
}
