//! MetaService: the DDL hooks. Converts the wire requests to `objects::plan` terms, calls
//! the DDL engine, audits every changing call, and answers routes and the object tree from
//! the object records and the live view.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proto::v1::meta_service_server::MetaService;
use proto::v1::{self as pb, get_routes_request, object_ref};
use tonic::{Request, Response, Status};

use crate::api::{audit, convert, errors::status};
use crate::catalog::CatalogStore;
use crate::clock::Clock;
use crate::cluster::routes::RouteIndex;
use crate::cluster::{ClusterView, LiveCluster};
use crate::error::McError;
use crate::history::LogIds;
use crate::ids::ObjectId;
use crate::jobs::executor::StepExecutor;
use crate::objects::ddl::{Ddl, Outcome};
use crate::objects::plan::{Create, IndexDef, PartitionDef, PlacementHint};
use crate::objects::{ObjectRecord, ObjectState, Objects, Target};

pub struct MetaApi<S, E, C> {
    ddl: Arc<Ddl<S, E, C>>,
    cluster: Arc<LiveCluster>,
    catalog: S,
    log_ids: Arc<LogIds>,
}

impl<S: CatalogStore + Clone, E: StepExecutor, C: Clock> MetaApi<S, E, C> {
    pub fn new(
        ddl: Arc<Ddl<S, E, C>>,
        cluster: Arc<LiveCluster>,
        catalog: S,
        log_ids: Arc<LogIds>,
    ) -> Self {
        Self {
            ddl,
            cluster,
            catalog,
            log_ids,
        }
    }

    /// Runs a changing call, then records it in the audit log with the objects it touched.
    async fn audited<Req, T, Fut>(
        &self,
        method: &'static str,
        request: Request<Req>,
        call: impl FnOnce(Req, String) -> Fut,
    ) -> Result<Response<T>, Status>
    where
        Req: std::fmt::Debug,
        Fut: std::future::Future<Output = Result<(Response<T>, Vec<String>), Status>>,
    {
        let begun = audit::Call::begin(method, &request);
        let caller = begun.principal.clone();
        let (result, subjects) = match call(request.into_inner(), caller).await {
            Ok((r, subjects)) => (Ok(r), subjects),
            Err(e) => (Err(e), vec![]),
        };
        let entry = audit::Call { subjects, ..begun };
        audit::record(&self.catalog, &self.log_ids, entry, &result).await;
        result
    }
}

fn target(r: &Option<pb::ObjectRef>, field: &str) -> Result<Target, McError> {
    match r.as_ref().and_then(|r| r.target.as_ref()) {
        Some(object_ref::Target::Id(id)) if *id != 0 => Ok(Target::Id(*id)),
        Some(object_ref::Target::Path(p)) if !p.is_empty() => Ok(Target::Path(p.clone())),
        _ => Err(McError::invalid(field, "name the object by id or by path")),
    }
}

fn index_def(i: &pb::IndexSpec) -> IndexDef {
    IndexDef {
        name: i.name.clone(),
        unique: i.unique,
        global: i.global,
        own_group: i.affinity_opt_out,
    }
}

fn partition_def(p: &pb::PartitionSpec) -> PartitionDef {
    PartitionDef {
        name: p.name.clone(),
        subs: p.sub_partitions.iter().map(partition_def).collect(),
        local_indexes: p.local_indexes.iter().map(index_def).collect(),
    }
}

fn hint(p: &Option<pb::PlacementHint>) -> Result<PlacementHint, McError> {
    let Some(p) = p else {
        return Ok(PlacementHint::default());
    };
    if p.replica_count > 7 {
        return Err(McError::invalid(
            "placement.replica_count",
            "at most 7 replicas per RG",
        ));
    }
    Ok(PlacementHint {
        replicas: p.replica_count,
        labels: p.required_labels.clone().into_iter().collect(),
        initial_regions: p.initial_regions,
    })
}

fn kind(k: topology::Kind) -> pb::ObjectKind {
    use topology::Kind as K;
    match k {
        K::Database => pb::ObjectKind::Database,
        K::Table => pb::ObjectKind::Table,
        K::Index | K::LocalIndex => pb::ObjectKind::Index,
        K::Partition | K::SubPartition => pb::ObjectKind::Partition,
    }
}

fn data_object(r: &ObjectRecord, view: &ClusterView, index: &RouteIndex) -> pb::DataObject {
    let id = r.object.id;
    let (start, end) = topology::keys::object_range(id);
    let mut region_ids: BTreeSet<u64> = r.regions.iter().map(|x| x.id).collect();
    // Regions split off since creation belong to the object too: those in its key range.
    region_ids.extend(
        index
            .regions_in(view, &start, &end)
            .into_iter()
            .filter(|x| x.object == id.0)
            .map(|x| x.id),
    );
    pb::DataObject {
        id: id.0,
        parent_id: id.parent().map(|p| p.0).unwrap_or(0),
        kind: kind(r.object.kind) as i32,
        name: r.object.name.clone(),
        state: match r.state {
            ObjectState::Creating => pb::ObjectState::Creating,
            ObjectState::Serving => pb::ObjectState::Serving,
            ObjectState::Dropping => pb::ObjectState::Dropping,
        } as i32,
        key_range: Some(pb::KeyRange { start, end }),
        affinity_group_id: affinity_root(r),
        region_ids: region_ids.into_iter().collect(),
        created_unix_ms: r.created_ms,
        unique: r.unique,
        global: r.global,
    }
}

/// The affinity group's root, from the record alone (see `ObjectTree::affinity_root`).
fn affinity_root(r: &ObjectRecord) -> u64 {
    use topology::Kind as K;
    let id = r.object.id;
    match r.object.kind {
        K::Index if !r.object.own_group => id.parent().map(|p| p.0).unwrap_or(id.0),
        K::SubPartition | K::LocalIndex => id.parent().map(|p| p.0).unwrap_or(id.0),
        _ => id.0,
    }
}

type RouteStream = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<pb::WatchRoutesResponse, Status>> + Send>,
>;

/// Routes one WatchRoutes message carries: a full set comes in messages of this many.
const ROUTES_PER_MESSAGE: usize = 1_000;

type WatchSender = tokio::sync::mpsc::Sender<Result<pb::WatchRoutesResponse, Status>>;

/// Sends the messages that bring a watcher to `changes.revision`: the changed regions' routes
/// as they are now, each message read from the view only when the previous one was taken (so
/// a full set is never held in memory whole, nor the view's lock for long), then the removed
/// ids. A region gone between two reads is skipped here and reported removed by the next
/// revision. False once the watcher is gone.
async fn send_changes(
    cluster: &LiveCluster,
    tx: &WatchSender,
    changes: crate::cluster::routes::RouteChanges,
) -> bool {
    let chunks = changes.changed.len().div_ceil(ROUTES_PER_MESSAGE)
        + changes.removed.len().div_ceil(ROUTES_PER_MESSAGE);
    let total = chunks.max(1);
    let mut sent = 0;
    let mut message = |routes: Vec<pb::Route>, removed: Vec<u64>| {
        sent += 1;
        pb::WatchRoutesResponse {
            revision: changes.revision,
            reset: changes.reset && sent == 1,
            routes,
            removed_region_ids: removed,
            complete: sent == total,
        }
    };
    for ids in changes.changed.chunks(ROUTES_PER_MESSAGE) {
        let routes = cluster.read(|view| {
            ids.iter()
                .filter_map(|id| view.region(*id))
                .map(|r| route(r, view))
                .collect()
        });
        if tx.send(Ok(message(routes, vec![]))).await.is_err() {
            return false;
        }
    }
    for ids in changes.removed.chunks(ROUTES_PER_MESSAGE) {
        if tx.send(Ok(message(vec![], ids.to_vec()))).await.is_err() {
            return false;
        }
    }
    if chunks == 0 {
        return tx.send(Ok(message(vec![], vec![]))).await.is_ok();
    }
    true
}

fn route(region: &crate::cluster::RegionInfo, view: &ClusterView) -> pb::Route {
    let rg = view.rg(region.rg);
    let addresses: BTreeMap<u64, String> = rg
        .map(|g| {
            g.members
                .keys()
                .filter_map(|s| view.store(*s).map(|x| (*s, x.address.clone())))
                .collect()
        })
        .unwrap_or_default();
    let wire = rg.map(|g| convert::rg(g, view));
    pb::Route {
        region: Some(convert::region(region, view)),
        rg_id: region.rg,
        replicas: wire
            .as_ref()
            .map(|w| w.replicas.clone())
            .unwrap_or_default(),
        store_addresses: addresses.into_iter().collect(),
        leader_store_id: wire.as_ref().map(|w| w.leader_store_id).unwrap_or(0),
        leader_address: wire.map(|w| w.leader_address).unwrap_or_default(),
    }
}

fn tree_node(
    objects: &Objects,
    view: &ClusterView,
    index: &RouteIndex,
    id: ObjectId,
    depth_left: u32,
) -> Option<pb::ObjectTreeNode> {
    let r = objects.records.get(&id)?;
    let object = data_object(r, view, index);
    let rgs: BTreeSet<u64> = object
        .region_ids
        .iter()
        .filter_map(|x| view.region(*x).map(|g| g.rg))
        .collect();
    let stores: BTreeSet<u64> = rgs
        .iter()
        .filter_map(|g| view.rg(*g))
        .flat_map(|g| g.members.keys().copied())
        .collect();
    let children = if depth_left == 1 {
        vec![]
    } else {
        objects
            .tree
            .children(r.object.id)
            .iter()
            .filter_map(|c| tree_node(objects, view, index, c.id.0, depth_left.saturating_sub(1)))
            .collect()
    };
    Some(pb::ObjectTreeNode {
        object: Some(object),
        rg_ids: rgs.into_iter().collect(),
        store_ids: stores.into_iter().collect(),
        children,
    })
}

impl<S: CatalogStore + Clone, E: StepExecutor, C: Clock> MetaApi<S, E, C> {
    /// The wire objects of an outcome, the named object first, then the rest.
    async fn objects_of(&self, out: &Outcome) -> Vec<pb::DataObject> {
        self.cluster.routes(|view, index| {
            out.objects
                .iter()
                .map(|r| data_object(r, view, index))
                .collect()
        })
    }

    /// Runs a create: the wire objects (the named one first), the job ids, the audit subjects.
    async fn create(
        &self,
        (request_id, caller): (&str, &str),
        what: Create,
        hint: PlacementHint,
        wait: bool,
    ) -> Result<(Vec<pb::DataObject>, Vec<u64>, Vec<String>), Status> {
        let out = self
            .ddl
            .create(request_id, caller, what, hint, wait)
            .await
            .map_err(status)?;
        Ok((
            self.objects_of(&out).await,
            out.job_ids.clone(),
            Self::subjects(&out),
        ))
    }

    fn subjects(out: &Outcome) -> Vec<String> {
        let mut s: Vec<String> = out
            .objects
            .iter()
            .map(|r| format!("object/{}", r.object.id))
            .collect();
        s.extend(out.job_ids.iter().map(|j| format!("job/{j}")));
        s
    }
}

#[tonic::async_trait]
impl<S: CatalogStore + Clone, E: StepExecutor, C: Clock> MetaService for MetaApi<S, E, C> {
    async fn create_database(
        &self,
        request: Request<pb::CreateDatabaseRequest>,
    ) -> Result<Response<pb::CreateDatabaseResponse>, Status> {
        self.audited("CreateDatabase", request, |req, caller| async move {
            let what = Create::Database { name: req.name };
            let (objects, _, subjects) = self
                .create(
                    (&req.request_id, &caller),
                    what,
                    PlacementHint::default(),
                    true,
                )
                .await?;
            Ok((
                Response::new(pb::CreateDatabaseResponse {
                    database: objects.into_iter().next(),
                }),
                subjects,
            ))
        })
        .await
    }

    async fn create_table(
        &self,
        request: Request<pb::CreateTableRequest>,
    ) -> Result<Response<pb::CreateTableResponse>, Status> {
        self.audited("CreateTable", request, |req, caller| async move {
            let what = Create::Table {
                database: target(&req.database, "database").map_err(status)?,
                name: req.name,
                indexes: req.indexes.iter().map(index_def).collect(),
                partitions: req.partitions.iter().map(partition_def).collect(),
            };
            let hint = hint(&req.placement).map_err(status)?;
            let (objects, job_ids, subjects) = self
                .create((&req.request_id, &caller), what, hint, !req.no_wait)
                .await?;
            let mut objects = objects.into_iter();
            Ok((
                Response::new(pb::CreateTableResponse {
                    table: objects.next(),
                    children: objects.collect(),
                    job_ids,
                }),
                subjects,
            ))
        })
        .await
    }

    async fn create_index(
        &self,
        request: Request<pb::CreateIndexRequest>,
    ) -> Result<Response<pb::CreateIndexResponse>, Status> {
        self.audited("CreateIndex", request, |req, caller| async move {
            let index = req
                .index
                .as_ref()
                .ok_or_else(|| status(McError::invalid("index", "missing")))?;
            let what = Create::Index {
                parent: target(&req.parent, "parent").map_err(status)?,
                index: index_def(index),
            };
            let (objects, job_ids, subjects) = self
                .create(
                    (&req.request_id, &caller),
                    what,
                    PlacementHint::default(),
                    !req.no_wait,
                )
                .await?;
            Ok((
                Response::new(pb::CreateIndexResponse {
                    index: objects.into_iter().next(),
                    job_ids,
                }),
                subjects,
            ))
        })
        .await
    }

    async fn create_partition(
        &self,
        request: Request<pb::CreatePartitionRequest>,
    ) -> Result<Response<pb::CreatePartitionResponse>, Status> {
        self.audited("CreatePartition", request, |req, caller| async move {
            let partition = req
                .partition
                .as_ref()
                .ok_or_else(|| status(McError::invalid("partition", "missing")))?;
            let what = Create::Partition {
                parent: target(&req.parent, "parent").map_err(status)?,
                partition: partition_def(partition),
            };
            let (objects, job_ids, subjects) = self
                .create(
                    (&req.request_id, &caller),
                    what,
                    PlacementHint::default(),
                    !req.no_wait,
                )
                .await?;
            let mut objects = objects.into_iter();
            Ok((
                Response::new(pb::CreatePartitionResponse {
                    partition: objects.next(),
                    children: objects.collect(),
                    job_ids,
                }),
                subjects,
            ))
        })
        .await
    }

    async fn drop_object(
        &self,
        request: Request<pb::DropObjectRequest>,
    ) -> Result<Response<pb::DropObjectResponse>, Status> {
        self.audited("DropObject", request, |req, caller| async move {
            let object = target(&req.object, "object").map_err(status)?;
            let out = self
                .ddl
                .drop_object(&req.request_id, &caller, object, !req.no_wait)
                .await
                .map_err(status)?;
            let mut dropped = self.objects_of(&out).await;
            if !req.no_wait {
                for d in &mut dropped {
                    d.state = pb::ObjectState::Dropped as i32;
                }
            }
            Ok((
                Response::new(pb::DropObjectResponse {
                    dropped,
                    job_ids: out.job_ids.clone(),
                }),
                Self::subjects(&out),
            ))
        })
        .await
    }

    async fn truncate_object(
        &self,
        request: Request<pb::TruncateObjectRequest>,
    ) -> Result<Response<pb::TruncateObjectResponse>, Status> {
        self.audited("TruncateObject", request, |req, caller| async move {
            let object = target(&req.object, "object").map_err(status)?;
            let out = self
                .ddl
                .truncate(&req.request_id, &caller, object, !req.no_wait)
                .await
                .map_err(status)?;
            let objects = self.objects_of(&out).await;
            Ok((
                Response::new(pb::TruncateObjectResponse {
                    object: objects.into_iter().next(),
                    job_ids: out.job_ids.clone(),
                }),
                Self::subjects(&out),
            ))
        })
        .await
    }

    async fn get_routes(
        &self,
        request: Request<pb::GetRoutesRequest>,
    ) -> Result<Response<pb::GetRoutesResponse>, Status> {
        let req = request.into_inner();
        let routes = match req.target {
            Some(get_routes_request::Target::Key(key)) => self.cluster.routes(|view, index| {
                index
                    .region_at(view, &key)
                    .map(|r| (vec![route(r, view)], index.revision()))
                    .ok_or_else(|| {
                        status(McError::not_found("region for key", format!("{key:02x?}")))
                    })
            })?,
            Some(get_routes_request::Target::Object(r)) => {
                let target = target(&Some(r), "object").map_err(status)?;
                let id = self
                    .ddl
                    .read(|o| o.resolve(&target))
                    .await
                    .map_err(status)?;
                let (start, end) = topology::keys::subtree_range(topology::ObjectId(id));
                self.cluster.routes(|view, index| {
                    let routes = index
                        .regions_in(view, &start, &end)
                        .into_iter()
                        .map(|r| route(r, view))
                        .collect();
                    (routes, index.revision())
                })
            }
            None => {
                return Err(status(McError::invalid(
                    "target",
                    "name an object or a key",
                )));
            }
        };
        let (routes, revision) = routes;
        Ok(Response::new(pb::GetRoutesResponse { routes, revision }))
    }

    type WatchRoutesStream = RouteStream;

    async fn watch_routes(
        &self,
        request: Request<pb::WatchRoutesRequest>,
    ) -> Result<Response<Self::WatchRoutesStream>, Status> {
        let from = request.into_inner().from_revision;
        let cluster = self.cluster.clone();
        let ddl = self.ddl.clone();
        // Subscribed before the first read, so no change falls between the two.
        let mut changed = cluster.subscribe_routes();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let mut at = from;
            let mut first = true;
            loop {
                changed.borrow_and_update();
                let changes = cluster.routes(|_, index| index.changes_since(at));
                if first || !changes.changed.is_empty() || !changes.removed.is_empty() {
                    let revision = changes.revision;
                    if !send_changes(&cluster, &tx, changes).await {
                        return;
                    }
                    at = revision;
                } else {
                    at = changes.revision;
                }
                first = false;
                // The stream costs nothing between changes: it sleeps on the revision.
                tokio::select! {
                    _ = tx.closed() => return,
                    r = changed.changed() => if r.is_err() { return },
                    _ = ddl.stopped() => {
                        let _ = tx
                            .send(Err(Status::unavailable(
                                "the MC leader changed; watch again from your revision",
                            )))
                            .await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn get_object_tree(
        &self,
        request: Request<pb::GetObjectTreeRequest>,
    ) -> Result<Response<pb::GetObjectTreeResponse>, Status> {
        let req = request.into_inner();
        let root = match &req.root {
            Some(r) if r.target.is_some() => Some(target(&req.root, "root").map_err(status)?),
            _ => None,
        };
        let depth = if req.max_depth == 0 {
            u32::MAX
        } else {
            req.max_depth
        };
        let roots = self
            .ddl
            .read(|o| -> Result<Vec<pb::ObjectTreeNode>, McError> {
                let ids: Vec<ObjectId> = match &root {
                    Some(t) => vec![o.resolve(t)?],
                    None => o
                        .records
                        .keys()
                        .copied()
                        .filter(|id| topology::ObjectId(*id).level() == 0)
                        .collect(),
                };
                Ok(self.cluster.routes(|view, index| {
                    ids.into_iter()
                        .filter_map(|id| tree_node(o, view, index, id, depth))
                        .collect()
                }))
            })
            .await
            .map_err(status)?;
        Ok(Response::new(pb::GetObjectTreeResponse { roots }))
    }
}
