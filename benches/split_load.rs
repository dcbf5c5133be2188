//! Split by size on a real cluster, at default settings with TLS: one `mc serve` (this binary
//! re-executed) and three store nodes in this process. A table created with one region is
//! loaded with 2 GiB through its routes (`mc::client`, as a SQL engine writes: 64 KiB
//! incompressible values, keys spread over the table's range, 32 writers); the MC splits the
//! region as its store reports it past `max-region-bytes` (96 MiB), at the split key the store
//! reports. Measured: the load's throughput, the time until every region of the table is under
//! the limit, the regions made, and then every acknowledged write read back through the routes
//! and compared.
//!
//! Run: `cargo bench --bench split_load` (env SPLIT_BENCH_MIB, default 2048).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use proto::v1::cluster_service_client::ClusterServiceClient;
use proto::v1::*;

const CHILD: &str = "SPLIT_BENCH_MC";
const VALUE: usize = 64 << 10;
const WRITERS: u64 = 32;
const LIMIT: u64 = 96 << 20;

/// The i-th key: the table's prefix and a scrambled 4-byte suffix, so writes spread over the
/// whole range (and over every region as it splits).
fn key(prefix: &[u8], i: u64) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&((i.wrapping_mul(0x9e37_79b1) as u32).to_be_bytes()));
    k
}

/// The i-th value: incompressible bytes from a seeded xorshift (RocksDB compresses; a
/// compressible value would not grow the region's size on disk).
fn value(i: u64) -> Vec<u8> {
    let mut x = i.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1;
    let mut v = Vec::with_capacity(VALUE);
    while v.len() < VALUE {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v
}

async fn regions(mc: &str, object: u64) -> Vec<Region> {
    let mut c = store_node::security::pki::admin_connect(format!("http://{mc}"))
        .await
        .map(ClusterServiceClient::new)
        .unwrap();
    let mut out = Vec::new();
    let mut page = PageRequest {
        limit: 1_000,
        page_token: String::new(),
    };
    loop {
        let r = c
            .list_regions(ListRegionsRequest {
                object_id: object,
                page: Some(page.clone()),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        out.extend(r.regions);
        match r.page {
            Some(p) if !p.next_page_token.is_empty() => page.page_token = p.next_page_token,
            _ => return out,
        }
    }
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD) {
        support::serve_one_mc(&spec);
        return;
    }
    let mib: u64 = std::env::var("SPLIT_BENCH_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2048);
    let count = (mib << 20) / VALUE as u64;
    let dir = tempfile::tempdir().unwrap();
    let (mc_addr, _mc) = support::one_mc(CHILD, dir.path());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let stores = support::stores_reporting_to(&mc_addr, dir.path(), 3).await;
        let client = support::admin_client(&mc_addr).await;
        let _watch = client.watch();
        let mut meta = client.meta();
        // Until the stores registered, a table has nowhere to go.
        let table = loop {
            let _ = meta
                .create_database(CreateDatabaseRequest {
                    request_id: "db".into(),
                    name: "bench".into(),
                })
                .await;
            let r = meta
                .create_table(CreateTableRequest {
                    request_id: "t".into(),
                    database: Some(ObjectRef {
                        target: Some(object_ref::Target::Path("bench".into())),
                    }),
                    name: "load".into(),
                    ..Default::default()
                })
                .await;
            if let Ok(r) = r {
                break r.into_inner().table.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let prefix = table.key_range.clone().unwrap().start;
        println!(
            "table {} with {} region(s); loading {mib} MiB ({count} values of {} KiB) with {WRITERS} writers",
            table.id,
            table.region_ids.len(),
            VALUE >> 10
        );
        let started = Instant::now();
        let next = Arc::new(AtomicU64::new(0));
        let mut writers = Vec::new();
        for _ in 0..WRITERS {
            let (client, next, prefix) = (client.clone(), next.clone(), prefix.clone());
            writers.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return acked;
                    }
                    match client.put(&key(&prefix, i), &value(i)).await {
                        Ok(()) => acked.push(i),
                        Err(e) => eprintln!("put {i} not acknowledged: {e}"),
                    }
                }
            }));
        }
        let mut acked = Vec::new();
        for w in writers {
            acked.extend(w.await.unwrap());
        }
        let loaded = started.elapsed();
        let during = regions(&mc_addr, table.id).await.len();
        println!(
            "loaded {} of {count} values in {:.1} s ({:.1} MiB/s acknowledged); {during} regions when the load ended",
            acked.len(),
            loaded.as_secs_f64(),
            (acked.len() * VALUE) as f64 / (1 << 20) as f64 / loaded.as_secs_f64()
        );
        // Until every region is under the limit by its store's report (and reported at all).
        let deadline = Instant::now() + Duration::from_secs(1_800);
        let mut shown = Instant::now();
        // Held for longer than a store's heartbeat interval (10 s), so every region made by a
        // split has reported its size since; and nearly every acknowledged byte is reported.
        let mut since: Option<(Instant, Vec<Region>)> = None;
        let (settle_at, settled) = loop {
            let rs = regions(&mc_addr, table.id).await;
            let total: u64 = rs.iter().map(|r| r.size_bytes).sum();
            let largest = rs.iter().map(|r| r.size_bytes).max().unwrap_or(0);
            if largest <= LIMIT && total >= (acked.len() * VALUE) as u64 * 9 / 10 {
                let (at, first) = since.get_or_insert_with(|| (Instant::now(), rs.clone()));
                if at.elapsed() >= Duration::from_secs(15) {
                    break (*at, first.clone());
                }
            } else {
                since = None;
            }
            if shown.elapsed() > Duration::from_secs(30) {
                shown = Instant::now();
                let mut sizes: Vec<u64> = rs.iter().map(|r| r.size_bytes >> 20).collect();
                sizes.sort_unstable();
                println!(
                    "  {:.0} s: {} regions, {} MiB reported, sizes (MiB) {sizes:?}",
                    started.elapsed().as_secs_f64(),
                    rs.len(),
                    total >> 20
                );
            }
            assert!(
                Instant::now() < deadline,
                "not split in 30 min: {} regions, largest {} MiB",
                rs.len(),
                largest >> 20
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        let settle = settle_at.duration_since(started);
        let mut sizes: Vec<u64> = settled.iter().map(|r| r.size_bytes >> 20).collect();
        sizes.sort_unstable();
        println!(
            "every region under {} MiB {:.1} s after the load began: {} regions, sizes {} to {} MiB (median {} MiB)",
            LIMIT >> 20,
            settle.as_secs_f64(),
            settled.len(),
            sizes[0],
            sizes[sizes.len() - 1],
            sizes[sizes.len() / 2]
        );
        // Every acknowledged write, read back through the routes.
        let started = Instant::now();
        let acked = Arc::new(acked);
        let cursor = Arc::new(AtomicU64::new(0));
        let mut readers = Vec::new();
        for _ in 0..WRITERS {
            let (client, acked, cursor, prefix) =
                (client.clone(), acked.clone(), cursor.clone(), prefix.clone());
            readers.push(tokio::spawn(async move {
                let mut bad = Vec::new();
                loop {
                    let n = cursor.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(&i) = acked.get(n) else { return bad };
                    match client.get(&key(&prefix, i)).await {
                        Ok(Some(v)) if v == value(i) => {}
                        other => bad.push((i, other.map(|v| v.map(|v| v.len())))),
                    }
                }
            }));
        }
        let mut bad = Vec::new();
        for r in readers {
            bad.extend(r.await.unwrap());
        }
        println!(
            "read back {} acknowledged writes in {:.1} s: {} missing or different{}",
            acked.len(),
            started.elapsed().as_secs_f64(),
            bad.len(),
            if bad.is_empty() {
                String::new()
            } else {
                format!(" (first: {:?})", &bad[..bad.len().min(5)])
            }
        );
        assert!(bad.is_empty(), "acknowledged writes lost");
        for s in stores {
            s.stop().await;
        }
    });
}
