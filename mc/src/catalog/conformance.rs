//! One suite, run against every catalog store: the in-memory one (simulator, tests) and the
//! replicated RocksDB one (server) must behave the same.

use super::memory::MemoryStore;
use super::raft::RaftCatalog;
use super::{CatalogStore, WriteBatch};

async fn suite(store: &impl CatalogStore) {
    assert_eq!(store.get(b"a").unwrap(), None);
    let mut batch = WriteBatch::default();
    batch.put(&b"job/2"[..], &b"two"[..]);
    batch.put(&b"job/1"[..], &b"one"[..]);
    batch.put(&b"jidx/job"[..], &b"not a job"[..]);
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

    // A key outside every registered space is refused, and nothing of its batch is written.
    let mut batch = WriteBatch::default();
    batch.put(&b"job/9"[..], &b"nine"[..]);
    batch.put(&b"jobz"[..], &b"no space"[..]);
    let err = store.write(batch).await.unwrap_err();
    assert!(err.to_string().contains("`jobz`"), "{err}");
    assert_eq!(store.get(b"job/9").unwrap(), None);

    // Range scans: start inclusive, end exclusive, limited, in key order.
    let mut batch = WriteBatch::default();
    for i in 0..5u8 {
        batch.put(vec![b'o', b'b', b'j', b'/', i], vec![i]);
    }
    store.write(batch).await.unwrap();
    let keys = |v: Vec<(Vec<u8>, Vec<u8>)>| v.into_iter().map(|(k, _)| k[4]).collect::<Vec<_>>();
    assert_eq!(
        keys(store.scan_range(b"obj/\x01", b"obj/\x04", 10).unwrap()),
        [1, 2, 3]
    );
    assert_eq!(keys(store.scan_range(b"obj/", b"obj0", 2).unwrap()), [0, 1]);
    assert!(
        store
            .scan_range(b"obj/\x03", b"obj/\x03", 10)
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .scan_range(b"obj/\x04", b"obj/\x01", 10)
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn memory_store_conforms() {
    suite(&MemoryStore::default()).await;
}

#[tokio::test]
async fn replicated_rocksdb_store_conforms_and_keeps_writes_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = RaftCatalog::open_single(dir.path()).await.unwrap();
        suite(&*store).await;
        store.shutdown().await;
    }
    let reopened = RaftCatalog::open_single(dir.path()).await.unwrap();
    assert_eq!(reopened.get(b"job/1").unwrap(), Some(b"uno".to_vec()));
    let mut batch = WriteBatch::default();
    batch.put(&b"job/4"[..], &b"after restart"[..]);
    reopened.write(batch).await.unwrap();
    assert_eq!(reopened.scan(b"job/").unwrap().len(), 2);
}
