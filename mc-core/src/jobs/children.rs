//! Parent jobs: a DrainStore's one step, WaitChildren, is run by the engine itself. Each round
//! looks at the children and at the cluster view, spawns child MigrateReplica jobs for the RGs
//! still on the store (at most `max_parallel` at once, or the store's snapshot limit), and
//! finishes when every RG the store held has moved. A child that fails or is cancelled fails
//! the drain, naming the child; cancelling the drain cancels the children still running.
//!
//! A child is persisted before the parent lists it. If the MC stops in between, the child is
//! still recovered and driven (it holds its RG's lock, so no second child is spawned for that
//! RG); the parent just does not count it.

use std::collections::BTreeSet;

use crate::catalog::CatalogStore;
use crate::clock::Clock;
use crate::cluster::ClusterView;
use crate::error::Result;
use crate::history as logs;
use crate::ids::{RgId, StoreId};
use crate::jobs::engine::{Engine, Progress};
use crate::jobs::executor::StepExecutor;
use crate::jobs::record::JobRecord;
use crate::jobs::spec::JobSpec;
use crate::jobs::state::JobState;

/// How often a parent looks at its children.
const ROUND_MS: u64 = 200;

impl<S: CatalogStore, E: StepExecutor, C: Clock> Engine<S, E, C> {
    pub(crate) async fn wait_children(&self, job: &mut JobRecord, now: u64) -> Result<Progress> {
        let JobSpec::DrainStore {
            store,
            max_parallel,
        } = job.spec
        else {
            return Err(crate::error::McError::corrupt(
                format!("job {}", job.id),
                format!(
                    "WaitChildren in a {} job",
                    job.spec.job_type().as_str_name()
                ),
            ));
        };
        let view = self.view_snapshot()?;
        let (mut moved, mut active) = (BTreeSet::new(), BTreeSet::new());
        for child_id in &job.children {
            let child = self.job(*child_id)?;
            let JobSpec::MigrateReplica { rg, .. } = child.spec else {
                continue;
            };
            match child.state {
                JobState::Succeeded => {
                    moved.insert(rg);
                }
                JobState::Failed | JobState::Cancelled => {
                    job.last_error = Some(format!(
                        "child job {child_id} (MigrateReplica of RG {rg} off store {store}) ended {}: {}",
                        child.state,
                        child.last_error.as_deref().unwrap_or("no error recorded")
                    ));
                    self.transition(job, JobState::Failed)?;
                    self.save_job(job).await?;
                    return Ok(Progress::Stopped(JobState::Failed));
                }
                _ => {
                    active.insert(rg);
                }
            }
        }
        let remaining: Vec<RgId> = view
            .rgs_on(store)
            .into_iter()
            .filter(|rg| !moved.contains(rg) && !active.contains(rg))
            .collect();
        if remaining.is_empty() && active.is_empty() {
            job.cursor += 1;
            job.last_error = None;
            job.updated_ms = now;
            self.save_job(job).await?;
            return Ok(Progress::Continue);
        }
        let parallel = match max_parallel {
            // The targets take snapshots: stay within what one store may take at once.
            0 => match self.limits().store_snapshots_in_flight {
                0 => 4,
                n => n as usize,
            },
            n => n as usize,
        };
        let mut planned: Vec<StoreId> = Vec::new();
        for rg in remaining
            .into_iter()
            .take(parallel.saturating_sub(active.len()))
        {
            let Some(to) = target(&view, rg, store, &planned) else {
                job.last_error = Some(format!(
                    "no Up store can take RG {rg}'s replica (on another host than its members)"
                ));
                continue;
            };
            let spec = JobSpec::MigrateReplica {
                rg,
                from: store,
                to,
            };
            let reason = format!("drain store {store}: RG {rg} to store {to}, the least loaded");
            match self
                .propose(
                    &format!("job/{}", job.id),
                    spec,
                    &view,
                    Some(job.id),
                    job.priority,
                    &reason,
                )
                .await
            {
                Ok(child) => {
                    job.children.push(child.id);
                    planned.push(to);
                    self.spawn(child.id);
                }
                // Another job holds the RG, or the view is not ready: the next round retries.
                Err(e) => job.last_error = Some(format!("RG {rg}: {e}")),
            }
        }
        job.updated_ms = now;
        self.save_job(job).await?;
        Ok(Progress::WaitUntil(now + ROUND_MS))
    }

    /// Turns a command from a scheduler or a parent job into a job, recording the decision in
    /// the scheduling log; a command that cannot become a job goes to the error queue with
    /// the reason, in the same write.
    pub async fn propose(
        &self,
        source: &str,
        spec: JobSpec,
        view: &ClusterView,
        parent: Option<crate::ids::JobId>,
        priority: crate::jobs::queue::Priority,
        reason: &str,
    ) -> Result<JobRecord> {
        self.propose_scored(source, spec, view, parent, priority, reason, vec![])
            .await
    }

    /// `propose` with the inputs that decided it (scores, counts, thresholds), kept in the
    /// scheduling log next to the decision.
    #[allow(clippy::too_many_arguments)]
    pub async fn propose_scored(
        &self,
        source: &str,
        spec: JobSpec,
        view: &ClusterView,
        parent: Option<crate::ids::JobId>,
        priority: crate::jobs::queue::Priority,
        reason: &str,
        scores: Vec<(String, f64)>,
    ) -> Result<JobRecord> {
        let planned = |spec: &JobSpec| self.plan_against(spec, view);
        self.propose_planned(source, spec, planned, parent, priority, reason, scores)
            .await
    }

    /// `propose_scored`, planned against the live view in place: a scheduler's proposal
    /// costs what its plan reads, not a copy of a view of a million regions.
    #[allow(clippy::too_many_arguments)]
    pub async fn propose_live(
        &self,
        source: &str,
        spec: JobSpec,
        cluster: &crate::cluster::LiveCluster,
        priority: crate::jobs::queue::Priority,
        reason: &str,
        scores: Vec<(String, f64)>,
    ) -> Result<JobRecord> {
        let planned = |spec: &JobSpec| cluster.read(|view| self.plan_against(spec, view));
        self.propose_planned(source, spec, planned, None, priority, reason, scores)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn propose_planned(
        &self,
        source: &str,
        spec: JobSpec,
        planned: impl FnOnce(&JobSpec) -> Result<(crate::jobs::plan::Plan, crate::jobs::locks::LockSet)>,
        parent: Option<crate::ids::JobId>,
        priority: crate::jobs::queue::Priority,
        reason: &str,
        scores: Vec<(String, f64)>,
    ) -> Result<JobRecord> {
        let now = self.clock().now_ms();
        let mut subjects = vec![source.to_string()];
        let (rgs, stores) = spec.touches(&crate::jobs::plan::Plan::new(vec![]));
        subjects.extend(rgs.iter().map(|r| format!("rg/{r}")));
        subjects.extend(stores.iter().map(|s| format!("store/{s}")));
        if let JobSpec::MigrateReplica { rg, .. } = &spec {
            subjects.push(format!("rg/{rg}"));
        }
        subjects.sort();
        subjects.dedup();
        let result = self
            .submit_planned(spec.clone(), planned, false, None, parent, priority)
            .await;
        let mut batch = crate::catalog::WriteBatch::default();
        let mut decision = logs::Decision {
            id: self.log_ids.next(),
            at_ms: now,
            scheduler: source.to_string(),
            subjects: subjects.clone(),
            taken: result.is_ok(),
            reason: reason.to_string(),
            scores,
            proposed: Some(spec.clone()),
            job_id: 0,
        };
        match &result {
            Ok(job) => {
                decision.job_id = job.id;
                decision.subjects.push(format!("job/{}", job.id));
            }
            Err(e) => {
                decision.reason = format!("{reason}; not taken: {e}");
                logs::put_refused(
                    &mut batch,
                    &logs::Refused {
                        id: self.log_ids.next(),
                        at_ms: now,
                        source: source.to_string(),
                        subjects,
                        spec,
                        reason: e.to_string(),
                    },
                )?;
            }
        }
        logs::put_decision(&mut batch, &decision)?;
        self.store().write(batch).await?;
        result
    }

    /// How many of a parent's children have ended, and how many it has.
    pub fn children_progress(&self, job: &JobRecord) -> (u32, u32) {
        let done = job
            .children
            .iter()
            .filter(|c| self.job(**c).map(|j| j.state.is_final()).unwrap_or(false))
            .count();
        (done as u32, job.children.len() as u32)
    }
}

/// The store a replica of `rg` moves to: the placement score's best Up store off the RG's
/// other members' hosts (a new zone beats a new rack beats a new host), holding the fewest
/// replicas (counting the ones this round already planned). Zones matter here: a drain that
/// ignored them would leave the placement checker moves to undo.
fn target(view: &ClusterView, rg: RgId, from: StoreId, planned: &[StoreId]) -> Option<StoreId> {
    let info = view.rg(rg)?;
    let rest: Vec<StoreId> = info
        .members
        .keys()
        .copied()
        .filter(|m| *m != from)
        .collect();
    let members: Vec<StoreId> = info.members.keys().copied().collect();
    let mut counts = crate::placement::replica_counts(view);
    for p in planned {
        *counts.entry(*p).or_default() += 1;
    }
    crate::placement::best_store(view, &rest, &members, &Default::default(), &counts)
        .map(|(s, _)| s)
}
