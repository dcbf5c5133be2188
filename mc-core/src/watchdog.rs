//! What the leader watches over, a pass every 100 ms: alerts for stores that go silent, go
//! Down, report that they cannot write, or report what no job made, and for RGs that stop
//! reporting (most likely without a quorum); each resolved once it reports again. It also
//! ends maintenance windows that ran out and deletes audit records past their retention.
//! Alerts are raised and resolved in the catalog, deduplicated there, so a new leader picks up
//! the open ones.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::catalog::CatalogStore;
use crate::cluster::evidence::EvidenceEvent;
use crate::cluster::{LiveCluster, StoreState, stores};
use crate::error::Result;
use crate::history::{self as logs, Severity};

/// How the watchdog is tuned.
#[derive(Clone, Copy, Debug)]
pub struct WatchdogConfig {
    /// When this term started: an RG is not called silent for the time before it.
    pub term_started_ms: u64,
    /// How long an RG's leader may stay silent before the RG is alerted.
    pub silent_grace_ms: u64,
    pub audit_retention_ms: u64,
}

/// The leader's watch over the cluster, with the alerts it keeps open.
pub struct Watchdog<S> {
    cluster: Arc<LiveCluster>,
    catalog: Arc<S>,
    config: WatchdogConfig,
    /// Stores with an open liveness or health alert, also from earlier terms.
    alerted: BTreeSet<u64>,
    /// RGs with an open "silent" alert, also from earlier terms.
    silent_alerted: BTreeSet<u64>,
    next_silence_check: u64,
    next_retention: u64,
}

/// Audit records one retention pass deletes at most; a pass that deleted that many runs again
/// a second later.
const RETENTION_BATCH: usize = 10_000;

impl<S: CatalogStore> Watchdog<S> {
    /// Picks up the store and RG alerts earlier terms left open: they resolve here too.
    pub fn new(cluster: Arc<LiveCluster>, catalog: Arc<S>, config: WatchdogConfig) -> Result<Self> {
        let open: Vec<String> = logs::alerts(&*catalog)?
            .into_iter()
            .filter(|a| !a.resolved)
            .map(|a| a.subject)
            .collect();
        let ids = |prefix: &str| -> BTreeSet<u64> {
            open.iter()
                .filter_map(|s| s.strip_prefix(prefix)?.parse().ok())
                .collect()
        };
        Ok(Self {
            alerted: ids("store/"),
            silent_alerted: ids("rg/"),
            cluster,
            catalog,
            config,
            next_silence_check: 0,
            next_retention: 0,
        })
    }

    /// One pass at `now`.
    pub async fn tick(&mut self, now: u64) {
        if now >= self.next_retention {
            self.next_retention = self.expire_audit(now).await;
        }
        if now >= self.next_silence_check {
            self.next_silence_check = now + 5_000;
            self.silent_rgs(now).await;
        }
        for (store, state) in self.cluster.tick(now) {
            tracing::warn!(store, ?state, "store liveness changed");
            let (severity, what) = match state {
                StoreState::Down => (Severity::Critical, "down"),
                _ => (Severity::Warning, "disconnected"),
            };
            self.store_alert(store, severity, format!("store {store} is {what}"), now)
                .await;
        }
        for store in self.cluster.take_maintenance_ended() {
            tracing::info!(store, "maintenance window ended");
            if let Err(e) = stores::save_maintenance(&*self.catalog, store, None).await {
                tracing::warn!(store, error = %e, "maintenance end not persisted");
            }
        }
        self.evidence(now).await;
        for (store, sick) in self.cluster.take_health_events() {
            let Some(why) = sick else { continue };
            tracing::error!(store, reason = %why, "store reports it cannot write");
            self.store_alert(
                store,
                Severity::Critical,
                format!("store {store} is unhealthy: {why}"),
                now,
            )
            .await;
        }
        // A store reporting again resolves its liveness alerts. (No view copy here: with a
        // million regions cached, copying it every tick would dominate.)
        let back: Vec<u64> = self
            .alerted
            .iter()
            .copied()
            .filter(|s| self.cluster.last_seen(*s).is_some() && !self.cluster.is_silent(*s))
            .collect();
        for store in back {
            if logs::resolve(&*self.catalog, &format!("store/{store}"), now)
                .await
                .is_ok()
            {
                self.alerted.remove(&store);
            }
        }
    }

    /// Deletes a bounded batch of audit records past their retention; when to pass again.
    async fn expire_audit(&self, now: u64) -> u64 {
        let cutoff = now.saturating_sub(self.config.audit_retention_ms);
        match logs::expire(&*self.catalog, logs::AUDIT, cutoff, RETENTION_BATCH).await {
            Ok(RETENTION_BATCH) => now + 1_000,
            Ok(n) => {
                if n > 0 {
                    tracing::info!(records = n, "audit records past retention deleted");
                }
                now + 600_000
            }
            Err(e) => {
                tracing::warn!(error = %e, "audit retention pass failed");
                now + 60_000
            }
        }
    }

    async fn silent_rgs(&mut self, now: u64) {
        let silent = self.cluster.silent_rgs(
            now,
            self.config.term_started_ms,
            self.config.silent_grace_ms,
        );
        let ids: BTreeSet<u64> = silent.iter().map(|(rg, _, _)| *rg).collect();
        for (rg, members, for_ms) in silent {
            if self.silent_alerted.contains(&rg) {
                continue;
            }
            let message = format!(
                "RG {rg} has not reported for {} s (members {members:?}): it has no leader, \
                 most likely it lost its quorum",
                for_ms / 1_000
            );
            if logs::raise(
                &*self.catalog,
                Severity::Critical,
                &format!("rg/{rg}"),
                &message,
                now,
            )
            .await
            .is_ok()
            {
                self.silent_alerted.insert(rg);
            }
        }
        // Back once it reported in this term: an RG of an earlier term's alert is not called
        // silent during this term's grace, which does not mean it reported.
        let back: Vec<u64> = self.cluster.read(|view| {
            self.silent_alerted
                .difference(&ids)
                .copied()
                .filter(|rg| !view.unheard().contains(rg))
                .collect()
        });
        for rg in back {
            if logs::resolve(&*self.catalog, &format!("rg/{rg}"), now)
                .await
                .is_ok()
            {
                self.silent_alerted.remove(&rg);
            }
        }
    }

    /// Stores whose reports were caught lying, or are no longer believed. Subject
    /// `store/N/reports`: the store keeps reporting, so its liveness alerts resolve; these
    /// stay until an operator looks.
    async fn evidence(&self, now: u64) {
        for event in self.cluster.take_evidence_events() {
            let (store, severity, message) = match event {
                EvidenceEvent::Lied { store, kind, .. } => (
                    store,
                    Severity::Warning,
                    format!(
                        "store {store} reports what no job made ({kind}); its reports are \
                         checked against the catalog and this one was ignored"
                    ),
                ),
                EvidenceEvent::Suspect { store, why } => (
                    store,
                    Severity::Critical,
                    format!("store {store} is not believed: {why}"),
                ),
                EvidenceEvent::Trusted { .. } => continue,
            };
            let subject = format!("store/{store}/reports");
            if let Err(e) = logs::raise(&*self.catalog, severity, &subject, &message, now).await {
                tracing::warn!(store, error = %e, "alert not raised");
            }
        }
    }

    /// Raises a store's liveness or health alert, kept open until it reports again.
    async fn store_alert(&mut self, store: u64, severity: Severity, message: String, now: u64) {
        let subject = format!("store/{store}");
        match logs::raise(&*self.catalog, severity, &subject, &message, now).await {
            Ok(_) => {
                self.alerted.insert(store);
            }
            Err(e) => tracing::warn!(store, error = %e, "alert not raised"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::memory::MemoryStore;
    use crate::cluster::rgs::{RgRecord, SCHEMA_VERSION};
    use crate::cluster::{LivenessConfig, RgInfo, Role};
    use proto::v1::{RegisterStoreRequest, Replica, RgHeartbeat, StoreHeartbeatRequest};

    /// Stores 1..=n, registered at time 0.
    fn register(cluster: &LiveCluster, n: u64) {
        for id in 1..=n {
            let store = RegisterStoreRequest {
                store_id: id,
                address: format!("127.0.0.1:70{id:02}"),
                capacity_bytes: 1 << 30,
                ..Default::default()
            };
            cluster.register(&store, 0).unwrap();
        }
    }

    fn open(catalog: &MemoryStore) -> Vec<(String, String, Severity)> {
        logs::alerts(catalog)
            .unwrap()
            .into_iter()
            .filter(|a| !a.resolved)
            .map(|a| (a.subject, a.message, a.severity))
            .collect()
    }

    #[tokio::test]
    async fn a_store_that_goes_down_is_alerted_until_it_reports_and_a_new_leader_resolves_it() {
        let cluster = Arc::new(LiveCluster::new(LivenessConfig {
            disconnected_after_ms: 1_000,
            down_after_ms: 5_000,
        }));
        register(&cluster, 2);
        let catalog = Arc::new(MemoryStore::default());
        let config = WatchdogConfig {
            term_started_ms: 0,
            silent_grace_ms: 3_000,
            audit_retention_ms: u64::MAX,
        };
        let mut dog = Watchdog::new(cluster.clone(), catalog.clone(), config).unwrap();
        let beat = |id, now| {
            cluster
                .store_heartbeat(
                    &StoreHeartbeatRequest {
                        store_id: id,
                        ..Default::default()
                    },
                    now,
                )
                .unwrap()
        };
        // Store 1 keeps reporting; store 2 falls silent, then Down.
        for now in (1_000..=6_000).step_by(1_000) {
            beat(1, now);
            dog.tick(now).await;
        }
        let alerts = open(&catalog);
        assert!(
            alerts.contains(&(
                "store/2".into(),
                "store 2 is down".into(),
                Severity::Critical
            )),
            "{alerts:?}"
        );
        assert!(alerts.iter().all(|(s, _, _)| s == "store/2"), "{alerts:?}");
        // A new leader's watchdog picks up the open alert and resolves it once store 2 reports.
        let mut next = Watchdog::new(cluster.clone(), catalog.clone(), config).unwrap();
        beat(1, 7_000);
        beat(2, 7_000);
        next.tick(7_000).await;
        assert_eq!(open(&catalog), vec![]);
    }

    #[tokio::test]
    async fn an_rg_alerted_in_an_earlier_term_resolves_once_it_reports_in_this_one() {
        let cluster = Arc::new(LiveCluster::new(LivenessConfig::default()));
        register(&cluster, 3);
        // RG 7 as the last leader left it: restored, not heard from in this term.
        cluster.restore_rg(RgRecord {
            schema: SCHEMA_VERSION,
            rg: RgInfo {
                id: 7,
                members: [(1, Role::Voter), (2, Role::Voter), (3, Role::Voter)]
                    .into_iter()
                    .collect(),
                leader: Some(1),
                term: 4,
                conf_ver: 3,
                ..Default::default()
            },
            regions: vec![],
        });
        let catalog = Arc::new(MemoryStore::default());
        for rg in [7, 8] {
            let message = format!("RG {rg} has not reported");
            logs::raise(
                &*catalog,
                Severity::Critical,
                &format!("rg/{rg}"),
                &message,
                0,
            )
            .await
            .unwrap();
        }
        let config = WatchdogConfig {
            term_started_ms: 1_000,
            silent_grace_ms: 3_000,
            audit_retention_ms: u64::MAX,
        };
        let mut dog = Watchdog::new(cluster.clone(), catalog.clone(), config).unwrap();
        // Within this term's grace: RG 8 is gone from the cluster, its alert resolves; RG 7
        // has not reported yet, so its alert stays open.
        dog.tick(1_500).await;
        let subjects: Vec<String> = open(&catalog).into_iter().map(|(s, _, _)| s).collect();
        assert_eq!(subjects, ["rg/7"]);
        let beat = RgHeartbeat {
            rg_id: 7,
            leader_store_id: 1,
            term: 4,
            conf_ver: 3,
            applied_index: 10,
            members: (1..=3)
                .map(|s| Replica {
                    store_id: s,
                    role: proto::v1::ReplicaRole::Voter as i32,
                    offline: false,
                })
                .collect(),
            ..Default::default()
        };
        assert!(cluster.rg_heartbeat(1, &beat, 6_500).unwrap());
        dog.tick(7_000).await;
        assert_eq!(open(&catalog), vec![]);
    }
}
