//! New RG and region ids. The last id handed out is a catalog counter written before the id
//! is used, so no two jobs, DDL calls or leaders ever get the same id; ids below what the
//! view knows are skipped too (stores may report RGs made outside this catalog, as in tests).

use crate::catalog::{CatalogStore, WriteBatch};
use crate::clock::Clock;
use crate::error::{McError, Result};
use crate::jobs::engine::Engine;
use crate::jobs::executor::StepExecutor;
use crate::jobs::record;
use crate::jobs::spec::{JobSpec, NewId};

fn counter_key(kind: NewId) -> &'static [u8] {
    match kind {
        NewId::Rg => b"meta/last_rg_id",
        NewId::Region => b"meta/last_region_id",
    }
}

/// The highest id of `kind` any job in the catalog names: the floor for a catalog written
/// before the counters existed. Read once per counter.
fn highest_in_jobs(store: &impl CatalogStore, kind: NewId) -> Result<u64> {
    let mut high = 0;
    for job in record::load_jobs(store)? {
        let id = match (&job.spec, kind) {
            (JobSpec::CreateRg { rg, .. }, NewId::Rg) => *rg,
            (JobSpec::SplitRg { new_rg, .. }, NewId::Rg) => *new_rg,
            (JobSpec::CreateRegion { region, .. }, NewId::Region) => *region,
            (JobSpec::CreateRegions { regions, .. }, NewId::Region)
            | (JobSpec::CreateRg { regions, .. }, NewId::Region) => {
                regions.iter().map(|r| r.id).max().unwrap_or(0)
            }
            (JobSpec::SplitRegion { new_region, .. }, NewId::Region) => *new_region,
            _ => 0,
        };
        high = high.max(id);
    }
    Ok(high)
}

impl<S: CatalogStore, E: StepExecutor, C: Clock> Engine<S, E, C> {
    /// Reserves `n` consecutive new ids of `kind` above `view_high` (the highest the view
    /// knows) and returns the first.
    pub async fn allocate(&self, kind: NewId, n: u64, view_high: u64) -> Result<u64> {
        let _guard = self.ids.lock().await;
        let last = match self.store().get(counter_key(kind))? {
            Some(b) => String::from_utf8_lossy(&b)
                .parse()
                .map_err(|_| McError::corrupt("an id counter", "not a number"))?,
            None => highest_in_jobs(self.store(), kind)?,
        };
        // Ids an operator named (or a bug made) may sit at the top of the id space: running
        // out is a refusal, not an overflow.
        let range = last
            .max(view_high)
            .checked_add(1)
            .and_then(|first| Some((first, first.checked_add(n.max(1) - 1)?)));
        let Some((first, end)) = range else {
            return Err(McError::FailedPrecondition {
                subject: format!("{kind:?} ids"),
                state: format!("used up to {}", last.max(view_high)),
                required: format!("{n} more below 2^64"),
            });
        };
        let mut batch = WriteBatch::default();
        batch.put(counter_key(kind), end.to_string());
        self.store().write(batch).await?;
        Ok(first)
    }

    /// The job a wire spec describes, with the ids it needs allocated.
    pub async fn spec_from_proto(
        &self,
        spec: &proto::v1::JobSpec,
        view: &crate::cluster::ClusterView,
    ) -> Result<JobSpec> {
        // A first pass learns which ids the spec needs; bad input fails here, before any id
        // is spent.
        let mut needs = Vec::new();
        let probe = JobSpec::from_proto(spec, &mut |k| {
            needs.push(k);
            // Stand-ins no view holds, so "is this id new" passes in the check below.
            u64::MAX - needs.len() as u64
        })?;
        // A spec the cluster refuses now (a store not registered yet, an RG not heard of)
        // spends no id: callers retry such refusals, and each retry used to burn one.
        if !needs.is_empty() {
            probe.plan(view)?;
        }
        let mut ids = Vec::new();
        for kind in needs {
            let high = match kind {
                NewId::Rg => view.rgs.keys().max(),
                NewId::Region => view.regions.keys().max(),
            };
            ids.push(self.allocate(kind, 1, high.copied().unwrap_or(0)).await?);
        }
        let mut ids = ids.into_iter();
        JobSpec::from_proto(spec, &mut |_| ids.next().unwrap_or(0))
    }

    /// `spec_from_proto` against the live view, read in place (an operator's SubmitJob must
    /// not copy a view of a million regions).
    pub async fn spec_from_live(
        &self,
        spec: &proto::v1::JobSpec,
        cluster: &crate::cluster::LiveCluster,
    ) -> Result<JobSpec> {
        let mut needs = Vec::new();
        let probe = JobSpec::from_proto(spec, &mut |k| {
            needs.push(k);
            u64::MAX - needs.len() as u64
        })?;
        let highs: Vec<u64> = cluster.read(|view| {
            if !needs.is_empty() {
                probe.plan(view)?;
            }
            Ok::<_, crate::error::McError>(
                needs
                    .iter()
                    .map(|kind| match kind {
                        NewId::Rg => view.rgs.keys().next_back().copied().unwrap_or(0),
                        NewId::Region => view.regions.keys().next_back().copied().unwrap_or(0),
                    })
                    .collect(),
            )
        })?;
        let mut ids = Vec::new();
        for (kind, high) in needs.into_iter().zip(highs) {
            ids.push(self.allocate(kind, 1, high).await?);
        }
        let mut ids = ids.into_iter();
        JobSpec::from_proto(spec, &mut |_| ids.next().unwrap_or(0))
    }
}
