//! Stores: listed and shown from the live view; labels, limits, maintenance and state changed
//! in the catalog first, each change audited.

use proto::v1::*;
use tonic::{Request, Response, Status};

use super::*;

pub(super) async fn list_stores<S: CatalogStore>(
    api: &ClusterApi<S>,
    request: Request<ListStoresRequest>,
) -> Result<Response<ListStoresResponse>, Status> {
    let req = request.into_inner();
    let ids: Vec<u64> = api.cluster.read(|view| {
        view.stores
            .values()
            .filter(|s| {
                req.states.is_empty() || req.states.contains(&(store_state(s.state) as i32))
            })
            .filter(|s| req.labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| s.id)
            .collect()
    });
    let stores = ids.into_iter().filter_map(|id| api.store_of(id)).collect();
    Ok(Response::new(ListStoresResponse { stores }))
}

pub(super) async fn get_store<S: CatalogStore>(
    api: &ClusterApi<S>,
    request: Request<GetStoreRequest>,
) -> Result<Response<GetStoreResponse>, Status> {
    let id = request.into_inner().store_id;
    let store = api
        .store_of(id)
        .ok_or_else(|| status(McError::not_found("store", id)))?;
    Ok(Response::new(GetStoreResponse { store: Some(store) }))
}

/// SRE labels win over the store's own `--labels` and survive its restarts.
pub(super) async fn set_store_labels<S: CatalogStore>(
    api: &ClusterApi<S>,
    request: Request<SetStoreLabelsRequest>,
) -> Result<Response<SetStoreLabelsResponse>, Status> {
    let call = audit::Call::begin("ClusterService/SetStoreLabels", &request);
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
        let before = api.cluster.store(req.store_id);
        let (overrides, info) = api
            .cluster
            .set_labels(req.store_id, &labels)
            .map_err(status)?;
        if let Err(e) = stores::save_labels(&*api.catalog, &info, &overrides).await {
            if let Some(before) = before {
                api.cluster
                    .restore(before, crate::clock::SystemClock.now_ms());
            }
            return Err(status(e));
        }
        Ok(Response::new(SetStoreLabelsResponse {
            store: api.store_of(info.id),
        }))
    }
    .await;
    api.audited(call, subjects, result).await
}

/// Store 0 sets the default for every store; another id overrides that store's.
pub(super) async fn set_store_limit<S: CatalogStore>(
    api: &ClusterApi<S>,
    request: Request<SetStoreLimitRequest>,
) -> Result<Response<SetStoreLimitResponse>, Status> {
    let call = audit::Call::begin("ClusterService/SetStoreLimit", &request);
    let subjects = vec![format!("store/{}", request.get_ref().store_id)];
    let result: Result<Response<SetStoreLimitResponse>, Status> = async move {
        let req = request.into_inner();
        let limit = req
            .limit
            .ok_or_else(|| status(McError::invalid("limit", "missing")))?;
        let mut limits = api.limits.limits();
        if req.store_id == 0 {
            limits.store_steps_per_minute = limit.steps_per_minute;
            limits.store_snapshots_in_flight = limit.snapshots_in_flight;
        } else {
            api.cluster
                .store(req.store_id)
                .ok_or_else(|| status(McError::not_found("store", req.store_id)))?;
            limits.per_store.insert(
                req.store_id,
                (limit.steps_per_minute, limit.snapshots_in_flight),
            );
        }
        api.save_limits(limits).await?;
        let store = api.store_of(req.store_id);
        Ok(Response::new(SetStoreLimitResponse { store }))
    }
    .await;
    let job_id = 0;
    api.audit(call, job_id, subjects, &result).await;
    result
}

pub(super) async fn set_store_maintenance<S: CatalogStore>(
    api: &ClusterApi<S>,
    request: Request<SetStoreMaintenanceRequest>,
) -> Result<Response<SetStoreMaintenanceResponse>, Status> {
    let call = audit::Call::begin("ClusterService/SetStoreMaintenance", &request);
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
        api.cluster
            .store(req.store_id)
            .ok_or_else(|| status(McError::not_found("store", req.store_id)))?;
        let now = crate::clock::SystemClock.now_ms();
        let until = (req.window_secs > 0).then(|| now + req.window_secs * 1_000);
        // Persisted first: a new MC leader keeps the window.
        stores::save_maintenance(&*api.catalog, req.store_id, until)
            .await
            .map_err(status)?;
        api.cluster
            .set_maintenance(req.store_id, until)
            .map_err(status)?;
        let leaders_left = api.cluster.read(|v| v.leader_count(req.store_id)) as u32;
        Ok(Response::new(SetStoreMaintenanceResponse {
            store: api.store_of(req.store_id),
            leaders_left,
            safe_to_stop: leaders_left == 0,
        }))
    }
    .await;
    api.audited(call, subjects, result).await
}

pub(super) async fn set_store_state<S: CatalogStore>(
    api: &ClusterApi<S>,
    request: Request<SetStoreStateRequest>,
) -> Result<Response<SetStoreStateResponse>, Status> {
    let call = audit::Call::begin("ClusterService/SetStoreState", &request);
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
        let before = api.cluster.store(req.store_id);
        api.cluster.set_state(req.store_id, state).map_err(status)?;
        let s = api
            .cluster
            .store(req.store_id)
            .ok_or_else(|| status(McError::not_found("store", req.store_id)))?;
        // Persisted so the next MC leader keeps it; undone here if the catalog refuses.
        if let Err(e) = stores::save_if_changed(&*api.catalog, &s).await {
            if let Some(before) = before {
                api.cluster.revert_state(before.id, before.state);
            }
            return Err(status(e));
        }
        // Draining moves every replica off the store: one DrainStore job, with child
        // MigrateReplica jobs under the limits.
        let job_id = if state == cluster::StoreState::Draining {
            match (api.drain)(req.store_id).await {
                Ok(id) => id,
                Err(e) => {
                    if let Some(before) = &before {
                        api.cluster.revert_state(before.id, before.state);
                        let _ = stores::save_if_changed(&*api.catalog, before).await;
                    }
                    return Err(status(e));
                }
            }
        } else {
            0
        };
        Ok(Response::new(SetStoreStateResponse {
            store: api.store_of(req.store_id),
            job_id,
        }))
    }
    .await;
    let job_id = result.as_ref().map(|r| r.get_ref().job_id).unwrap_or(0);
    api.audit(call, job_id, subjects, &result).await;
    result
}
