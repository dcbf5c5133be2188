//! HeartbeatService: stores register and report; the live cluster view takes it in.

use std::sync::Arc;

use proto::v1::heartbeat_service_server::HeartbeatService;
use proto::v1::*;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use infra::security::Identity;

use crate::api::auth::Caller;
use crate::api::errors::status;
use crate::catalog::{CatalogStore, WriteBatch};
use crate::clock::Clock;
use crate::cluster::rgs;
use crate::cluster::{LiveCluster, stores};
use crate::error::McError;

/// Bytes of RG shapes per catalog write: openraft sends up to 300 entries per AppendEntries,
/// and 300 of these stay well under the 64 MiB message limit.
const MAX_SHAPE_BATCH_BYTES: usize = 128 << 10;

pub struct HeartbeatApi<C, S> {
    cluster: Arc<LiveCluster>,
    catalog: Arc<S>,
    clock: C,
    intervals: HeartbeatIntervals,
    mc_term: u64,
    cluster_id: u64,
}

impl<C: Clock, S: CatalogStore> HeartbeatApi<C, S> {
    pub fn new(
        cluster: Arc<LiveCluster>,
        catalog: Arc<S>,
        clock: C,
        intervals: HeartbeatIntervals,
        mc_term: u64,
        cluster_id: u64,
    ) -> Self {
        Self {
            cluster,
            catalog,
            clock,
            intervals,
            mc_term,
            cluster_id,
        }
    }

    /// Who may read and write rows, for the store to check its KvService callers against:
    /// sent with every reply, so a revocation reaches every store within one store heartbeat.
    fn data_access(&self) -> Result<DataAccess, Status> {
        crate::catalog::users::data_access(&*self.catalog).map_err(status)
    }

    /// Persists the shapes of `rgs` the catalog does not hold yet, in one catalog write: a
    /// batch of 1,000 RG heartbeats is one commit, not a thousand (a new leader's first round
    /// of heartbeats at a million regions was minutes of commits).
    async fn persist_shapes(&self, rgs: &[u64]) -> Result<(), Status> {
        let shapes = self.cluster.shapes_to_persist(rgs);
        if shapes.is_empty() {
            return Ok(());
        }
        // Catalog entries stay small: a follower catching up takes hundreds at once.
        let mut batch = WriteBatch::default();
        let mut written = Vec::new();
        for (i, (record, fp)) in shapes.iter().enumerate() {
            rgs::put(&mut batch, record).map_err(status)?;
            written.push((record.rg.id, *fp));
            if batch.bytes() >= MAX_SHAPE_BATCH_BYTES || i + 1 == shapes.len() {
                self.catalog
                    .write(std::mem::take(&mut batch))
                    .await
                    .map_err(status)?;
                self.cluster.shapes_persisted(&written);
                written.clear();
            }
        }
        Ok(())
    }
}

/// A store speaks only for itself: the store id a heartbeat names must be the one its
/// certificate proves (the guard already let only store certificates through), and a store
/// of another cluster is refused by name.
fn speaks_for<T>(request: &Request<T>, store_id: u64, cluster_id: u64) -> Result<u64, Status> {
    let theirs = infra::security::cluster_id_of(request.metadata().as_ref());
    if let Some(theirs) = theirs
        && theirs != cluster_id
    {
        return Err(status(McError::FailedPrecondition {
            subject: format!("store/{store_id}"),
            state: format!("of cluster {theirs:016x}"),
            required: format!("a store of this MC's cluster {cluster_id:016x}"),
        }));
    }
    match request.extensions().get::<Caller>() {
        Some(Caller::Component(Identity::Store(proven))) => {
            if store_id != 0 && store_id != *proven {
                return Err(status(McError::PermissionDenied {
                    principal: format!("store/{proven}"),
                    permission: "store.heartbeat",
                    reason: format!("a store speaks only for itself, not for store {store_id}"),
                }));
            }
            Ok(*proven)
        }
        Some(Caller::Unchecked) => Ok(store_id),
        other => Err(status(McError::PermissionDenied {
            principal: other.map_or("anonymous".into(), |c| c.principal()),
            permission: "store.heartbeat",
            reason: "HeartbeatService takes only store certificates".into(),
        })),
    }
}

#[tonic::async_trait]
impl<C: Clock, S: CatalogStore> HeartbeatService for HeartbeatApi<C, S> {
    async fn register_store(
        &self,
        request: Request<RegisterStoreRequest>,
    ) -> Result<Response<RegisterStoreResponse>, Status> {
        let proven = speaks_for(&request, request.get_ref().store_id, self.cluster_id)?;
        let mut registration = request.into_inner();
        registration.store_id = proven;
        let id = self
            .cluster
            .register(&registration, self.clock.now_ms())
            .map_err(status)?;
        // The id is the store's for good: persisted before the store is told it.
        if let Some(info) = self.cluster.store(id) {
            stores::save_if_changed(&*self.catalog, &info)
                .await
                .map_err(status)?;
        }
        Ok(Response::new(RegisterStoreResponse {
            store_id: id,
            cluster_id: self.cluster_id,
            intervals: Some(self.intervals),
            mc_term: self.mc_term,
            data_access: Some(self.data_access()?),
        }))
    }

    async fn store_heartbeat(
        &self,
        request: Request<StoreHeartbeatRequest>,
    ) -> Result<Response<StoreHeartbeatResponse>, Status> {
        speaks_for(&request, request.get_ref().store_id, self.cluster_id)?;
        self.cluster
            .store_heartbeat(request.get_ref(), self.clock.now_ms())
            .map_err(status)?;
        Ok(Response::new(StoreHeartbeatResponse {
            mc_term: self.mc_term,
            intervals: Some(self.intervals),
            data_access: Some(self.data_access()?),
        }))
    }

    async fn rg_heartbeat(
        &self,
        request: Request<Streaming<RgHeartbeatBatch>>,
    ) -> Result<Response<RgHeartbeatResponse>, Status> {
        let proven = speaks_for(&request, 0, self.cluster_id)?;
        let mut stream = request.into_inner();
        let (mut batches, mut heartbeats) = (0, 0);
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            if proven != 0 && batch.store_id != proven {
                return Err(status(McError::PermissionDenied {
                    principal: format!("store/{proven}"),
                    permission: "store.heartbeat",
                    reason: format!(
                        "a store speaks only for itself, not for store {}",
                        batch.store_id
                    ),
                }));
            }
            batches += 1;
            let mut applied = Vec::new();
            for hb in &batch.heartbeats {
                if self
                    .cluster
                    .rg_heartbeat(batch.store_id, hb, self.clock.now_ms())
                    .map_err(status)?
                {
                    applied.push(hb.rg_id);
                }
                heartbeats += 1;
            }
            self.persist_shapes(&applied).await?;
        }
        Ok(Response::new(RgHeartbeatResponse {
            batches,
            heartbeats,
        }))
    }
}
