//! ClusterService: the cluster as SREs read it. Stores, RGs, regions, execution history and
//! the MC's members come from the live view and the catalog; scheduler, limit and config calls
//! answer Unimplemented naming the issue that brings them.

use std::sync::Arc;

use proto::v1::cluster_service_server::ClusterService;
use proto::v1::*;
use tonic::{Request, Response, Status};

use crate::api::{convert, errors::status};
use crate::catalog::{CatalogStore, WriteBatch};
use crate::cluster::{self, LiveCluster, stores};
use crate::error::McError;
use crate::jobs::limits::{CONFIG_KEYS, Limits, LimitsControl};
use crate::jobs::record;

/// The MC group as it stands: members, leader, term.
pub type MembersFn = Arc<dyn Fn() -> GetMembersResponse + Send + Sync>;

/// Starts a DrainStore job for a store; answers its id.
pub type DrainFn =
    Arc<dyn Fn(u64) -> futures::future::BoxFuture<'static, Result<u64, McError>> + Send + Sync>;

pub struct ClusterApi<S> {
    cluster: Arc<LiveCluster>,
    catalog: Arc<S>,
    limits: Arc<dyn LimitsControl>,
    members: MembersFn,
    drain: DrainFn,
}

/// Where the limits are kept, so a restarted MC applies what an operator set.
pub const LIMITS_KEY: &[u8] = b"meta/limits";

impl<S: CatalogStore> ClusterApi<S> {
    pub fn new(
        cluster: Arc<LiveCluster>,
        catalog: Arc<S>,
        limits: Arc<dyn LimitsControl>,
        members: MembersFn,
        drain: DrainFn,
    ) -> Self {
        Self {
            cluster,
            catalog,
            limits,
            members,
            drain,
        }
    }

    /// Persists, then applies.
    async fn save_limits(&self, limits: Limits) -> Result<(), Status> {
        let mut batch = WriteBatch::default();
        batch.put(
            LIMITS_KEY,
            serde_json::to_vec(&limits).map_err(|e| status(McError::Catalog(e.to_string())))?,
        );
        self.catalog.write(batch).await.map_err(status)?;
        self.limits.set_limits(limits);
        Ok(())
    }

    fn entries(&self, prefix: &str) -> Vec<ConfigEntry> {
        let (now, defaults) = (self.limits.limits(), Limits::default());
        CONFIG_KEYS
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, d)| ConfigEntry {
                key: (*k).into(),
                value: now.get(k).unwrap_or_default(),
                default_value: defaults.get(k).unwrap_or_default(),
                description: (*d).into(),
            })
            .collect()
    }

    fn store(&self, s: &cluster::StoreInfo, view: &cluster::ClusterView) -> Store {
        let stats = self.cluster.stats(s.id).unwrap_or_default();
        Store {
            id: s.id,
            address: s.address.clone(),
            labels: s
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            state: store_state(s.state) as i32,
            capacity_bytes: stats.capacity_bytes,
            used_bytes: stats.used_bytes,
            available_bytes: stats.available_bytes,
            replica_count: view.rgs_on(s.id).len() as u32,
            leader_count: view.rgs.values().filter(|r| r.leader == Some(s.id)).count() as u32,
            last_heartbeat_unix_ms: self.cluster.last_seen(s.id).unwrap_or(0),
            limit: Some({
                let l = self.limits.limits();
                let (steps, snaps) = l
                    .per_store
                    .get(&s.id)
                    .copied()
                    .unwrap_or((l.store_steps_per_minute, l.store_snapshots_in_flight));
                StoreLimit {
                    steps_per_minute: steps,
                    snapshots_in_flight: snaps,
                }
            }),
            version: String::new(),
        }
    }
}

fn store_state(s: cluster::StoreState) -> StoreState {
    match s {
        cluster::StoreState::Up => StoreState::Up,
        cluster::StoreState::Disconnected => StoreState::Disconnected,
        cluster::StoreState::Down => StoreState::Down,
        cluster::StoreState::Draining => StoreState::Draining,
        cluster::StoreState::Tombstone => StoreState::Tombstone,
    }
}

fn rg(r: &cluster::RgInfo, view: &cluster::ClusterView) -> Rg {
    Rg {
        id: r.id,
        replicas: r
            .members
            .iter()
            .map(|(s, role)| Replica {
                store_id: *s,
                role: if *role == cluster::Role::Voter {
                    ReplicaRole::Voter
                } else {
                    ReplicaRole::Learner
                } as i32,
                offline: r.offline,
            })
            .collect(),
        leader_store_id: r.leader.unwrap_or(0),
        leader_address: r
            .leader
            .and_then(|l| view.store(l))
            .map(|s| s.address.clone())
            .unwrap_or_default(),
        term: 0,
        applied_index: 0,
        conf_ver: 0,
        region_ids: r.regions.iter().copied().collect(),
        state: if r.offline {
            RgState::Offline
        } else {
            RgState::Online
        } as i32,
        size_bytes: 0,
    }
}

fn region(r: &cluster::RegionInfo) -> Region {
    Region {
        id: r.id,
        rg_id: r.rg,
        object_id: r.object,
        range: Some(KeyRange {
            start: r.start.clone(),
            end: r.end.clone(),
        }),
        epoch: Some(RegionEpoch {
            version: r.version,
            conf_ver: 0,
        }),
        size_bytes: 0,
        keys: 0,
    }
}

fn page(req: &Option<PageRequest>) -> Result<(u64, usize), Status> {
    let p = req.clone().unwrap_or_default();
    let after = if p.page_token.is_empty() {
        0
    } else {
        p.page_token.parse().map_err(|_| {
            status(McError::invalid(
                "page.page_token",
                "not a token this server issued",
            ))
        })?
    };
    Ok((after, if p.limit == 0 { 100 } else { p.limit as usize }))
}

fn unimplemented(what: &str, issue: &str) -> Status {
    Status::unimplemented(format!(
        "{what} is not available in this build yet ({issue})"
    ))
}

#[tonic::async_trait]
impl<S: CatalogStore> ClusterService for ClusterApi<S> {
    async fn list_stores(
        &self,
        request: Request<ListStoresRequest>,
    ) -> Result<Response<ListStoresResponse>, Status> {
        let req = request.into_inner();
        let view = self.cluster.view();
        let stores = view
            .stores
            .values()
            .filter(|s| {
                req.states.is_empty() || req.states.contains(&(store_state(s.state) as i32))
            })
            .filter(|s| req.labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| self.store(s, &view))
            .collect();
        Ok(Response::new(ListStoresResponse { stores }))
    }

    async fn get_store(
        &self,
        request: Request<GetStoreRequest>,
    ) -> Result<Response<GetStoreResponse>, Status> {
        let id = request.into_inner().store_id;
        let view = self.cluster.view();
        let s = view
            .store(id)
            .ok_or_else(|| status(McError::not_found("store", id)))?;
        Ok(Response::new(GetStoreResponse {
            store: Some(self.store(s, &view)),
        }))
    }

    async fn set_store_labels(
        &self,
        _: Request<SetStoreLabelsRequest>,
    ) -> Result<Response<SetStoreLabelsResponse>, Status> {
        Err(unimplemented(
            "SetStoreLabels (labels come from the store's --labels for now)",
            "[placement]",
        ))
    }

    /// Store 0 sets the default for every store; another id overrides that store's.
    async fn set_store_limit(
        &self,
        request: Request<SetStoreLimitRequest>,
    ) -> Result<Response<SetStoreLimitResponse>, Status> {
        let req = request.into_inner();
        let limit = req
            .limit
            .ok_or_else(|| status(McError::invalid("limit", "missing")))?;
        let view = self.cluster.view();
        let mut limits = self.limits.limits();
        if req.store_id == 0 {
            limits.store_steps_per_minute = limit.steps_per_minute;
            limits.store_snapshots_in_flight = limit.snapshots_in_flight;
        } else {
            view.store(req.store_id)
                .ok_or_else(|| status(McError::not_found("store", req.store_id)))?;
            limits.per_store.insert(
                req.store_id,
                (limit.steps_per_minute, limit.snapshots_in_flight),
            );
        }
        self.save_limits(limits).await?;
        let store = view.store(req.store_id).map(|s| self.store(s, &view));
        Ok(Response::new(SetStoreLimitResponse { store }))
    }

    async fn set_store_state(
        &self,
        request: Request<SetStoreStateRequest>,
    ) -> Result<Response<SetStoreStateResponse>, Status> {
        let req = request.into_inner();
        let state = match req.state() {
            StoreState::Tombstone => cluster::StoreState::Tombstone,
            StoreState::Up => cluster::StoreState::Up,
            StoreState::Draining => cluster::StoreState::Draining,
            other => {
                return Err(status(McError::invalid(
                    "state",
                    format!("{other:?} is set by liveness, not by an operator"),
                )));
            }
        };
        let before = self.cluster.view().store(req.store_id).cloned();
        self.cluster
            .set_state(req.store_id, state)
            .map_err(status)?;
        let view = self.cluster.view();
        let s = view.store(req.store_id).expect("set_state checked it");
        // Persisted so the next MC leader keeps it; undone here if the catalog refuses.
        if let Err(e) = stores::save_if_changed(&*self.catalog, s).await {
            if let Some(before) = before {
                self.cluster.revert_state(before.id, before.state);
            }
            return Err(status(e));
        }
        // Draining moves every replica off the store: one DrainStore job, with child
        // MigrateReplica jobs under the limits.
        let job_id = if state == cluster::StoreState::Draining {
            match (self.drain)(req.store_id).await {
                Ok(id) => id,
                Err(e) => {
                    if let Some(before) = &before {
                        self.cluster.revert_state(before.id, before.state);
                        let _ = stores::save_if_changed(&*self.catalog, before).await;
                    }
                    return Err(status(e));
                }
            }
        } else {
            0
        };
        Ok(Response::new(SetStoreStateResponse {
            store: Some(self.store(s, &view)),
            job_id,
        }))
    }

    async fn list_rgs(
        &self,
        request: Request<ListRgsRequest>,
    ) -> Result<Response<ListRgsResponse>, Status> {
        let req = request.into_inner();
        let (after, limit) = page(&req.page)?;
        let view = self.cluster.view();
        let mut rgs: Vec<Rg> = view
            .rgs
            .values()
            .filter(|r| {
                r.id > after && (req.store_id == 0 || r.members.contains_key(&req.store_id))
            })
            .map(|r| rg(r, &view))
            .take(limit + 1)
            .collect();
        let more = rgs.len() > limit;
        rgs.truncate(limit);
        let next_page_token = if more {
            rgs.last().map(|r| r.id.to_string()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(ListRgsResponse {
            rgs,
            page: Some(PageResponse { next_page_token }),
        }))
    }

    async fn get_rg(
        &self,
        request: Request<GetRgRequest>,
    ) -> Result<Response<GetRgResponse>, Status> {
        let id = request.into_inner().rg_id;
        let view = self.cluster.view();
        let r = view
            .rg(id)
            .ok_or_else(|| status(McError::not_found("rg", id)))?;
        let regions = r
            .regions
            .iter()
            .filter_map(|id| view.region(*id))
            .map(region)
            .collect();
        Ok(Response::new(GetRgResponse {
            rg: Some(rg(r, &view)),
            regions,
        }))
    }

    async fn list_regions(
        &self,
        request: Request<ListRegionsRequest>,
    ) -> Result<Response<ListRegionsResponse>, Status> {
        let req = request.into_inner();
        let (after, limit) = page(&req.page)?;
        let view = self.cluster.view();
        let mut regions: Vec<Region> = view
            .regions
            .values()
            .filter(|r| r.id > after)
            .filter(|r| req.rg_id == 0 || r.rg == req.rg_id)
            .filter(|r| req.object_id == 0 || r.object == req.object_id)
            .filter(|r| {
                req.store_id == 0
                    || view
                        .rg(r.rg)
                        .is_some_and(|g| g.members.contains_key(&req.store_id))
            })
            .map(region)
            .take(limit + 1)
            .collect();
        let more = regions.len() > limit;
        regions.truncate(limit);
        let next_page_token = if more {
            regions.last().map(|r| r.id.to_string()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(ListRegionsResponse {
            regions,
            page: Some(PageResponse { next_page_token }),
        }))
    }

    async fn get_region(
        &self,
        request: Request<GetRegionRequest>,
    ) -> Result<Response<GetRegionResponse>, Status> {
        let id = request.into_inner().region_id;
        let view = self.cluster.view();
        let r = view
            .region(id)
            .ok_or_else(|| status(McError::not_found("region", id)))?;
        Ok(Response::new(GetRegionResponse {
            region: Some(region(r)),
            rg: view.rg(r.rg).map(|g| rg(g, &view)),
        }))
    }

    async fn list_schedulers(
        &self,
        _: Request<ListSchedulersRequest>,
    ) -> Result<Response<ListSchedulersResponse>, Status> {
        Err(unimplemented("schedulers", "[placement]"))
    }

    async fn pause_scheduler(
        &self,
        _: Request<PauseSchedulerRequest>,
    ) -> Result<Response<PauseSchedulerResponse>, Status> {
        Err(unimplemented("schedulers", "[placement]"))
    }

    async fn resume_scheduler(
        &self,
        _: Request<ResumeSchedulerRequest>,
    ) -> Result<Response<ResumeSchedulerResponse>, Status> {
        Err(unimplemented("schedulers", "[placement]"))
    }

    async fn get_config(
        &self,
        request: Request<GetConfigRequest>,
    ) -> Result<Response<GetConfigResponse>, Status> {
        Ok(Response::new(GetConfigResponse {
            entries: self.entries(&request.into_inner().prefix),
        }))
    }

    /// All values or none: the first bad key or value is refused naming it.
    async fn set_config(
        &self,
        request: Request<SetConfigRequest>,
    ) -> Result<Response<SetConfigResponse>, Status> {
        let req = request.into_inner();
        let mut limits = self.limits.limits();
        let mut keys: Vec<_> = req.values.iter().collect();
        keys.sort();
        for (k, v) in keys {
            limits.set(k, v).map_err(status)?;
        }
        self.save_limits(limits).await?;
        Ok(Response::new(SetConfigResponse {
            entries: self.entries(""),
        }))
    }

    /// Execution records by time range and subject ("job/N", "store/N", "rg/N"); the
    /// scheduling and audit logs come with [placement] and [mc-core].
    async fn query_history(
        &self,
        request: Request<QueryHistoryRequest>,
    ) -> Result<Response<QueryHistoryResponse>, Status> {
        let req = request.into_inner();
        if req.kind() != HistoryKind::Execution {
            return Err(unimplemented(
                "scheduling and audit logs",
                "[placement], [mc-core]",
            ));
        }
        let (after, limit) = page(&req.page)?;
        let subject = match req.subject.split_once('/') {
            None if req.subject.is_empty() => None,
            Some((kind @ ("job" | "store" | "rg"), id)) => Some((
                kind.to_string(),
                id.parse::<u64>().map_err(|_| {
                    status(McError::invalid(
                        "subject",
                        "the id after / must be a number",
                    ))
                })?,
            )),
            _ => {
                return Err(status(McError::invalid(
                    "subject",
                    "expected job/N, store/N or rg/N",
                )));
            }
        };
        let range = req.range.unwrap_or_default();
        let mut entries = Vec::new();
        let mut index = 0u64;
        let mut more = false;
        for job in record::load_jobs(&*self.catalog).map_err(status)? {
            for e in record::load_execs(&*self.catalog, job.id).map_err(status)? {
                let keep = match &subject {
                    None => true,
                    Some((k, id)) if k == "job" => e.job_id == *id,
                    Some((k, id)) if k == "store" => e.store == Some(*id),
                    Some((_, id)) => e.step.rg() == Some(*id),
                } && (range.start_unix_ms == 0
                    || e.dispatched_ms >= range.start_unix_ms)
                    && (range.end_unix_ms == 0 || e.dispatched_ms < range.end_unix_ms);
                if !keep {
                    continue;
                }
                index += 1;
                if index <= after {
                    continue;
                }
                if entries.len() == limit {
                    more = true;
                    break;
                }
                entries.push(HistoryEntry {
                    entry: Some(history_entry::Entry::Execution(convert::execution(&e))),
                });
            }
        }
        let next_page_token = if more {
            (after + entries.len() as u64).to_string()
        } else {
            String::new()
        };
        Ok(Response::new(QueryHistoryResponse {
            entries,
            page: Some(PageResponse { next_page_token }),
        }))
    }

    async fn list_alerts(
        &self,
        _: Request<ListAlertsRequest>,
    ) -> Result<Response<ListAlertsResponse>, Status> {
        Err(unimplemented("alerts", "[mc-core]"))
    }

    async fn get_members(
        &self,
        _: Request<GetMembersRequest>,
    ) -> Result<Response<GetMembersResponse>, Status> {
        Ok(Response::new((self.members)()))
    }
}
