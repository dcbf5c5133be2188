//! What only the MC leader runs: the job engine and its runner, the live cluster view with
//! its liveness ticker, and the client services. They are built afresh from the catalog each
//! time this MC wins a term, and torn down when it loses it, so nothing of a past term's
//! memory (locks, limits, the view) outlives it.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use openraft::ReadPolicy;
use openraft::async_runtime::WatchReceiver;
use proto::v1::cluster_service_server::ClusterServiceServer;
use proto::v1::heartbeat_service_server::HeartbeatServiceServer;
use proto::v1::job_service_server::JobServiceServer;
use proto::v1::meta_service_server::MetaServiceServer;
use proto::v1::{GetMembersResponse, HeartbeatIntervals, McMember};
use tokio::task::JoinHandle;
use tonic::service::Routes;

use crate::api::cluster::ClusterApi;
use crate::api::heartbeat::HeartbeatApi;
use crate::api::jobs::JobApi;
use crate::api::meta::MetaApi;
use crate::catalog::CatalogStore;
use crate::catalog::raft::RaftCatalog;
use crate::clock::{Clock, SystemClock};
use crate::cluster::{LiveCluster, LivenessConfig, stores};
use crate::error::{McError, Result};
use crate::jobs::engine::{Engine, EngineConfig};
use crate::jobs::grpc_executor::GrpcExecutor;
use crate::jobs::runner::JobRunner;
use crate::schedule::coordinator::Coordinator;
use mc_core::watchdog::{Watchdog, WatchdogConfig};

type McRunner = JobRunner<Arc<RaftCatalog>, GrpcExecutor, SystemClock>;

/// One term of leadership.
pub struct LeaderTerm {
    pub term: u64,
    pub routes: Routes,
    runner: Arc<McRunner>,
    ticker: JoinHandle<()>,
    scheduling: JoinHandle<()>,
    /// Renders this term's metrics (engine, view, schedulers).
    pub metrics: crate::server::metrics::TermMetrics,
    /// Ids of this term's log records (audit records of refused calls among them).
    pub log_ids: Arc<crate::history::LogIds>,
    /// The cluster's id, sent with every step.
    pub cluster_id: u64,
}

#[derive(Default)]
pub struct Leadership {
    slot: RwLock<Option<Arc<LeaderTerm>>>,
}

impl Leadership {
    pub fn current(&self) -> Option<Arc<LeaderTerm>> {
        self.slot.read().expect("leadership lock").clone()
    }

    fn current_term(&self) -> Option<u64> {
        self.current().map(|t| t.term)
    }

    /// Stops everything of the current term. In-flight steps are abandoned, not undone: the
    /// next leader re-sends them under its newer term and the stores answer the repeat.
    pub fn step_down(&self) {
        if let Some(term) = self.slot.write().expect("leadership lock").take() {
            term.runner.stop();
            term.ticker.abort();
            term.scheduling.abort();
            tracing::warn!(term = term.term, "stepped down as MC leader");
        }
    }
}

/// What a term's services are configured with.
#[derive(Clone)]
pub struct TermConfig {
    pub liveness: LivenessConfig,
    pub intervals: HeartbeatIntervals,
    /// Created as an admin when the catalog has no users yet.
    pub admin_user: Option<String>,
    /// How long a DDL call waits for its request.
    pub ddl_wait: Duration,
    pub ddl_rg_max_regions: usize,
    pub security: infra::security::Security,
    pub evidence: crate::cluster::evidence::EvidenceConfig,
    /// Audit records older than this are deleted.
    pub audit_retention_ms: u64,
}

/// Follows the catalog's Raft state until the task is aborted: takes up each term this MC
/// wins, drops each it loses.
pub async fn follow(catalog: Arc<RaftCatalog>, leadership: Arc<Leadership>, config: TermConfig) {
    let mut metrics = catalog.raft().metrics();
    loop {
        match (catalog.leading_term(), leadership.current_term()) {
            (Some(term), current) if current != Some(term) => {
                leadership.step_down();
                match begin_term(&catalog, term, &config).await {
                    Ok(t) if catalog.leading_term() == Some(term) => {
                        *leadership.slot.write().expect("leadership lock") = Some(t);
                        tracing::warn!(term, "leading the MC group");
                        // Visible to the processes that start and watch MCs (tests, benches).
                        println!("mc leading term={term}");
                    }
                    Ok(t) => {
                        t.runner.stop();
                        t.ticker.abort();
                        t.scheduling.abort();
                    }
                    Err(e) => {
                        // For example a catalog written by a newer MC: try again later rather
                        // than spin; meanwhile calls are answered NotLeader.
                        tracing::error!(term, error = %e, "could not take up the term");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                continue;
            }
            (None, Some(_)) => leadership.step_down(),
            _ => {}
        }
        if metrics.changed().await.is_err() {
            leadership.step_down();
            return;
        }
    }
}

fn members(catalog: &RaftCatalog) -> GetMembersResponse {
    let metrics = catalog.raft().metrics().borrow_watched().clone();
    let (term, leader) = catalog.leader();
    GetMembersResponse {
        members: metrics
            .membership_config
            .nodes()
            .map(|(id, node)| McMember {
                id: *id,
                address: node.addr.clone(),
                is_leader: leader.as_ref().map(|l| l.0) == Some(*id),
            })
            .collect(),
        leader_id: leader.as_ref().map(|l| l.0).unwrap_or(0),
        leader_address: leader.map(|l| l.1).unwrap_or_default(),
        term,
        cluster_id: crate::catalog::cluster_id::get(catalog)
            .ok()
            .flatten()
            .unwrap_or(0),
        ..Default::default()
    }
}

/// Asks an RG's members who leads it and in what term; a majority's answer settles what the
/// view holds (see `LiveCluster::settle_leader`). Each store has one vote, counted only when
/// the store that answered is the one asked and it holds one replica of the RG, and the store
/// whose claim is disputed does not vote on it.
async fn settle_leader(
    cluster: &LiveCluster,
    verifier: &GrpcExecutor,
    conflict: &crate::cluster::live::LeaderConflict,
) {
    let only = [conflict.rg];
    let voters: Vec<u64> = conflict
        .members
        .iter()
        .copied()
        .filter(|s| Some(*s) != conflict.claim.0)
        .collect();
    let asked = voters.iter().map(|store| verifier.status(*store, &only));
    let answers = futures::future::join_all(asked).await;
    let mut votes: std::collections::BTreeMap<(u64, u64), usize> = Default::default();
    for (store, status) in voters.iter().zip(answers) {
        let Some(status) = status.filter(|s| s.store_id == *store) else {
            continue;
        };
        let mut replicas = status.replicas.iter().filter(|r| r.rg_id == conflict.rg);
        if let (Some(replica), None) = (replicas.next(), replicas.next())
            && replica.leader_store_id != 0
        {
            *votes
                .entry((replica.leader_store_id, replica.term))
                .or_default() += 1;
        }
    }
    // A majority of the voters asked (the disputed claimant is not asked).
    if let Some(((leader, term), n)) = votes.into_iter().max_by_key(|(_, n)| *n)
        && n * 2 > voters.len()
    {
        cluster.settle_leader(conflict, leader, term, SystemClock.now_ms());
    }
}

async fn begin_term(
    catalog: &Arc<RaftCatalog>,
    term: u64,
    config: &TermConfig,
) -> Result<Arc<LeaderTerm>> {
    // Once this term's first entry is applied, so is every entry of earlier terms: the
    // catalog read below is complete.
    catalog
        .raft()
        .ensure_linearizable(ReadPolicy::ReadIndex)
        .await
        .map_err(|e| McError::Catalog(format!("confirm leadership: {e}")))?;
    mc_core::upgrade_catalog(&**catalog).await?;
    if let Some(name) = &config.admin_user
        && crate::catalog::users::list(&**catalog)?.is_empty()
    {
        let admin = crate::catalog::users::User {
            name: name.clone(),
            roles: vec!["admin".into()],
        };
        crate::catalog::users::put(&**catalog, &admin).await?;
        tracing::warn!(user = %name, "created the first admin");
    }
    let cluster_id = crate::catalog::cluster_id::ensure(&**catalog).await?;
    let cluster =
        Arc::new(LiveCluster::new(config.liveness.clone()).with_evidence(config.evidence.clone()));
    // Route revisions of this term start above every revision of earlier terms, so a
    // watcher that was at an older term's revision is sent every route again, not a diff
    // counted in another term's numbers.
    cluster.start_routes_at(term << 32);
    let now = SystemClock.now_ms();
    for store in stores::load(&**catalog)? {
        cluster.restore(store, now);
    }
    for (store, labels) in stores::load_labels(&**catalog)? {
        cluster.restore_label_overrides(store, labels);
    }
    // RG shapes as the last leader left them (kept current by its heartbeats, step outcomes
    // and job effects), each not heard from in this term until its leader reports: the view
    // is never blind, and what changes an RG's membership waits for that report.
    for record in crate::cluster::rgs::load(&**catalog)? {
        cluster.restore_rg(record);
    }
    cluster.restore_retired(crate::cluster::rgs::load_retired(&**catalog)?);
    for (store, until) in stores::load_maintenance(&**catalog)? {
        // The running process is learned from the store's first report in this term.
        let _ = cluster.set_maintenance(store, Some(until));
    }
    let engine = Arc::new(Engine::new(
        catalog.clone(),
        GrpcExecutor::new(cluster.clone(), config.security.clone(), cluster_id),
        SystemClock,
        EngineConfig {
            mc_term: term,
            max_attempts: 30,
            backoff_max_ms: 2_000,
            ..Default::default()
        },
    ));
    engine.set_view_source(cluster.clone());
    if let Some(saved) = catalog.get(crate::api::cluster::LIMITS_KEY)? {
        let limits =
            serde_json::from_slice(&saved).map_err(|e| McError::corrupt("saved limits", e))?;
        engine.set_limits(limits);
    }
    let runner = JobRunner::new(engine.clone());
    let recovered = engine.recover()?;
    tracing::info!(term, jobs = recovered.len(), "recovered unfinished jobs");
    for id in recovered {
        runner.drive(id);
    }
    let term_started = SystemClock.now_ms();
    // An RG whose leader stays silent for three of its heartbeat intervals
    // (3 s at least) has most likely lost its quorum: nothing else would ever say so.
    let silent_grace = (u64::from(config.intervals.rg_heartbeat_ms) * 3).max(3_000);
    let ticker = {
        let mut watchdog = Watchdog::new(
            cluster.clone(),
            catalog.clone(),
            WatchdogConfig {
                term_started_ms: term_started,
                silent_grace_ms: silent_grace,
                audit_retention_ms: config.audit_retention_ms,
            },
        )?;
        let cluster = cluster.clone();
        // Conflicting leadership claims are settled by asking the RG's members, a few RGs a
        // second, in a task of their own (a hung store costs it a status deadline, not the
        // ticker).
        let verifier = Arc::new(GrpcExecutor::new(
            cluster.clone(),
            config.security.clone(),
            cluster_id,
        ));
        let mut verifying: Option<tokio::task::JoinHandle<()>> = None;
        let mut next_verify = 0;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let now = SystemClock.now_ms();
                if now >= next_verify && verifying.as_ref().is_none_or(|t| t.is_finished()) {
                    next_verify = now + 1_000;
                    let conflicts = cluster.take_leader_conflicts(8);
                    if !conflicts.is_empty() {
                        let (cluster, verifier) = (cluster.clone(), verifier.clone());
                        verifying = Some(tokio::spawn(async move {
                            for conflict in &conflicts {
                                settle_leader(&cluster, &verifier, conflict).await;
                            }
                        }));
                    }
                }
                watchdog.tick(now).await;
            }
        })
    };
    let members_of = {
        let catalog = catalog.clone();
        Arc::new(move || members(&catalog))
    };
    let drain: crate::api::cluster::DrainFn = {
        let (runner, cluster) = (runner.clone(), cluster.clone());
        Arc::new(move |store| {
            let (runner, cluster) = (runner.clone(), cluster.clone());
            Box::pin(async move {
                let spec = crate::jobs::JobSpec::DrainStore {
                    store,
                    max_parallel: 0,
                };
                let job = runner.engine().submit(spec, &cluster.view()).await?;
                runner.drive(job.id);
                Ok(job.id)
            })
        })
    };
    let log_ids = engine.log_ids();
    let loaded = (|| {
        let ddl = crate::objects::ddl::Ddl::load(
            runner.clone(),
            cluster.clone(),
            crate::objects::plan::DdlConfig {
                rg_max_regions: config.ddl_rg_max_regions,
                ..Default::default()
            },
            config.ddl_wait,
        )?;
        let resumed = ddl.resume_unfinished()?;
        if resumed > 0 {
            tracing::info!(term, requests = resumed, "resumed unfinished DDL requests");
        }
        Ok::<_, McError>((ddl, Coordinator::load(runner.clone())?))
    })();
    let (ddl, coordinator) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            // The term does not begin: what it started must not outlive it (each would keep
            // the catalog open, and the next attempt starts its own).
            ticker.abort();
            runner.stop();
            return Err(e);
        }
    };
    let metrics: crate::server::metrics::TermMetrics = {
        let (engine, cluster, coordinator) = (engine.clone(), cluster.clone(), coordinator.clone());
        Arc::new(move |t| {
            engine.metrics().render(t);
            crate::server::metrics::cluster(t, &cluster);
            crate::server::metrics::schedulers(t, coordinator.as_ref());
        })
    };
    let scheduling = {
        let (coordinator, cluster, ddl) = (coordinator.clone(), cluster.clone(), ddl.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let now = SystemClock.now_ms();
                if !coordinator.due(now) {
                    continue;
                }
                let objects = ddl.placement().await;
                let ddl_busy = ddl.busy_rgs();
                if let Err(e) = coordinator.tick(&cluster, &objects, &ddl_busy, now).await {
                    tracing::warn!(error = %e, "scheduling round failed");
                }
            }
        })
    };
    let routes = Routes::new(HeartbeatServiceServer::new(HeartbeatApi::new(
        cluster.clone(),
        catalog.clone(),
        SystemClock,
        config.intervals,
        term,
        cluster_id,
    )))
    .add_service(JobServiceServer::new(
        JobApi::new(runner.clone(), cluster.clone()).with_objects({
            let ddl = ddl.clone();
            Arc::new(move |ids: Vec<u64>| {
                let ddl = ddl.clone();
                Box::pin(async move {
                    ddl.read(|objects| {
                        ids.iter()
                            .filter_map(|id| objects.records.get(id).map(|r| (*id, r.state)))
                            .collect()
                    })
                    .await
                })
            })
        }),
    ))
    .add_service(MetaServiceServer::new(MetaApi::new(
        ddl.clone(),
        cluster.clone(),
        catalog.clone(),
        log_ids.clone(),
    )))
    .add_service(ClusterServiceServer::new(ClusterApi::new(
        cluster,
        catalog.clone(),
        engine,
        coordinator,
        members_of,
        drain,
        log_ids.clone(),
    )));
    Ok(Arc::new(LeaderTerm {
        term,
        routes,
        log_ids,
        cluster_id,
        runner,
        ticker,
        scheduling,
        metrics,
    }))
}
