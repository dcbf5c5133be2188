//! The MC leader under a viewer's load: one `mc serve` (this binary re-executed) that restored
//! 1M regions (250,000 RGs of 4 regions on 3 stores) from its catalog; 200 viewers, each
//! looping over every page of ListRegions, while an admin calls ListStores every 20 ms.
//! Reports the admin's ListStores latency (p50, p99, max), the viewers' pages per second and
//! the MC's RSS growth under the load. Goal: ListStores p99 at most 100 ms, RSS growth at
//! most 10%.
//!
//! Run: `cargo bench --bench viewer_load` (env VIEWER_BENCH_RGS, default 250000; VIEWERS,
//! default 200; VIEWER_SECS, default 20).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mc::catalog::raft::{CatalogOptions, RaftCatalog};
use mc::catalog::{CatalogStore, WriteBatch};
use mc::cluster::rgs;
use proto::v1::cluster_service_client::ClusterServiceClient;
use proto::v1::*;
use store_node::security::Identity;
use store_node::security::pki::TestPki;

const CHILD: &str = "VIEWER_LOAD_CHILD";

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

/// The catalog of an MC at `addr` that ran for a while: three stores and every RG's shape.
async fn fill_catalog(addr: &str, dir: &std::path::Path, rgs: u64) {
    let catalog = RaftCatalog::open(CatalogOptions::single(
        1,
        addr.to_string(),
        dir.join("catalog"),
    ))
    .await
    .unwrap();
    catalog.wait_leading(Duration::from_secs(10)).await.unwrap();
    let mut batch = WriteBatch::default();
    for s in 1..=3 {
        mc::cluster::stores::put(
            &mut batch,
            &mc::cluster::StoreInfo {
                id: s,
                address: format!("127.0.0.1:{}", 7000 + s),
                state: mc::cluster::StoreState::Up,
                labels: [("zone".to_string(), format!("z{s}"))].into(),
                capacity_bytes: 1 << 40,
            },
        )
        .unwrap();
    }
    for rg in 1..=rgs {
        rgs::put(&mut batch, &support::made_rg(rg, Some(1 + rg % 3), 1)).unwrap();
        if batch.bytes() >= 128 << 10 {
            catalog.write(std::mem::take(&mut batch)).await.unwrap();
        }
    }
    catalog.write(batch).await.unwrap();
    catalog.shutdown().await;
}

async fn connect(who: &Identity, addr: &str) -> tonic::transport::Channel {
    loop {
        if let Ok(c) = TestPki::shared()
            .security(who)
            .connect(&format!("http://{addr}"))
            .await
        {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD) {
        return support::serve_one_mc(&spec);
    }
    let rgs = env("VIEWER_BENCH_RGS", 250_000);
    let viewers = env("VIEWERS", 200);
    let secs = env("VIEWER_SECS", 20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let addr = testkit::free_addr();
        let started = Instant::now();
        fill_catalog(&addr, &dir.path().join("mc"), rgs).await;
        println!(
            "catalog with {} regions in {rgs} RGs written in {:.1} s",
            rgs * 4,
            started.elapsed().as_secs_f64()
        );
        let child = support::Killed(support::spawn_self(
            CHILD,
            format!("{addr}|{}", dir.path().join("mc").display()),
        ));
        let pid = child.0.id();
        let mut admin = ClusterServiceClient::new(connect(&Identity::User("admin".into()), &addr).await);
        let restored = Instant::now();
        loop {
            let page = admin
                .list_regions(ListRegionsRequest {
                    page: Some(PageRequest {
                        limit: 1,
                        page_token: format!("{}", rgs * 4),
                    }),
                    ..Default::default()
                })
                .await;
            if page.is_ok_and(|p| !p.into_inner().regions.is_empty()) {
                break;
            }
            assert!(restored.elapsed() < Duration::from_secs(300), "the MC never restored");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        admin
            .set_user(SetUserRequest {
                user: Some(User {
                    name: "vera".into(),
                    roles: vec!["viewer".into()],
                }),
            })
            .await
            .unwrap();
        // One connection per ten viewers, as pooled dashboards would hold them.
        let mut channels = Vec::new();
        for _ in 0..viewers.div_ceil(10) {
            channels.push(connect(&Identity::User("vera".into()), &addr).await);
        }
        // The MC at rest after its restore: what the load's growth is measured against.
        let mut rss_before = 0;
        for _ in 0..30 {
            rss_before = rss_before.max(rss_of(pid));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let pages = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for v in 0..viewers {
            let channel = channels[(v / 10) as usize].clone();
            let (stop, pages) = (stop.clone(), pages.clone());
            tasks.push(tokio::spawn(async move {
                let mut c = ClusterServiceClient::new(channel);
                // Each viewer starts somewhere else in the regions.
                let mut token = ((v * 4_999) % (rgs * 4)).to_string();
                while !stop.load(Ordering::Relaxed) {
                    let r = c
                        .list_regions(ListRegionsRequest {
                            page: Some(PageRequest {
                                limit: 100,
                                page_token: token.clone(),
                            }),
                            ..Default::default()
                        })
                        .await
                        .unwrap()
                        .into_inner();
                    pages.fetch_add(1, Ordering::Relaxed);
                    token = r.page.map(|p| p.next_page_token).unwrap_or_default();
                }
            }));
        }
        let mut latencies = Vec::new();
        let mut rss_max = rss_before;
        let until = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < until {
            let t = Instant::now();
            admin
                .list_stores(ListStoresRequest::default())
                .await
                .unwrap();
            latencies.push(t.elapsed());
            rss_max = rss_max.max(rss_of(pid));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.unwrap();
        }
        latencies.sort();
        let n = pages.load(Ordering::Relaxed);
        println!(
            "ListStores under {viewers} viewers looping ListRegions at {} regions: p50 {}, p99 {}, max {} ({} calls); viewers {:.0} pages/s ({:.0} regions/s); MC RSS {} MiB -> max {} MiB (+{:.1}%)",
            rgs * 4,
            support::ms(support::percentile(&latencies, 0.5)),
            support::ms(support::percentile(&latencies, 0.99)),
            support::ms(*latencies.last().unwrap()),
            latencies.len(),
            n as f64 / secs as f64,
            n as f64 * 100.0 / secs as f64,
            rss_before >> 20,
            rss_max >> 20,
            (rss_max as f64 / rss_before.max(1) as f64 - 1.0) * 100.0
        );
        drop(child);
    });
}
