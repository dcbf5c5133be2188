//! Which DDL requests and schedulers may not act side by side: the RGs a running Drop or
//! Truncate works on (the schedulers leave them alone; packing never picks an RG a Drop will
//! delete), and requests refused while another runs on the same objects.

use std::collections::BTreeSet;

use crate::catalog::CatalogStore;
use crate::clock::Clock;
use crate::error::{McError, Result};
use crate::ids::{ObjectId, RgId};
use crate::jobs::executor::StepExecutor;
use crate::objects::Objects;
use crate::objects::records::{ObjectState, RequestKind, RequestState};

use super::Ddl;

impl<S: CatalogStore, E: StepExecutor, C: Clock> Ddl<S, E, C> {
    /// RGs holding regions of objects a running Drop or Truncate acts on: the schedulers
    /// leave them alone until it ends (its stages read those regions as they were).
    pub fn busy_rgs(&self) -> BTreeSet<RgId> {
        let mut objects: Vec<ObjectId> = Vec::new();
        // The RGs a Drop will delete and those a Truncate puts its new regions in, for the
        // whole request: emptied, they would look like any small RG to a merge.
        let mut rgs = BTreeSet::new();
        for rx in self.procedures.lock().expect("ddl procedures").values() {
            let rec = rx.borrow();
            if rec.kind == RequestKind::Create || rec.state != RequestState::Running {
                continue;
            }
            objects.extend(rec.objects.iter().copied());
            rgs.extend(rec.delete_rgs.iter().copied());
            rgs.extend(rec.replacements.iter().map(|r| r.rg));
        }
        if objects.is_empty() {
            return rgs;
        }
        self.cluster.read(|view| {
            rgs.extend(
                objects
                    .iter()
                    .flat_map(|o| view.object_rgs(*o).iter().map(|(rg, _)| *rg)),
            );
        });
        rgs
    }

    /// RGs a running Drop will delete once their regions are gone: a new table packed into
    /// one would be deleted with it (or fail, its RG gone under it).
    pub(super) fn rgs_being_dropped(&self) -> BTreeSet<RgId> {
        self.procedures
            .lock()
            .expect("ddl procedures")
            .values()
            .filter_map(|rx| {
                let rec = rx.borrow();
                (rec.kind == RequestKind::Drop && rec.state == RequestState::Running)
                    .then(|| rec.delete_rgs.clone())
            })
            .flatten()
            .collect()
    }

    pub(super) fn refuse_if_creating(&self, objects: &Objects, ids: &[ObjectId]) -> Result<()> {
        if let Some(r) = ids
            .iter()
            .filter_map(|o| objects.records.get(o))
            .find(|r| r.state == ObjectState::Creating)
        {
            return Err(McError::FailedPrecondition {
                subject: format!("object {}", objects.tree.path(r.object.id)),
                state: "being created".into(),
                required: "its creation to finish first".into(),
            });
        }
        Ok(())
    }

    /// A running Truncate of any of `ids`: a Drop now would find no region between its two
    /// stages and leave the replacements routable for a dropped object; a second Truncate
    /// would create its replacements over the first one's.
    pub(super) fn refuse_if_truncating(&self, objects: &Objects, ids: &[ObjectId]) -> Result<()> {
        let set: BTreeSet<ObjectId> = ids.iter().copied().collect();
        for rx in self.procedures.lock().expect("ddl procedures").values() {
            let rec = rx.borrow();
            if rec.kind != RequestKind::Truncate || rec.state != RequestState::Running {
                continue;
            }
            if let Some(o) = rec.objects.iter().find(|o| set.contains(o)) {
                return Err(McError::FailedPrecondition {
                    subject: format!("object {}", objects.tree.path(topology::ObjectId(*o))),
                    state: format!(
                        "being truncated (request `{}`)",
                        crate::error::short(&rec.request_id)
                    ),
                    required: "the truncate to finish first".into(),
                });
            }
        }
        Ok(())
    }
}
