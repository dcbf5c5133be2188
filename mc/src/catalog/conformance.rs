//! One suite, run against every catalog store: the in-memory one (simulator, tests) and the
//! RocksDB one (server) must behave the same.

use super::memory::MemoryStore;
use super::rocks::RocksCatalog;
use super::{CatalogStore, WriteBatch};

async fn suite(store: &impl CatalogStore) {
    assert_eq!(store.get(b"a").unwrap(), None);
    let mut batch = WriteBatch::default();
    batch.put(&b"job/2"[..], &b"two"[..]);
    batch.put(&b"job/1"[..], &b"one"[..]);
    batch.put(&b"jobz"[..], &b"not a job"[..]);
    batch.put(&b"exec/1"[..], &b"e"[..]);
    store.write(batch).await.unwrap();
    assert_eq!(store.get(b"job/1").unwrap(), Some(b"one".to_vec()));
    let jobs = store.scan(b"job/").unwrap();
    assert_eq!(
        jobs,
        vec![
            (b"job/1".to_vec(), b"one".to_vec()),
            (b"job/2".to_vec(), b"two".to_vec())
        ],
        "key order, prefix only"
    );

    // Later operations in one batch win; deletes apply.
    let mut batch = WriteBatch::default();
    batch.put(&b"job/1"[..], &b"uno"[..]);
    batch.delete(&b"job/2"[..]);
    batch.put(&b"job/3"[..], &b"x"[..]);
    batch.delete(&b"job/3"[..]);
    store.write(batch).await.unwrap();
    assert_eq!(
        store.scan(b"job/").unwrap(),
        vec![(b"job/1".to_vec(), b"uno".to_vec())]
    );
    assert!(store.scan(b"nothing/").unwrap().is_empty());
    store.write(WriteBatch::default()).await.unwrap();
}

#[tokio::test]
async fn memory_store_conforms() {
    suite(&MemoryStore::default()).await;
}

#[tokio::test]
async fn rocksdb_store_conforms_and_keeps_writes_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = RocksCatalog::open(dir.path(), true).unwrap();
        suite(&store).await;
    }
    let reopened = RocksCatalog::open(dir.path(), true).unwrap();
    assert_eq!(reopened.get(b"job/1").unwrap(), Some(b"uno".to_vec()));
}
