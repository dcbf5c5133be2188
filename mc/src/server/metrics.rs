//! What an MC exposes to Prometheus: whether it leads and its term; on the leader, jobs by type
//! and state, step latencies, heartbeats applied, stores' replica, leader and region counts
//! from the live view, and scheduler decisions.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use infra::prometheus::Text;

use crate::catalog::raft::RaftCatalog;
use crate::clock::{Clock, SystemClock};
use crate::cluster::LiveCluster;

/// Renders the leader's part (a closure per term: it holds that term's engine and view).
pub type TermMetrics = Arc<dyn Fn(&mut Text) + Send + Sync>;

/// Renders everything; `leading` is the current term's part when this MC leads.
pub fn render(catalog: &RaftCatalog, leading: Option<TermMetrics>) -> String {
    let mut t = Text::default();
    let (term, _) = catalog.leader();
    let me = [("mc", catalog.id().to_string())];
    t.family("mc_is_leader", "gauge", "1 on the MC that leads the group.")
        .sample("mc_is_leader", &me, leading.is_some() as u8 as f64);
    t.family(
        "mc_term",
        "gauge",
        "The MC group's Raft term as this MC sees it.",
    )
    .sample("mc_term", &me, term as f64);
    if let Some(term) = leading {
        term(&mut t);
    }
    t.finish()
}

/// The live view's part.
pub fn cluster(t: &mut Text, cluster: &LiveCluster) {
    t.family(
        "mc_heartbeats_total",
        "counter",
        "Heartbeats applied by this leader: store, RG and region heartbeats.",
    );
    for (i, kind) in ["store", "rg", "region"].iter().enumerate() {
        t.sample(
            "mc_heartbeats_total",
            &[("kind", kind.to_string())],
            cluster.heartbeats[i].load(Ordering::Relaxed) as f64,
        );
    }
    let (stores, rgs, regions) = cluster.read(|v| {
        let mut per: BTreeMap<u64, (String, u64, u64, u64)> = v
            .stores
            .values()
            .map(|s| (s.id, (format!("{:?}", s.state).to_lowercase(), 0, 0, 0)))
            .collect();
        for rg in v.rgs.values() {
            for m in rg.members.keys() {
                if let Some(e) = per.get_mut(m) {
                    e.1 += 1;
                    e.3 += rg.regions.len() as u64;
                }
            }
            if let Some(e) = rg.leader.and_then(|l| per.get_mut(&l)) {
                e.2 += 1;
            }
        }
        (per, v.rgs.len(), v.regions.len())
    });
    t.family("mc_rgs", "gauge", "RGs in the live view.")
        .sample("mc_rgs", &[], rgs as f64);
    t.family("mc_regions", "gauge", "Regions in the live view.")
        .sample("mc_regions", &[], regions as f64);
    let families = [
        (
            "mc_store_up",
            "1 when the store's state is up, with the state as a label.",
        ),
        ("mc_store_replicas", "RG replicas on the store."),
        ("mc_store_leaders", "RGs the store leads."),
        (
            "mc_store_regions",
            "Regions in the RGs the store holds a replica of.",
        ),
    ];
    for (i, (name, help)) in families.iter().enumerate() {
        t.family(name, "gauge", help);
        for (id, (state, replicas, leaders, regions)) in &stores {
            let mut l = vec![("store", id.to_string())];
            let v = match i {
                0 => {
                    l.push(("state", state.clone()));
                    (state == "up") as u8 as f64
                }
                1 => *replicas as f64,
                2 => *leaders as f64,
                _ => *regions as f64,
            };
            t.sample(name, &l, v);
        }
    }
}

/// The schedulers' part.
pub fn schedulers(t: &mut Text, control: &dyn crate::schedule::coordinator::ScheduleControl) {
    t.family(
        "mc_scheduler_decisions_total",
        "counter",
        "Scheduler decisions in this term, taken (became jobs) or not.",
    );
    t.family(
        "mc_scheduler_paused",
        "gauge",
        "1 while the scheduler is paused.",
    );
    for s in control.status(SystemClock.now_ms()) {
        for (taken, n) in [("true", s.taken), ("false", s.skipped)] {
            t.sample(
                "mc_scheduler_decisions_total",
                &[("scheduler", s.name.clone()), ("taken", taken.into())],
                n as f64,
            );
        }
        t.sample(
            "mc_scheduler_paused",
            &[("scheduler", s.name.clone())],
            s.paused_until_ms.is_some() as u8 as f64,
        );
    }
}
