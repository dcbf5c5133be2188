//! ClusterService: the cluster as SREs read and steer it. Stores, RGs and regions from the
//! live view; store state, labels and limits, run-time config, history, alerts, members and
//! users from the catalog; the schedulers' state, pauses and config. Every changing call is
//! audited.

use std::sync::Arc;

use proto::v1::cluster_service_server::ClusterService;
use proto::v1::*;
use tonic::{Request, Response, Status};

use crate::api::{audit, convert, errors::status, page_reply, split_page};
use crate::catalog::logs::{self, LogIds};
use crate::catalog::users;
use crate::catalog::{CatalogStore, WriteBatch};
use crate::clock::Clock;
use crate::cluster::{self, LiveCluster, stores};
use crate::error::McError;
use crate::jobs::limits::{CONFIG_KEYS, Limits, LimitsControl};
use crate::jobs::record;
use crate::schedule::ScheduleConfig;
use crate::schedule::coordinator::{ScheduleControl, SchedulerStatus};

/// The MC group as it stands: members, leader, term.
pub type MembersFn = Arc<dyn Fn() -> GetMembersResponse + Send + Sync>;

/// Starts a DrainStore job for a store; answers its id.
pub type DrainFn =
    Arc<dyn Fn(u64) -> futures::future::BoxFuture<'static, Result<u64, McError>> + Send + Sync>;

pub struct ClusterApi<S> {
    cluster: Arc<LiveCluster>,
    catalog: Arc<S>,
    limits: Arc<dyn LimitsControl>,
    schedule: Arc<dyn ScheduleControl>,
    members: MembersFn,
    drain: DrainFn,
    log_ids: Arc<LogIds>,
}

/// Where the limits are kept, so a restarted MC applies what an operator set.
pub const LIMITS_KEY: &[u8] = b"meta/limits";

impl<S: CatalogStore> ClusterApi<S> {
    pub fn new(
        cluster: Arc<LiveCluster>,
        catalog: Arc<S>,
        limits: Arc<dyn LimitsControl>,
        schedule: Arc<dyn ScheduleControl>,
        members: MembersFn,
        drain: DrainFn,
        log_ids: Arc<LogIds>,
    ) -> Self {
        Self {
            cluster,
            catalog,
            limits,
            schedule,
            members,
            drain,
            log_ids,
        }
    }

    /// QueryHistory over the scheduling log (decisions and refused commands) or the audit log.
    fn query_log(
        &self,
        req: &QueryHistoryRequest,
    ) -> Result<Response<QueryHistoryResponse>, Status> {
        let (token, limit) = key_page(&req.page)?;
        let range = req.range.unwrap_or_default();
        let table = if req.kind() == HistoryKind::Audit {
            logs::AUDIT
        } else {
            logs::SCHEDULING
        };
        let after = token.map(|t| format!("{table}/{t}").into_bytes());
        let q = logs::LogQuery {
            table,
            from_ms: range.start_unix_ms,
            to_ms: range.end_unix_ms,
            subject: &req.subject,
            after: after.as_deref(),
            limit,
        };
        let (entries, more) = if req.kind() == HistoryKind::Audit {
            let (v, more) =
                logs::query::<logs::Audit>(&*self.catalog, &q, |a| &a.subjects).map_err(status)?;
            let entries = v
                .into_iter()
                .map(|a| HistoryEntry {
                    entry: Some(history_entry::Entry::Audit(AuditRecord {
                        id: a.id,
                        at_unix_ms: a.at_ms,
                        principal: a.principal,
                        method: a.method,
                        request: a.request,
                        result: a.result,
                        job_id: a.job_id,
                    })),
                })
                .collect::<Vec<_>>();
            (entries, more)
        } else {
            let (v, more) = logs::query::<logs::Decision>(&*self.catalog, &q, |d| &d.subjects)
                .map_err(status)?;
            let entries = v
                .into_iter()
                .map(|d| HistoryEntry {
                    entry: Some(history_entry::Entry::Decision(SchedulingDecision {
                        id: d.id,
                        at_unix_ms: d.at_ms,
                        scheduler: d.scheduler,
                        subject: d.subjects.join(","),
                        taken: d.taken,
                        reason: d.reason,
                        scores: d
                            .scores
                            .into_iter()
                            .map(|(name, value)| Score { name, value })
                            .collect(),
                        proposed: d.proposed.map(|p| p.to_proto()),
                        job_id: d.job_id,
                    })),
                })
                .collect::<Vec<_>>();
            (entries, more)
        };
        let page = page_reply(more.is_some(), || {
            more.as_deref()
                .and_then(|k| k.strip_prefix(format!("{table}/").as_bytes()))
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .unwrap_or_default()
        });
        Ok(Response::new(QueryHistoryResponse { entries, page }))
    }

    async fn audit<T>(
        &self,
        principal: String,
        method: &str,
        request: String,
        job_id: u64,
        subjects: Vec<String>,
        result: &Result<Response<T>, Status>,
    ) {
        let call = audit::Call {
            principal,
            method,
            request,
            job_id,
            subjects,
        };
        audit::record(&*self.catalog, &self.log_ids, call, result).await;
    }

    /// Persists, then applies.
    async fn save_limits(&self, limits: Limits) -> Result<(), Status> {
        let mut batch = WriteBatch::default();
        batch.put(
            LIMITS_KEY,
            serde_json::to_vec(&limits).map_err(|e| status(McError::internal(e)))?,
        );
        self.catalog.write(batch).await.map_err(status)?;
        self.limits.set_limits(limits);
        Ok(())
    }

    fn entries(&self, prefix: &str) -> Vec<ConfigEntry> {
        let (now, defaults) = (self.limits.limits(), Limits::default());
        let mut out: Vec<ConfigEntry> = CONFIG_KEYS
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, d)| ConfigEntry {
                key: (*k).into(),
                value: now.get(k).unwrap_or_default(),
                default_value: defaults.get(k).unwrap_or_default(),
                description: (*d).into(),
            })
            .collect();
        let (schedule, intervals) = (self.schedule.config(), self.schedule.defaults());
        let default_schedule = ScheduleConfig::default();
        let mut keys: Vec<(String, String)> = crate::schedule::config::KEYS
            .iter()
            .map(|(k, d)| (k.to_string(), d.to_string()))
            .collect();
        keys.extend(intervals.keys().map(|name| {
            (
                format!("schedule.{name}.interval-ms"),
                format!("how often {name} runs"),
            )
        }));
        out.extend(
            keys.into_iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(k, d)| ConfigEntry {
                    value: schedule.get(&k, &intervals).unwrap_or_default(),
                    default_value: default_schedule.get(&k, &intervals).unwrap_or_default(),
                    description: d,
                    key: k,
                }),
        );
        out
    }

    /// Persists, then applies.
    async fn save_schedule(&self, config: ScheduleConfig) -> Result<(), Status> {
        let mut batch = WriteBatch::default();
        batch.put(
            crate::schedule::config::CONFIG_KEY,
            serde_json::to_vec(&config).map_err(|e| status(McError::internal(e)))?,
        );
        self.catalog.write(batch).await.map_err(status)?;
        self.schedule.apply(config);
        Ok(())
    }

    fn scheduler(&self, name: &str) -> Result<SchedulerInfo, Status> {
        let now = crate::clock::SystemClock.now_ms();
        self.schedule
            .status(now)
            .into_iter()
            .find(|s| s.name == name)
            .map(|s| scheduler_info(&s))
            .ok_or_else(|| status(McError::not_found("scheduler", name)))
    }

    /// Pauses (`until` Some) or resumes (None) a scheduler, persisted; audited.
    async fn set_paused(
        &self,
        principal: String,
        method: &str,
        text: String,
        name: &str,
        until: Option<u64>,
    ) -> Result<SchedulerInfo, Status> {
        let result = async {
            self.scheduler(name)?;
            let mut config = self.schedule.config();
            match until {
                Some(u) => config.paused.insert(name.to_string(), u),
                None => config.paused.remove(name),
            };
            self.save_schedule(config).await?;
            self.scheduler(name).map(Response::new)
        }
        .await;
        let subjects = vec![format!("scheduler/{name}")];
        self.audit(principal, method, text, 0, subjects, &result)
            .await;
        result.map(|r| r.into_inner())
    }

    /// One store as ListStores shows it, read in place (no copy of the view, and each lock
    /// taken once, never inside another).
    fn store_of(&self, id: u64) -> Option<Store> {
        let stats = self.cluster.stats(id).unwrap_or_default();
        let last_seen = self.cluster.last_seen(id).unwrap_or(0);
        let limit = {
            let l = self.limits.limits();
            let (steps, snaps) = l
                .per_store
                .get(&id)
                .copied()
                .unwrap_or((l.store_steps_per_minute, l.store_snapshots_in_flight));
            StoreLimit {
                steps_per_minute: steps,
                snapshots_in_flight: snaps,
            }
        };
        self.cluster.read(|view| {
            let s = view.store(id)?;
            Some(Store {
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
                replica_count: view.replica_count(s.id) as u32,
                leader_count: view.leader_count(s.id) as u32,
                last_heartbeat_unix_ms: last_seen,
                limit: Some(limit),
                version: String::new(),
                maintenance_until_unix_ms: view.maintenance.get(&id).copied().unwrap_or(0),
            })
        })
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

/// Most items one page of any list call holds.
pub const MAX_PAGE: usize = 1_000;

/// Records one history call reads past its filter at most: a filter that matches little
/// answers a short page with a token to go on, not a pass over the whole history.
const SCAN_BUDGET: usize = 20_000;

/// A page of a log or history read by key: the token is the key (after its table's prefix) of
/// the last record the previous page looked at; None for the first page.
fn key_page(req: &Option<PageRequest>) -> Result<(Option<String>, usize), Status> {
    let p = req.clone().unwrap_or_default();
    let token = if p.page_token.is_empty() {
        None
    } else if p.page_token.len() <= 40
        && p.page_token
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == '/')
    {
        Some(p.page_token)
    } else {
        return Err(status(McError::invalid(
            "page.page_token",
            "not a token this server issued",
        )));
    };
    let limit = match p.limit as usize {
        0 => 100,
        n if n > MAX_PAGE => {
            return Err(status(McError::invalid(
                "page.limit",
                format!("{n} is more than the {MAX_PAGE} one page may hold"),
            )));
        }
        n => n,
    };
    Ok((token, limit))
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
    match p.limit {
        0 => Ok((after, 100)),
        n if n as usize > MAX_PAGE => Err(status(McError::invalid(
            "page.limit",
            format!("{n} is more than the {MAX_PAGE} one page may hold"),
        ))),
        n => Ok((after, n as usize)),
    }
}

#[tonic::async_trait]
impl<S: CatalogStore> ClusterService for ClusterApi<S> {
    async fn list_stores(
        &self,
        request: Request<ListStoresRequest>,
    ) -> Result<Response<ListStoresResponse>, Status> {
        let req = request.into_inner();
        let ids: Vec<u64> = self.cluster.read(|view| {
            view.stores
                .values()
                .filter(|s| {
                    req.states.is_empty() || req.states.contains(&(store_state(s.state) as i32))
                })
                .filter(|s| req.labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
                .map(|s| s.id)
                .collect()
        });
        let stores = ids.into_iter().filter_map(|id| self.store_of(id)).collect();
        Ok(Response::new(ListStoresResponse { stores }))
    }

    async fn get_store(
        &self,
        request: Request<GetStoreRequest>,
    ) -> Result<Response<GetStoreResponse>, Status> {
        let id = request.into_inner().store_id;
        let store = self
            .store_of(id)
            .ok_or_else(|| status(McError::not_found("store", id)))?;
        Ok(Response::new(GetStoreResponse { store: Some(store) }))
    }

    /// SRE labels win over the store's own `--labels` and survive its restarts.
    async fn set_store_labels(
        &self,
        request: Request<SetStoreLabelsRequest>,
    ) -> Result<Response<SetStoreLabelsResponse>, Status> {
        let principal = audit::principal(&request);
        let text = format!("{:?}", request.get_ref());
        let req = request.into_inner();
        let subjects = vec![format!("store/{}", req.store_id)];
        let result: Result<Response<SetStoreLabelsResponse>, Status> = async {
            let valid = |k: &str| {
                !k.is_empty()
                    && k.len() <= 63
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
            };
            if let Some(bad) = req.labels.keys().find(|k| !valid(k)) {
                return Err(status(McError::invalid(
                    format!("labels.{bad}"),
                    "a label key is 1-63 letters, digits or ._-/",
                )));
            }
            let labels: std::collections::BTreeMap<String, String> =
                req.labels.clone().into_iter().collect();
            let before = self.cluster.store(req.store_id);
            let (overrides, info) = self
                .cluster
                .set_labels(req.store_id, &labels)
                .map_err(status)?;
            if let Err(e) = stores::save_labels(&*self.catalog, &info, &overrides).await {
                if let Some(before) = before {
                    self.cluster
                        .restore(before, crate::clock::SystemClock.now_ms());
                }
                return Err(status(e));
            }
            Ok(Response::new(SetStoreLabelsResponse {
                store: self.store_of(info.id),
            }))
        }
        .await;
        self.audit(
            principal,
            "ClusterService/SetStoreLabels",
            text,
            0,
            subjects,
            &result,
        )
        .await;
        result
    }

    /// Store 0 sets the default for every store; another id overrides that store's.
    async fn set_store_limit(
        &self,
        request: Request<SetStoreLimitRequest>,
    ) -> Result<Response<SetStoreLimitResponse>, Status> {
        let principal = audit::principal(&request);
        let text = format!("{:?}", request.get_ref());
        let subjects = vec![format!("store/{}", request.get_ref().store_id)];
        let result: Result<Response<SetStoreLimitResponse>, Status> = async move {
            let req = request.into_inner();
            let limit = req
                .limit
                .ok_or_else(|| status(McError::invalid("limit", "missing")))?;
            let mut limits = self.limits.limits();
            if req.store_id == 0 {
                limits.store_steps_per_minute = limit.steps_per_minute;
                limits.store_snapshots_in_flight = limit.snapshots_in_flight;
            } else {
                self.cluster
                    .store(req.store_id)
                    .ok_or_else(|| status(McError::not_found("store", req.store_id)))?;
                limits.per_store.insert(
                    req.store_id,
                    (limit.steps_per_minute, limit.snapshots_in_flight),
                );
            }
            self.save_limits(limits).await?;
            let store = self.store_of(req.store_id);
            Ok(Response::new(SetStoreLimitResponse { store }))
        }
        .await;
        let job_id = 0;
        self.audit(
            principal,
            "ClusterService/SetStoreLimit",
            text,
            job_id,
            subjects,
            &result,
        )
        .await;
        result
    }

    async fn set_store_maintenance(
        &self,
        request: Request<SetStoreMaintenanceRequest>,
    ) -> Result<Response<SetStoreMaintenanceResponse>, Status> {
        let principal = audit::principal(&request);
        let text = format!("{:?}", request.get_ref());
        let req = request.into_inner();
        let subjects = vec![format!("store/{}", req.store_id)];
        let result: Result<Response<SetStoreMaintenanceResponse>, Status> = async {
            const MAX_WINDOW_SECS: u64 = 7 * 24 * 3_600;
            if req.window_secs > MAX_WINDOW_SECS {
                return Err(status(McError::invalid(
                    "window_secs",
                    format!("{} s; a window lasts at most 7 days", req.window_secs),
                )));
            }
            self.cluster
                .store(req.store_id)
                .ok_or_else(|| status(McError::not_found("store", req.store_id)))?;
            let now = crate::clock::SystemClock.now_ms();
            let until = (req.window_secs > 0).then(|| now + req.window_secs * 1_000);
            // Persisted first: a new MC leader keeps the window.
            stores::save_maintenance(&*self.catalog, req.store_id, until)
                .await
                .map_err(status)?;
            self.cluster
                .set_maintenance(req.store_id, until)
                .map_err(status)?;
            let leaders_left = self.cluster.read(|v| v.leader_count(req.store_id)) as u32;
            Ok(Response::new(SetStoreMaintenanceResponse {
                store: self.store_of(req.store_id),
                leaders_left,
                safe_to_stop: leaders_left == 0,
            }))
        }
        .await;
        self.audit(
            principal,
            "ClusterService/SetStoreMaintenance",
            text,
            0,
            subjects,
            &result,
        )
        .await;
        result
    }

    async fn set_store_state(
        &self,
        request: Request<SetStoreStateRequest>,
    ) -> Result<Response<SetStoreStateResponse>, Status> {
        let principal = audit::principal(&request);
        let text = format!("{:?}", request.get_ref());
        let subjects = vec![format!("store/{}", request.get_ref().store_id)];
        let result: Result<Response<SetStoreStateResponse>, Status> = async move {
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
            let before = self.cluster.store(req.store_id);
            self.cluster
                .set_state(req.store_id, state)
                .map_err(status)?;
            let s = self
                .cluster
                .store(req.store_id)
                .ok_or_else(|| status(McError::not_found("store", req.store_id)))?;
            // Persisted so the next MC leader keeps it; undone here if the catalog refuses.
            if let Err(e) = stores::save_if_changed(&*self.catalog, &s).await {
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
                store: self.store_of(req.store_id),
                job_id,
            }))
        }
        .await;
        let job_id = result.as_ref().map(|r| r.get_ref().job_id).unwrap_or(0);
        self.audit(
            principal,
            "ClusterService/SetStoreState",
            text,
            job_id,
            subjects,
            &result,
        )
        .await;
        result
    }

    async fn list_rgs(
        &self,
        request: Request<ListRgsRequest>,
    ) -> Result<Response<ListRgsResponse>, Status> {
        let req = request.into_inner();
        let (after, limit) = page(&req.page)?;
        // Read in place, from the page's first id on: a viewer looping over pages costs the
        // leader what it reads, not a copy of the view per call.
        let mut rgs: Vec<Rg> = self.cluster.read(|view| match req.store_id {
            0 => view
                .rgs
                .iter_from(after.saturating_add(1))
                .map(|(_, r)| convert::rg(r, view))
                .take(limit + 1)
                .collect(),
            store => view
                .replicas_on_from(store, after.saturating_add(1))
                .take_while(|id| *id > after)
                .filter_map(|id| view.rg(id))
                .map(|r| convert::rg(r, view))
                .take(limit + 1)
                .collect(),
        });
        let more = split_page(&mut rgs, limit);
        let page = page_reply(more, || {
            rgs.last().map(|r| r.id.to_string()).unwrap_or_default()
        });
        Ok(Response::new(ListRgsResponse { rgs, page }))
    }

    async fn get_rg(
        &self,
        request: Request<GetRgRequest>,
    ) -> Result<Response<GetRgResponse>, Status> {
        let id = request.into_inner().rg_id;
        let (rg, regions) = self
            .cluster
            .read(|view| {
                let r = view.rg(id)?;
                let regions = r
                    .regions
                    .iter()
                    .filter_map(|id| view.region(*id))
                    .map(|x| convert::region(x, view))
                    .collect();
                Some((convert::rg(r, view), regions))
            })
            .ok_or_else(|| status(McError::not_found("rg", id)))?;
        Ok(Response::new(GetRgResponse {
            rg: Some(rg),
            regions,
        }))
    }

    async fn list_regions(
        &self,
        request: Request<ListRegionsRequest>,
    ) -> Result<Response<ListRegionsResponse>, Status> {
        let req = request.into_inner();
        let (after, limit) = page(&req.page)?;
        // A filter that matches little stops after SCAN_BUDGET regions looked at, with a token
        // to go on from the last one (`resume`), instead of a pass over every region.
        let mut resume = None;
        let mut regions: Vec<Region> = self.cluster.read(|view| {
            let matches = |r: &&cluster::RegionInfo| {
                (req.rg_id == 0 || r.rg == req.rg_id)
                    && (req.object_id == 0 || r.object == req.object_id)
                    && (req.store_id == 0
                        || view
                            .rg(r.rg)
                            .is_some_and(|g| g.members.contains_key(&req.store_id)))
            };
            let from = after.saturating_add(1);
            match req.rg_id {
                // One RG's regions: its own set, not a pass over every region.
                0 => {
                    let mut out = Vec::new();
                    for (i, (id, r)) in view.regions.iter_from(from).enumerate() {
                        if out.len() > limit {
                            break;
                        }
                        if i >= SCAN_BUDGET {
                            resume = Some(*id - 1);
                            break;
                        }
                        if matches(&r) {
                            out.push(convert::region(r, view));
                        }
                    }
                    out
                }
                rg => view
                    .rg(rg)
                    .map(|g| {
                        g.regions
                            .iter()
                            .filter(|id| **id >= from)
                            .filter_map(|id| view.region(*id))
                            .filter(matches)
                            .map(|x| convert::region(x, view))
                            .take(limit + 1)
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        });
        let more = split_page(&mut regions, limit);
        let page = match resume {
            Some(last) if !more => page_reply(true, || last.to_string()),
            _ => page_reply(more, || {
                regions.last().map(|r| r.id.to_string()).unwrap_or_default()
            }),
        };
        Ok(Response::new(ListRegionsResponse { regions, page }))
    }

    async fn get_region(
        &self,
        request: Request<GetRegionRequest>,
    ) -> Result<Response<GetRegionResponse>, Status> {
        let id = request.into_inner().region_id;
        let (region, rg) = self
            .cluster
            .read(|view| {
                let r = view.region(id)?;
                Some((
                    convert::region(r, view),
                    view.rg(r.rg).map(|g| convert::rg(g, view)),
                ))
            })
            .ok_or_else(|| status(McError::not_found("region", id)))?;
        Ok(Response::new(GetRegionResponse {
            region: Some(region),
            rg,
        }))
    }

    async fn list_schedulers(
        &self,
        _: Request<ListSchedulersRequest>,
    ) -> Result<Response<ListSchedulersResponse>, Status> {
        let now = crate::clock::SystemClock.now_ms();
        Ok(Response::new(ListSchedulersResponse {
            schedulers: self
                .schedule
                .status(now)
                .iter()
                .map(scheduler_info)
                .collect(),
        }))
    }

    async fn pause_scheduler(
        &self,
        request: Request<PauseSchedulerRequest>,
    ) -> Result<Response<PauseSchedulerResponse>, Status> {
        let principal = audit::principal(&request);
        let text = format!("{:?}", request.get_ref());
        let req = request.into_inner();
        let until = match req.duration_secs {
            0 => u64::MAX,
            secs => crate::clock::SystemClock
                .now_ms()
                .saturating_add(secs.saturating_mul(1_000)),
        };
        let info = self
            .set_paused(
                principal,
                "ClusterService/PauseScheduler",
                text,
                &req.name,
                Some(until),
            )
            .await?;
        Ok(Response::new(PauseSchedulerResponse {
            scheduler: Some(info),
        }))
    }

    async fn resume_scheduler(
        &self,
        request: Request<ResumeSchedulerRequest>,
    ) -> Result<Response<ResumeSchedulerResponse>, Status> {
        let principal = audit::principal(&request);
        let text = format!("{:?}", request.get_ref());
        let req = request.into_inner();
        let info = self
            .set_paused(
                principal,
                "ClusterService/ResumeScheduler",
                text,
                &req.name,
                None,
            )
            .await?;
        Ok(Response::new(ResumeSchedulerResponse {
            scheduler: Some(info),
        }))
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
        let principal = audit::principal(&request);
        let text = format!("{:?}", request.get_ref());
        let subjects = Vec::new();
        let result: Result<Response<SetConfigResponse>, Status> = async move {
            let req = request.into_inner();
            let mut limits = self.limits.limits();
            let mut schedule = self.schedule.config();
            let intervals = self.schedule.defaults();
            let mut keys: Vec<_> = req.values.iter().collect();
            keys.sort();
            for (k, v) in keys {
                if k.starts_with("schedule.") {
                    schedule.set(k, v, &intervals).map_err(status)?;
                } else {
                    limits.set(k, v).map_err(status)?;
                }
            }
            self.save_limits(limits).await?;
            self.save_schedule(schedule).await?;
            Ok(Response::new(SetConfigResponse {
                entries: self.entries(""),
            }))
        }
        .await;
        let job_id = 0;
        self.audit(
            principal,
            "ClusterService/SetConfig",
            text,
            job_id,
            subjects,
            &result,
        )
        .await;
        result
    }

    /// Execution records, the scheduling log or the audit log, by time range and subject
    /// ("job/N", "store/N", "rg/N", "user/NAME").
    async fn query_history(
        &self,
        request: Request<QueryHistoryRequest>,
    ) -> Result<Response<QueryHistoryResponse>, Status> {
        let req = request.into_inner();
        if matches!(req.kind(), HistoryKind::Scheduling | HistoryKind::Audit) {
            return self.query_log(&req);
        }
        if req.kind() != HistoryKind::Execution {
            return Err(status(McError::invalid(
                "kind",
                "one of execution, scheduling, audit",
            )));
        }
        // The page token is the key of the last record a page looked at: the next page
        // starts after it, reading only what it returns (and at most SCAN_BUDGET records that
        // a filter skips), never every job from the first.
        let (token, limit) = key_page(&req.page)?;
        let resume = token.map(|t| format!("exec/{t}"));
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
        // One job's records are one key range; the others are all of them.
        let (first, end) = match &subject {
            Some((k, id)) if k == "job" => (
                format!("exec/{id:016x}/").into_bytes(),
                format!("exec/{id:016x}0").into_bytes(),
            ),
            _ => (b"exec/".to_vec(), b"exec0".to_vec()),
        };
        let mut from = match resume {
            // Just past the last key looked at.
            Some(key) => {
                let mut k = key.into_bytes();
                k.push(0);
                k.max(first)
            }
            None => first,
        };
        let mut entries = Vec::new();
        let mut last_key: Option<Vec<u8>> = None;
        let mut scanned = 0usize;
        let mut more = false;
        'pages: loop {
            let chunk = self.catalog.scan_range(&from, &end, 256).map_err(status)?;
            let exhausted = chunk.len() < 256;
            for (key, value) in chunk {
                if entries.len() == limit || scanned >= SCAN_BUDGET {
                    more = true;
                    break 'pages;
                }
                scanned += 1;
                let e: record::ExecutionRecord = serde_json::from_slice(&value)
                    .map_err(|e| status(McError::corrupt("execution record", e)))?;
                from = key.clone();
                from.push(0);
                last_key = Some(key);
                let keep = match &subject {
                    None => true,
                    Some((k, id)) if k == "job" => e.job_id == *id,
                    Some((k, id)) if k == "store" => e.store == Some(*id),
                    Some((_, id)) => e.step.rg() == Some(*id),
                } && (range.start_unix_ms == 0
                    || e.dispatched_ms >= range.start_unix_ms)
                    && (range.end_unix_ms == 0 || e.dispatched_ms < range.end_unix_ms);
                if keep {
                    entries.push(HistoryEntry {
                        entry: Some(history_entry::Entry::Execution(convert::execution(&e))),
                    });
                }
            }
            if exhausted {
                break;
            }
        }
        let page = page_reply(more, || {
            last_key
                .as_deref()
                .and_then(|k| k.strip_prefix(b"exec/"))
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .unwrap_or_default()
        });
        Ok(Response::new(QueryHistoryResponse { entries, page }))
    }

    async fn list_alerts(
        &self,
        request: Request<ListAlertsRequest>,
    ) -> Result<Response<ListAlertsResponse>, Status> {
        let req = request.into_inner();
        let range = req.range.unwrap_or_default();
        let mut alerts: Vec<Alert> = logs::alerts(&*self.catalog)
            .map_err(status)?
            .into_iter()
            .filter(|a| req.include_resolved || !a.resolved)
            .filter(|a| a.last_ms >= range.start_unix_ms)
            .filter(|a| range.end_unix_ms == 0 || a.first_ms < range.end_unix_ms)
            .map(|a| Alert {
                id: a.id,
                severity: match a.severity {
                    logs::Severity::Info => AlertSeverity::Info,
                    logs::Severity::Warning => AlertSeverity::Warning,
                    logs::Severity::Critical => AlertSeverity::Critical,
                } as i32,
                subject: a.subject,
                message: a.message,
                first_unix_ms: a.first_ms,
                last_unix_ms: a.last_ms,
                count: a.count,
                resolved: a.resolved,
            })
            .collect();
        alerts.sort_by_key(|a| std::cmp::Reverse(a.last_unix_ms));
        Ok(Response::new(ListAlertsResponse { alerts }))
    }

    async fn get_members(
        &self,
        _: Request<GetMembersRequest>,
    ) -> Result<Response<GetMembersResponse>, Status> {
        let (known, heard) = self.cluster.readiness();
        Ok(Response::new(GetMembersResponse {
            rgs_known: known as u64,
            rgs_heard: heard as u64,
            ..(self.members)()
        }))
    }

    async fn list_users(
        &self,
        _: Request<ListUsersRequest>,
    ) -> Result<Response<ListUsersResponse>, Status> {
        let users = users::list(&*self.catalog)
            .map_err(status)?
            .into_iter()
            .map(|u| User {
                name: u.name,
                roles: u.roles,
            })
            .collect();
        Ok(Response::new(ListUsersResponse { users }))
    }

    async fn set_user(
        &self,
        request: Request<SetUserRequest>,
    ) -> Result<Response<SetUserResponse>, Status> {
        let principal = audit::principal(&request);
        let text = format!("{:?}", request.get_ref());
        let user = request.into_inner().user.unwrap_or_default();
        let subjects = vec![format!("user/{}", user.name)];
        let result: Result<Response<SetUserResponse>, Status> = async {
            let record = users::User {
                name: user.name.clone(),
                roles: user.roles.clone(),
            };
            users::put(&*self.catalog, &record).await.map_err(status)?;
            Ok(Response::new(SetUserResponse { user: Some(user) }))
        }
        .await;
        self.audit(
            principal,
            "ClusterService/SetUser",
            text,
            0,
            subjects,
            &result,
        )
        .await;
        result
    }

    async fn delete_user(
        &self,
        request: Request<DeleteUserRequest>,
    ) -> Result<Response<DeleteUserResponse>, Status> {
        let principal = audit::principal(&request);
        let text = format!("{:?}", request.get_ref());
        let name = request.into_inner().name;
        let subjects = vec![format!("user/{name}")];
        let result: Result<Response<DeleteUserResponse>, Status> = async {
            users::delete(&*self.catalog, &name).await.map_err(status)?;
            Ok(Response::new(DeleteUserResponse {}))
        }
        .await;
        self.audit(
            principal,
            "ClusterService/DeleteUser",
            text,
            0,
            subjects,
            &result,
        )
        .await;
        result
    }

    async fn list_roles(
        &self,
        _: Request<ListRolesRequest>,
    ) -> Result<Response<ListRolesResponse>, Status> {
        let roles = users::roles(&*self.catalog)
            .map_err(status)?
            .into_iter()
            .map(|(role, builtin)| Role {
                name: role.name,
                permissions: role
                    .permissions
                    .iter()
                    .map(|p| p.to_proto() as i32)
                    .collect(),
                builtin,
            })
            .collect();
        Ok(Response::new(ListRolesResponse { roles }))
    }

    async fn set_role(
        &self,
        request: Request<SetRoleRequest>,
    ) -> Result<Response<SetRoleResponse>, Status> {
        let principal = audit::principal(&request);
        let text = format!("{:?}", request.get_ref());
        let role = request.into_inner().role.unwrap_or_default();
        let subjects = vec![format!("role/{}", crate::error::short(&role.name))];
        let result = super::access::set_role(&*self.catalog, role).await;
        self.audit(
            principal,
            "ClusterService/SetRole",
            text,
            0,
            subjects,
            &result,
        )
        .await;
        result
    }

    async fn delete_role(
        &self,
        request: Request<DeleteRoleRequest>,
    ) -> Result<Response<DeleteRoleResponse>, Status> {
        let principal = audit::principal(&request);
        let text = format!("{:?}", request.get_ref());
        let name = request.into_inner().name;
        let subjects = vec![format!("role/{}", crate::error::short(&name))];
        let result = users::delete_role(&*self.catalog, &name)
            .await
            .map(|()| Response::new(DeleteRoleResponse {}))
            .map_err(status);
        self.audit(
            principal,
            "ClusterService/DeleteRole",
            text,
            0,
            subjects,
            &result,
        )
        .await;
        result
    }

    async fn create_token(
        &self,
        request: Request<CreateTokenRequest>,
    ) -> Result<Response<CreateTokenResponse>, Status> {
        let principal = audit::principal(&request);
        let r = request.into_inner();
        // The audit record names the user, never the secret.
        let text = format!(
            "user={} description={:?}",
            crate::error::short(&r.user),
            crate::error::short(&r.description)
        );
        let subjects = vec![format!("user/{}", crate::error::short(&r.user))];
        let result = super::access::create_token(&*self.catalog, &r.user, &r.description).await;
        self.audit(
            principal,
            "ClusterService/CreateToken",
            text,
            0,
            subjects,
            &result,
        )
        .await;
        result
    }

    async fn revoke_token(
        &self,
        request: Request<RevokeTokenRequest>,
    ) -> Result<Response<RevokeTokenResponse>, Status> {
        let principal = audit::principal(&request);
        let text = format!("{:?}", request.get_ref());
        let id = request.into_inner().id;
        let subjects = vec![format!("token/{}", crate::error::short(&id))];
        let result = crate::catalog::tokens::revoke(&*self.catalog, &id)
            .await
            .map(|()| Response::new(RevokeTokenResponse {}))
            .map_err(status);
        self.audit(
            principal,
            "ClusterService/RevokeToken",
            text,
            0,
            subjects,
            &result,
        )
        .await;
        result
    }

    async fn list_tokens(
        &self,
        _: Request<ListTokensRequest>,
    ) -> Result<Response<ListTokensResponse>, Status> {
        let tokens = crate::catalog::tokens::list(&*self.catalog)
            .map_err(status)?
            .into_iter()
            .map(super::access::token_proto)
            .collect();
        Ok(Response::new(ListTokensResponse { tokens }))
    }
}

fn scheduler_info(s: &SchedulerStatus) -> SchedulerInfo {
    SchedulerInfo {
        name: s.name.clone(),
        paused: s.paused_until_ms.is_some(),
        paused_until_unix_ms: s.paused_until_ms.filter(|u| *u != u64::MAX).unwrap_or(0),
        interval_ms: s.interval_ms.min(u32::MAX as u64) as u32,
        last_run_unix_ms: s.last_run_ms,
        decisions_taken: s.taken,
        decisions_skipped: s.skipped,
        failures: s.failures,
    }
}
