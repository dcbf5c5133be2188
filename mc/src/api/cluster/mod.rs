//! ClusterService: the cluster as SREs read and steer it. Stores, RGs and regions from the
//! live view; store state, labels and limits, run-time config, history, alerts, members and
//! users from the catalog; the schedulers' state, pauses and config. Every changing call is
//! audited.
//!
//! The service's calls are answered here for the schedulers, run-time config and members, and
//! by topic in the submodules: stores (`store_calls`), RGs and regions (`shape_calls`), history
//! and alerts (`history_calls`), users, roles and tokens (`access_calls`).

mod access_calls;
mod history_calls;
mod shape_calls;
mod store_calls;

use std::sync::Arc;

use proto::v1::cluster_service_server::ClusterService;
use proto::v1::*;
use tonic::{Request, Response, Status};

use crate::api::{audit, convert, errors::status, page_reply, split_page};
use crate::catalog::users;
use crate::catalog::{CatalogStore, WriteBatch};
use crate::clock::Clock;
use crate::cluster::{self, LiveCluster, stores};
use crate::error::McError;
use crate::history::{self as logs, LogIds};
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

    /// Records `call` with the job and subjects it concerns.
    async fn audit<T>(
        &self,
        call: audit::Call<'_>,
        job_id: u64,
        subjects: Vec<String>,
        result: &Result<Response<T>, Status>,
    ) {
        let call = audit::Call {
            job_id,
            subjects,
            ..call
        };
        audit::record(&*self.catalog, &self.log_ids, call, result).await;
    }

    /// Audits a call that started no job, then answers what it answers.
    async fn audited<T>(
        &self,
        call: audit::Call<'_>,
        subjects: Vec<String>,
        result: Result<Response<T>, Status>,
    ) -> Result<Response<T>, Status> {
        self.audit(call, 0, subjects, &result).await;
        result
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
        call: audit::Call<'_>,
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
        self.audit(call, 0, subjects, &result).await;
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
        store_calls::list_stores(self, request).await
    }

    async fn get_store(
        &self,
        request: Request<GetStoreRequest>,
    ) -> Result<Response<GetStoreResponse>, Status> {
        store_calls::get_store(self, request).await
    }

    async fn set_store_labels(
        &self,
        request: Request<SetStoreLabelsRequest>,
    ) -> Result<Response<SetStoreLabelsResponse>, Status> {
        store_calls::set_store_labels(self, request).await
    }

    async fn set_store_limit(
        &self,
        request: Request<SetStoreLimitRequest>,
    ) -> Result<Response<SetStoreLimitResponse>, Status> {
        store_calls::set_store_limit(self, request).await
    }

    async fn set_store_maintenance(
        &self,
        request: Request<SetStoreMaintenanceRequest>,
    ) -> Result<Response<SetStoreMaintenanceResponse>, Status> {
        store_calls::set_store_maintenance(self, request).await
    }

    async fn set_store_state(
        &self,
        request: Request<SetStoreStateRequest>,
    ) -> Result<Response<SetStoreStateResponse>, Status> {
        store_calls::set_store_state(self, request).await
    }

    async fn list_rgs(
        &self,
        request: Request<ListRgsRequest>,
    ) -> Result<Response<ListRgsResponse>, Status> {
        shape_calls::list_rgs(self, request).await
    }

    async fn get_rg(
        &self,
        request: Request<GetRgRequest>,
    ) -> Result<Response<GetRgResponse>, Status> {
        shape_calls::get_rg(self, request).await
    }

    async fn list_regions(
        &self,
        request: Request<ListRegionsRequest>,
    ) -> Result<Response<ListRegionsResponse>, Status> {
        shape_calls::list_regions(self, request).await
    }

    async fn get_region(
        &self,
        request: Request<GetRegionRequest>,
    ) -> Result<Response<GetRegionResponse>, Status> {
        shape_calls::get_region(self, request).await
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
        let call = audit::Call::begin("ClusterService/PauseScheduler", &request);
        let req = request.into_inner();
        let until = match req.duration_secs {
            0 => u64::MAX,
            secs => crate::clock::SystemClock
                .now_ms()
                .saturating_add(secs.saturating_mul(1_000)),
        };
        let info = self.set_paused(call, &req.name, Some(until)).await?;
        Ok(Response::new(PauseSchedulerResponse {
            scheduler: Some(info),
        }))
    }

    async fn resume_scheduler(
        &self,
        request: Request<ResumeSchedulerRequest>,
    ) -> Result<Response<ResumeSchedulerResponse>, Status> {
        let call = audit::Call::begin("ClusterService/ResumeScheduler", &request);
        let req = request.into_inner();
        let info = self.set_paused(call, &req.name, None).await?;
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
        let call = audit::Call::begin("ClusterService/SetConfig", &request);
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
        self.audit(call, job_id, subjects, &result).await;
        result
    }

    /// Execution records, the scheduling log or the audit log, by time range and subject
    /// ("job/N", "store/N", "rg/N", "user/NAME").
    async fn query_history(
        &self,
        request: Request<QueryHistoryRequest>,
    ) -> Result<Response<QueryHistoryResponse>, Status> {
        history_calls::query_history(self, request).await
    }

    async fn list_alerts(
        &self,
        request: Request<ListAlertsRequest>,
    ) -> Result<Response<ListAlertsResponse>, Status> {
        history_calls::list_alerts(self, request).await
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
        request: Request<ListUsersRequest>,
    ) -> Result<Response<ListUsersResponse>, Status> {
        access_calls::list_users(self, request).await
    }

    async fn set_user(
        &self,
        request: Request<SetUserRequest>,
    ) -> Result<Response<SetUserResponse>, Status> {
        access_calls::set_user(self, request).await
    }

    async fn delete_user(
        &self,
        request: Request<DeleteUserRequest>,
    ) -> Result<Response<DeleteUserResponse>, Status> {
        access_calls::delete_user(self, request).await
    }

    async fn list_roles(
        &self,
        request: Request<ListRolesRequest>,
    ) -> Result<Response<ListRolesResponse>, Status> {
        access_calls::list_roles(self, request).await
    }

    async fn set_role(
        &self,
        request: Request<SetRoleRequest>,
    ) -> Result<Response<SetRoleResponse>, Status> {
        access_calls::set_role(self, request).await
    }

    async fn delete_role(
        &self,
        request: Request<DeleteRoleRequest>,
    ) -> Result<Response<DeleteRoleResponse>, Status> {
        access_calls::delete_role(self, request).await
    }

    async fn create_token(
        &self,
        request: Request<CreateTokenRequest>,
    ) -> Result<Response<CreateTokenResponse>, Status> {
        access_calls::create_token(self, request).await
    }

    async fn revoke_token(
        &self,
        request: Request<RevokeTokenRequest>,
    ) -> Result<Response<RevokeTokenResponse>, Status> {
        access_calls::revoke_token(self, request).await
    }

    async fn list_tokens(
        &self,
        request: Request<ListTokensRequest>,
    ) -> Result<Response<ListTokensResponse>, Status> {
        access_calls::list_tokens(self, request).await
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
