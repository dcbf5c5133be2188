//! Durable catalog commits per second (fsync on): one-member and three-member MC groups,
//! real gRPC between the members on loopback (all in this process, on the same 2 cores).
//! Each commit is one WriteBatch of one 512-byte value — a job record's size — written by
//! 1 or 256 concurrent writers on the leader.
//!
//! Run: `cargo bench --bench catalog_commits` (env COMMITS_BENCH_SECS, default 5).

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mc::catalog::raft::{CatalogOptions, RaftCatalog};
use mc::catalog::{CatalogStore, WriteBatch};
use proto::v1::raft_service_server::RaftServiceServer;

async fn group(dir: &std::path::Path, size: u64, mode: support::Mode) -> Vec<Arc<RaftCatalog>> {
    let listeners: Vec<tokio::net::TcpListener> = {
        let mut v = Vec::new();
        for _ in 0..size {
            v.push(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        v
    };
    let members: BTreeMap<u64, String> = listeners
        .iter()
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l.local_addr().unwrap().to_string()))
        .collect();
    let mut catalogs = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let id = i as u64 + 1;
        let security = mode.security(store_node::security::Identity::Mc(id));
        let catalog = RaftCatalog::open(CatalogOptions {
            members: members.clone(),
            security: security.clone(),
            ..CatalogOptions::single(id, members[&id].clone(), dir.join(format!("mc{id}")))
        })
        .await
        .unwrap();
        let service = RaftServiceServer::new(catalog.service())
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20);
        tokio::spawn(
            security
                .server()
                .unwrap()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        catalogs.push(catalog);
    }
    catalogs
}

/// The group's leader once every member has agreed on it, in one term, for a second: a
/// group just started may still hold a second election (two members timed out together), and
/// a measurement that began with the first winner would be cut short by NotLeader.
async fn leader(catalogs: &[Arc<RaftCatalog>]) -> Arc<RaftCatalog> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stable: Option<(u64, Instant)> = None;
    loop {
        let agreed = catalogs
            .iter()
            .find_map(|c| c.leading_term())
            .filter(|term| {
                catalogs
                    .iter()
                    .all(|c| c.leader().0 == *term && c.leader().1.is_some())
            });
        match (agreed, stable) {
            (Some(term), Some((t, since))) if t == term => {
                if since.elapsed() >= Duration::from_secs(1) {
                    let leading = catalogs.iter().find(|c| c.leading_term() == Some(term));
                    if let Some(c) = leading {
                        return c.clone();
                    }
                }
            }
            (Some(term), _) => stable = Some((term, Instant::now())),
            (None, _) => stable = None,
        }
        assert!(Instant::now() < deadline, "no stable leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn measure(catalog: Arc<RaftCatalog>, writers: u64, secs: u64) -> (f64, Vec<Duration>) {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (catalog, done) = (catalog.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0u64;
            while Instant::now() < stop {
                let mut batch = WriteBatch::default();
                batch.put(format!("bench/{w:04}/{i:010}"), vec![b'x'; 512]);
                let t = Instant::now();
                catalog.write(batch).await.unwrap();
                latencies.push(t.elapsed());
                done.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            latencies
        }));
    }
    let start = Instant::now();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    latencies.sort();
    let rate = done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    (rate, latencies)
}

fn main() {
    let secs: u64 = std::env::var("COMMITS_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        // One MC commits locally; three replicate over gRPC, plaintext and TLS in the same
        // run (TLS is what MCs run with).
        let mut rates = BTreeMap::new();
        for (size, mode) in [
            (1u64, support::Mode::Tls),
            (3, support::Mode::Plaintext),
            (3, support::Mode::Tls),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let catalogs = group(dir.path(), size, mode).await;
            let leader = leader(&catalogs).await;
            for writers in [1u64, 256] {
                let (rate, lat) = measure(leader.clone(), writers, secs).await;
                println!(
                    "catalog commits, {size} MC(s) {}, {writers} writer(s): {rate:.0}/s, p50 {}, p99 {}",
                    mode.name(),
                    support::ms(support::percentile(&lat, 0.5)),
                    support::ms(support::percentile(&lat, 0.99))
                );
                rates.insert((size, mode.name(), writers), rate);
            }
            for c in catalogs {
                c.shutdown().await;
            }
        }
        for writers in [1u64, 256] {
            println!(
                "tls/plaintext, 3 MCs, {writers} writer(s): {:.2}",
                rates[&(3, "tls", writers)] / rates[&(3, "plaintext", writers)]
            );
        }
    });
}
