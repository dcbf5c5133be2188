//! The DDL hooks' engine. A call is planned under one lock (names, ids, RGs, ranges), then
//! persisted as object records plus a request record before any job runs (persist, then
//! act). Its jobs carry request ids derived from the DDL request id, so whoever drives the
//! request again — the caller retrying, or a new MC leader — gets the same jobs back instead
//! of new ones. A request ends Done (objects serve, or are gone) or Failed (its error is the
//! answer to every retry with the same id; what it made is cleaned up).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use crate::catalog::{CatalogStore, WriteBatch};
use crate::clock::Clock;
use crate::cluster::LiveCluster;
use crate::error::{McError, Result};
use crate::ids::{JobId, ObjectId, RgId, StoreId};
use crate::jobs::executor::StepExecutor;
use crate::jobs::plan::NewRegion;
use crate::jobs::runner::JobRunner;
use crate::jobs::spec::NewId;
use crate::objects::plan::{self, Create, DdlConfig, PlacementHint};
use crate::objects::records::{
    self, DdlRecord, ObjectRecord, ObjectState, OwnedRegion, Replacement, RequestKind, RequestState,
};
use crate::objects::{Objects, Target};

mod conflicts;
mod stages;

/// What a DDL call answers.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Created or truncated objects (their current records), or the dropped ones; the object
    /// the call named first.
    pub objects: Vec<ObjectRecord>,
    pub job_ids: Vec<JobId>,
}

pub struct Ddl<S, E, C> {
    pub(super) runner: Arc<JobRunner<S, E, C>>,
    pub(super) cluster: Arc<LiveCluster>,
    config: DdlConfig,
    pub(super) objects: Mutex<Objects>,
    /// The schedulers' view of `objects`, with the generation it was built at.
    placement: std::sync::Mutex<Option<(u64, Arc<crate::schedule::ObjectPlacement>)>>,
    /// How long a waiting call waits for its request before answering Unavailable (the
    /// request goes on; the caller calls again with the same request id to keep waiting).
    pub(super) wait_limit: Duration,
    /// The requests being driven now, each by one task of its own, with the record as that
    /// task last persisted it.
    /// Regions promised to RGs by create requests still running (in memory: a new leader
    /// starts from none and the view's counts, which is only less packing).
    reserved: std::sync::Mutex<std::collections::HashMap<String, Vec<(RgId, usize)>>>,
    pub(super) procedures: std::sync::Mutex<
        std::collections::HashMap<String, tokio::sync::watch::Receiver<DdlRecord>>,
    >,
}

fn check_request_id(request_id: &str) -> Result<()> {
    if request_id.is_empty() || request_id.len() > 128 {
        return Err(McError::invalid(
            "request_id",
            format!(
                "`{}`: required, 1-128 characters: a retried hook must not create twice",
                crate::error::short(request_id)
            ),
        ));
    }
    Ok(())
}

impl<S: CatalogStore, E: StepExecutor, C: Clock> Ddl<S, E, C> {
    /// Loads the object tree from the catalog (each new leader does).
    pub fn load(
        runner: Arc<JobRunner<S, E, C>>,
        cluster: Arc<LiveCluster>,
        config: DdlConfig,
        wait_limit: Duration,
    ) -> Result<Arc<Self>> {
        let (tree, records) = records::load(runner.engine().store())?;
        // The requests a new leader resumes keep their promises to their RGs.
        let mut reserved = std::collections::HashMap::new();
        for rec in records::unfinished_requests(runner.engine().store())? {
            if rec.kind == RequestKind::Create {
                let mine: Vec<ObjectRecord> = rec
                    .objects
                    .iter()
                    .filter_map(|id| records.get(id).cloned())
                    .collect();
                reserved.insert(rec.request_id.clone(), promises(&mine));
            }
        }
        Ok(Arc::new(Self {
            runner,
            cluster,
            config,
            objects: Mutex::new(Objects {
                tree,
                records,
                generation: 0,
            }),
            placement: std::sync::Mutex::new(None),
            wait_limit,
            reserved: std::sync::Mutex::new(reserved),
            procedures: Default::default(),
        }))
    }

    /// Regions promised to RGs by create requests still running, per RG.
    fn reservations(&self) -> std::collections::HashMap<RgId, usize> {
        let mut out = std::collections::HashMap::new();
        for promises in self.reserved.lock().expect("ddl reservations").values() {
            for (rg, n) in promises {
                *out.entry(*rg).or_default() += n;
            }
        }
        out
    }

    pub(super) fn store(&self) -> &S {
        self.runner.engine().store()
    }

    /// Counts the regions request `request_id`'s `records` promise to their RGs, so calls
    /// planned meanwhile see the room those RGs have left.
    fn reserve(&self, request_id: &str, records: &[ObjectRecord]) {
        self.reserved
            .lock()
            .expect("ddl reservations")
            .insert(request_id.to_string(), promises(records));
    }

    /// The request ended (its end is persisted): its promises are kept or void. Once per
    /// request, however often it is called.
    pub(super) fn release(&self, request_id: &str) {
        self.reserved
            .lock()
            .expect("ddl reservations")
            .remove(request_id);
    }

    /// Resolves when this MC's term ends (its streams tell their clients to go elsewhere).
    pub async fn stopped(&self) {
        self.runner.engine().stopped().await
    }

    /// Reads the objects in place (routes, the tree view).
    pub async fn read<R>(&self, f: impl FnOnce(&Objects) -> R) -> R {
        f(&*self.objects.lock().await)
    }

    /// Affinity groups and label rules, for the schedulers.
    /// The objects' affinity groups and label rules, as the schedulers need them: rebuilt
    /// only after the records changed (a scheduler tick every 100 ms must not walk every
    /// object).
    pub async fn placement(&self) -> Arc<crate::schedule::ObjectPlacement> {
        let objects = self.objects.lock().await;
        let mut cache = self.placement.lock().expect("placement cache");
        if let Some((generation, placement)) = cache.as_ref()
            && *generation == objects.generation
        {
            return placement.clone();
        }
        let mut roots = std::collections::BTreeMap::new();
        let mut labels = std::collections::BTreeMap::new();
        for (id, rec) in &objects.records {
            // Objects are their own group unless listed.
            if let Ok(root) = objects.tree.affinity_root(topology::ObjectId(*id))
                && root.0 != *id
            {
                roots.insert(*id, root.0);
            }
            if !rec.labels.is_empty() {
                labels.insert(*id, rec.labels.clone());
            }
        }
        let mut out = crate::schedule::ObjectPlacement::new(roots, labels);
        if let Some((_, old)) = cache.as_ref() {
            // Only a change for objects with regions makes the schedulers look at every RG.
            let changed = self
                .cluster
                .read(|view| out.changes_rules_of(old, &|o| !view.object_rgs(o).is_empty()));
            out.version = old.version + u64::from(changed);
        }
        let out = Arc::new(out);
        *cache = Some((objects.generation, out.clone()));
        out
    }

    /// `caller` is the principal that asked: a request id is bound to its caller and to
    /// what it asked (another caller, or another request, under a used id is refused).
    pub async fn create(
        self: &Arc<Self>,
        request_id: &str,
        caller: &str,
        what: Create,
        hint: PlacementHint,
        wait: bool,
    ) -> Result<Outcome> {
        check_request_id(request_id)?;
        super::limits::check(&what)?;
        let content = records::request_content(&format!("{caller} {what:?} {hint:?}"));
        // Planned and persisted in a task of its own: the plan adds the objects to the tree
        // in place, and a caller that hangs up mid-way must not cut that short.
        let me = self.clone();
        let id = request_id.to_string();
        let rec = tokio::spawn(async move { me.plan_and_persist(&id, content, what, hint).await })
            .await
            .map_err(|e| McError::internal(format!("DDL planning task: {e}")))??;
        self.answer(rec, RequestKind::Create, wait).await
    }

    /// The request record of a create: the one stored under its id, else a new one, planned
    /// and persisted with its objects (persist, then act).
    async fn plan_and_persist(
        &self,
        request_id: &str,
        content: u64,
        what: Create,
        hint: PlacementHint,
    ) -> Result<DdlRecord> {
        let mut objects = self.objects.lock().await;
        if let Some(rec) = records::request(self.store(), request_id)? {
            return rec.for_same_request(RequestKind::Create, content);
        }
        let hint = inherit(&objects, &what, hint);
        let engine = self.runner.engine();
        let mut busy = engine.exclusive_rgs();
        busy.extend(self.rgs_being_dropped());
        let packing = plan::Packing {
            reserved: self.reservations(),
            busy,
        };
        // Planned against the live view in place (no copy of it per call).
        let (shape, high_rg, high_region) = self.cluster.routes(|view, index| {
            plan::shape(
                &mut objects,
                view,
                index,
                &what,
                &hint,
                &self.config,
                &packing,
            )
            .map(|shape| {
                let high_rg = view.rgs.keys().next_back().copied().unwrap_or(0);
                let high_region = view.regions.keys().next_back().copied().unwrap_or(0);
                (shape, high_rg, high_region)
            })
        })?;
        match self
            .persist_create(
                &mut objects,
                (request_id, content),
                &shape,
                &hint,
                high_rg,
                high_region,
            )
            .await
        {
            Ok(rec) => Ok(rec),
            Err(e) => {
                plan::undo(&mut objects.tree, &shape.created);
                Err(e)
            }
        }
    }

    async fn persist_create(
        &self,
        objects: &mut Objects,
        (request_id, content): (&str, u64),
        shape: &plan::Shape,
        hint: &PlacementHint,
        high_rg: RgId,
        high_region: u64,
    ) -> Result<DdlRecord> {
        let engine = self.runner.engine();
        let first_rg = match shape.new_rg_count() {
            0 => 0,
            n => engine.allocate(NewId::Rg, n, high_rg).await?,
        };
        let first_region = match shape.region_count() {
            0 => 0,
            n => engine.allocate(NewId::Region, n, high_region).await?,
        };
        let now = engine.clock().now_ms();
        let (mut created, new_rgs) =
            plan::assemble(&objects.tree, shape, hint, first_rg, first_region, now);
        // Objects without data (databases) serve at once.
        for rec in &mut created {
            if rec.regions.is_empty() {
                rec.state = ObjectState::Serving;
            }
        }
        let nothing_to_run = created.iter().all(|r| r.regions.is_empty());
        let rec = DdlRecord {
            schema: records::SCHEMA_VERSION,
            request_id: request_id.to_string(),
            kind: RequestKind::Create,
            content,
            state: if nothing_to_run {
                RequestState::Done
            } else {
                RequestState::Running
            },
            objects: created.iter().map(|r| r.object.id.0).collect(),
            new_rgs,
            delete_rgs: vec![],
            replacements: vec![],
            dropped: vec![],
            job_ids: vec![],
            error: None,
            created_ms: now,
            stage: 0,
        };
        let mut batch = WriteBatch::default();
        let mut slots = BTreeSet::new();
        for r in &created {
            records::put_object(&mut batch, r)?;
            slots.insert(r.object.id.parent().map(|p| p.0).unwrap_or(0));
        }
        for slot in slots {
            records::put_high_water(&mut batch, slot, objects.tree.high_water(slot));
        }
        records::put_request(&mut batch, &rec)?;
        self.store().write(batch).await?;
        self.reserve(request_id, &created);
        for r in created {
            objects.records.insert(r.object.id.0, r);
        }
        objects.generation += 1;
        Ok(rec)
    }

    /// Drops the object and everything below it: deletes their regions, then the RGs left
    /// empty, then the records.
    pub async fn drop_object(
        self: &Arc<Self>,
        request_id: &str,
        caller: &str,
        target: Target,
        wait: bool,
    ) -> Result<Outcome> {
        check_request_id(request_id)?;
        let mut objects = self.objects.lock().await;
        let content = records::request_content(&format!("{caller} drop {target:?}"));
        if let Some(rec) = records::request(self.store(), request_id)? {
            drop(objects);
            let rec = rec.for_same_request(RequestKind::Drop, content)?;
            return self.answer(rec, RequestKind::Drop, wait).await;
        }
        let id = objects.resolve(&target)?;
        let doomed = objects.subtree(id);
        self.refuse_if_creating(&objects, &doomed)?;
        self.refuse_if_truncating(&objects, &doomed)?;
        let doomed_set: BTreeSet<ObjectId> = doomed.iter().copied().collect();
        let delete_rgs = self.cluster.read(|view| {
            let mut rgs: BTreeSet<RgId> = doomed
                .iter()
                .filter_map(|o| objects.records.get(o).and_then(|r| r.rg))
                .collect();
            rgs.extend(
                view.regions
                    .values()
                    .filter(|r| doomed_set.contains(&r.object))
                    .map(|r| r.rg),
            );
            rgs.into_iter()
                .filter(|rg| {
                    let only_doomed = view.rg(*rg).is_some_and(|info| {
                        info.regions.iter().all(|r| {
                            view.region(*r)
                                .is_none_or(|x| doomed_set.contains(&x.object))
                        })
                    });
                    let others = objects
                        .records
                        .values()
                        .any(|r| r.rg == Some(*rg) && !doomed_set.contains(&r.object.id.0));
                    only_doomed && !others
                })
                .collect::<Vec<_>>()
        });
        let now = self.runner.engine().clock().now_ms();
        let mut batch = WriteBatch::default();
        let mut dropped = Vec::new();
        objects.generation += 1;
        for o in &doomed {
            if let Some(r) = objects.records.get_mut(o) {
                r.state = ObjectState::Dropping;
                records::put_object(&mut batch, r)?;
                dropped.push(r.clone());
            }
        }
        let rec = DdlRecord {
            schema: records::SCHEMA_VERSION,
            request_id: request_id.to_string(),
            kind: RequestKind::Drop,
            content,
            state: RequestState::Running,
            objects: doomed,
            new_rgs: vec![],
            delete_rgs,
            replacements: vec![],
            dropped,
            job_ids: vec![],
            error: None,
            created_ms: now,
            stage: 0,
        };
        records::put_request(&mut batch, &rec)?;
        self.store().write(batch).await?;
        drop(objects);
        self.answer(rec, RequestKind::Drop, wait).await
    }

    /// Replaces every region of the object (and of the objects below it) with an empty one
    /// over the same range in the same RG; the definitions stay.
    pub async fn truncate(
        self: &Arc<Self>,
        request_id: &str,
        caller: &str,
        target: Target,
        wait: bool,
    ) -> Result<Outcome> {
        check_request_id(request_id)?;
        let objects = self.objects.lock().await;
        let content = records::request_content(&format!("{caller} truncate {target:?}"));
        if let Some(rec) = records::request(self.store(), request_id)? {
            drop(objects);
            let rec = rec.for_same_request(RequestKind::Truncate, content)?;
            return self.answer(rec, RequestKind::Truncate, wait).await;
        }
        let id = objects.resolve(&target)?;
        let subtree = objects.subtree(id);
        self.refuse_if_creating(&objects, &subtree)?;
        self.refuse_if_truncating(&objects, &subtree)?;
        if objects.records.get(&id).map(|r| r.state) == Some(ObjectState::Dropping) {
            return Err(McError::FailedPrecondition {
                subject: format!("object {}", objects.tree.path(topology::ObjectId(id))),
                state: "being dropped".into(),
                required: "a serving object".into(),
            });
        }
        let set: BTreeSet<ObjectId> = subtree.iter().copied().collect();
        let (olds, high) = self.cluster.read(|view| {
            let olds: Vec<_> = view
                .regions
                .values()
                .filter(|r| set.contains(&r.object))
                .map(|r| (r.object, r.id, r.rg, r.start.clone(), r.end.clone()))
                .collect();
            (olds, view.regions.keys().max().copied().unwrap_or(0))
        });
        let engine = self.runner.engine();
        let first = match olds.len() {
            0 => 0,
            n => engine.allocate(NewId::Region, n as u64, high).await?,
        };
        let replacements: Vec<Replacement> = olds
            .into_iter()
            .enumerate()
            .map(|(i, (object, old, rg, start, end))| Replacement {
                object,
                old,
                new: OwnedRegion {
                    id: first + i as u64,
                    start: start.to_vec(),
                    end: end.to_vec(),
                },
                rg,
            })
            .collect();
        let rec = DdlRecord {
            schema: records::SCHEMA_VERSION,
            request_id: request_id.to_string(),
            kind: RequestKind::Truncate,
            content,
            state: RequestState::Running,
            objects: subtree,
            new_rgs: vec![],
            delete_rgs: vec![],
            replacements,
            dropped: vec![],
            job_ids: vec![],
            error: None,
            created_ms: engine.clock().now_ms(),
            stage: 0,
        };
        let mut batch = WriteBatch::default();
        records::put_request(&mut batch, &rec)?;
        self.store().write(batch).await?;
        drop(objects);
        self.answer(rec, RequestKind::Truncate, wait).await
    }
}

/// Regions per RG that records being created will add.
fn promises(records: &[ObjectRecord]) -> Vec<(RgId, usize)> {
    let mut out: Vec<(RgId, usize)> = Vec::new();
    for r in records.iter().filter(|r| r.state == ObjectState::Creating) {
        let Some(rg) = r.rg else { continue };
        match out.iter_mut().find(|(g, _)| *g == rg) {
            Some((_, n)) => *n += r.regions.len(),
            None => out.push((rg, r.regions.len())),
        }
    }
    out
}

/// The regions of `rec`'s objects that go to `rg`, in creation order.
fn regions_of(objects: &Objects, rec: &DdlRecord, rg: RgId) -> Vec<NewRegion> {
    rec.objects
        .iter()
        .filter_map(|o| objects.records.get(o))
        .filter(|r| r.rg == Some(rg))
        .flat_map(|r| {
            r.regions.iter().map(|reg| NewRegion {
                id: reg.id,
                object: r.object.id.0,
                start: reg.start.clone(),
                end: reg.end.clone(),
            })
        })
        .collect()
}

/// RGs led per store: a new RG's leader is the member leading fewest, as the leader balancer
/// would have moved it to.
fn leader_counts(view: &crate::cluster::ClusterView) -> std::collections::HashMap<StoreId, usize> {
    let mut counts = std::collections::HashMap::new();
    for rg in view.rgs.values() {
        if let Some(l) = rg.leader {
            *counts.entry(l).or_insert(0) += 1;
        }
    }
    counts
}

/// A call without placement rules (CreateIndex, CreatePartition) takes its parent's, so a
/// table placed in a zone keeps its new indexes there.
fn inherit(objects: &Objects, what: &Create, hint: PlacementHint) -> PlacementHint {
    if hint.replicas != 0 || !hint.labels.is_empty() {
        return hint;
    }
    let parent = match what {
        Create::Index { parent, .. } | Create::Partition { parent, .. } => parent,
        _ => return hint,
    };
    match objects
        .resolve(parent)
        .ok()
        .and_then(|id| objects.records.get(&id))
    {
        Some(p) => PlacementHint {
            replicas: p.replicas,
            labels: p.labels.clone(),
            ..hint
        },
        None => hint,
    }
}

pub(super) fn failed(rec: &DdlRecord) -> McError {
    McError::FailedPrecondition {
        subject: format!("DDL request `{}`", rec.request_id),
        state: format!(
            "failed: {}",
            rec.error.as_deref().unwrap_or("no reason recorded")
        ),
        required: "a new request id to try again".into(),
    }
}

pub(super) fn stepped_down() -> McError {
    McError::Unavailable {
        reason: "this MC stopped leading; the new leader finishes the request".into(),
        retry_after_ms: 500,
    }
}
