//! The MC group over real gRPC on loopback: a member that was away while the others wrote
//! and purged their logs comes back and catches up from a snapshot; writes on a follower are
//! refused naming the leader.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use proto::v1::raft_service_server::RaftServiceServer;

use super::{CatalogOptions, RaftCatalog};
use crate::catalog::{CatalogStore, WriteBatch};
use crate::error::McError;

struct Member {
    catalog: Arc<RaftCatalog>,
    server: tokio::task::JoinHandle<()>,
    /// Stops the server gracefully: its connections close too, as when a process dies.
    stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(id: u64, members: &BTreeMap<u64, String>, dir: &std::path::Path) -> Member {
    let catalog = RaftCatalog::open(CatalogOptions {
        members: members.clone(),
        // Snapshot often and keep little log, so a short absence needs a snapshot.
        snapshot_after_logs: 20,
        logs_to_keep: 5,
        ..CatalogOptions::single(id, members[&id].clone(), dir.join(format!("mc{id}")))
    })
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind(members[&id].as_str())
        .await
        .unwrap();
    let service = RaftServiceServer::new(catalog.service());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = stopped.await;
                },
            )
            .await;
    });
    Member {
        catalog,
        server,
        stop,
    }
}

async fn leader(members: &[&Member]) -> Arc<RaftCatalog> {
    for _ in 0..500 {
        if let Some(m) = members.iter().find(|m| m.catalog.leading_term().is_some()) {
            return m.catalog.clone();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no leader")
}

/// Writes through whichever member leads; an election right after the start may move the
/// leadership once.
async fn put(group: &[Member], i: u32) {
    for _ in 0..50 {
        let catalog = leader(&group.iter().collect::<Vec<_>>()).await;
        let mut batch = WriteBatch::default();
        batch.put(format!("obj/{i:05}"), i.to_string());
        match catalog.write(batch).await {
            Ok(()) => return,
            Err(McError::NotLeader { .. }) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("write {i} never committed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_back_from_an_absence_catches_up_from_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let members: BTreeMap<u64, String> = (1..=3)
        .map(|id| (id, infra::ports::free_loopback_addr()))
        .collect();
    let mut group = Vec::new();
    for id in 1..=3 {
        group.push(start(id, &members, dir.path()).await);
    }
    for i in 0..10 {
        put(&group, i).await;
    }
    let first = leader(&group.iter().collect::<Vec<_>>()).await;

    // A follower's writes are refused, naming the leader.
    let follower = group.iter().find(|m| m.catalog.id() != first.id()).unwrap();
    let mut batch = WriteBatch::default();
    batch.put(&b"obj/x"[..], &b"y"[..]);
    match follower.catalog.write(batch).await {
        Err(McError::NotLeader {
            leader: Some((id, addr)),
            ..
        }) => assert_eq!((id, addr), (first.id(), members[&first.id()].clone())),
        other => panic!("{other:?}"),
    }

    // Stop a follower; the other two write on, snapshot and purge their logs.
    let away = follower.catalog.id();
    let idx = group.iter().position(|m| m.catalog.id() == away).unwrap();
    let Member {
        catalog,
        server,
        stop,
    } = group.remove(idx);
    let _ = stop.send(());
    let _ = server.await;
    catalog.shutdown().await;
    drop(catalog);
    for i in 10..200 {
        put(&group, i).await;
    }
    let leader_now = leader(&group.iter().collect::<Vec<_>>()).await;
    let purged = leader_now.raft().metrics().borrow_watched().purged;
    assert!(purged.is_some(), "the leader purged its log");

    // It comes back on its data directory and catches up from a snapshot.
    let back = start(away, &members, dir.path()).await;
    let mut metrics = back.catalog.raft().metrics();
    tokio::time::timeout(Duration::from_secs(30), async {
        while back.catalog.get(b"obj/00199").unwrap().is_none() {
            metrics.changed().await.unwrap();
        }
    })
    .await
    .expect("the returning member caught up");
    assert!(
        back.catalog
            .raft()
            .metrics()
            .borrow_watched()
            .snapshot
            .is_some(),
        "by a snapshot"
    );
    let keys = back.catalog.scan(b"obj/").unwrap();
    assert_eq!(keys.len(), 200);
    assert_eq!(keys[150], (b"obj/00150".to_vec(), b"150".to_vec()));
    for m in group.iter().chain([&back]) {
        m.catalog.shutdown().await;
        m.server.abort();
    }
}
