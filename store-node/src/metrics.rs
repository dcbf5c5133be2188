//! What a store exposes to Prometheus: its replicas and leaders, the Raft state of each RG
//! replica (term, last log and applied index, leadership), steps run, snapshots received.
//! Rendered on each scrape from the store's own state.

use openraft::async_runtime::WatchReceiver;

use crate::prometheus::Text;
use crate::store::Store;

pub fn render(store: &Store) -> String {
    let replicas = store.replicas();
    let id = store.id().to_string();
    let mut t = Text::default();
    let mut leaders = 0;
    let mut per_rg = Vec::with_capacity(replicas.len());
    for r in &replicas {
        let m = r.raft.metrics().borrow_watched().clone();
        let leading = m.current_leader == Some(store.id());
        leaders += leading as u64;
        per_rg.push((
            r.rg.to_string(),
            m.current_term,
            m.last_log_index.unwrap_or(0),
            store.applied_index(r.rg),
            leading,
            r.is_offline(),
        ));
    }
    let s = [("store", id.clone())];
    t.family("store_replicas", "gauge", "RG replicas this store hosts.")
        .sample("store_replicas", &s, replicas.len() as f64);
    t.family(
        "store_leaders",
        "gauge",
        "RG replicas on this store that lead their RG.",
    )
    .sample("store_leaders", &s, leaders as f64);
    let steps: u64 = store.steps_executed().values().map(|n| *n as u64).sum();
    t.family(
        "store_steps_executed_total",
        "counter",
        "Atomic steps run to success (repeats answered from the step record not counted).",
    )
    .sample("store_steps_executed_total", &s, steps as f64);
    t.family(
        "store_snapshots_receiving",
        "gauge",
        "Raft snapshots being received now.",
    )
    .sample(
        "store_snapshots_receiving",
        &s,
        store.snapshots_receiving() as f64,
    );
    t.family(
        "store_heartbeat_sessions_total",
        "counter",
        "Registrations with an MC: a new one starts each time a heartbeat session is cut.",
    )
    .sample(
        "store_heartbeat_sessions_total",
        &s,
        store
            .heartbeat_sessions
            .load(std::sync::atomic::Ordering::Relaxed) as f64,
    );
    t.family(
        "store_uptime_seconds",
        "gauge",
        "Seconds since the store opened.",
    )
    .sample("store_uptime_seconds", &s, store.uptime().as_secs_f64());
    let families: [(&str, &str); 5] = [
        ("store_raft_term", "Raft term of the RG replica."),
        (
            "store_raft_last_log_index",
            "Last Raft log index of the RG replica.",
        ),
        (
            "store_raft_applied_index",
            "Last applied Raft log index of the RG replica.",
        ),
        (
            "store_raft_is_leader",
            "1 when the RG replica leads its RG.",
        ),
        ("store_raft_offline", "1 when the RG replica is offline."),
    ];
    for (i, (name, help)) in families.iter().enumerate() {
        t.family(name, "gauge", help);
        for (rg, term, last, applied, leading, offline) in &per_rg {
            let v = match i {
                0 => *term as f64,
                1 => *last as f64,
                2 => *applied as f64,
                3 => *leading as u8 as f64,
                _ => *offline as u8 as f64,
            };
            t.sample(name, &[("store", id.clone()), ("rg", rg.clone())], v);
        }
    }
    t.finish()
}
