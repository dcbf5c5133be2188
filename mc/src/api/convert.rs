//! Catalog records to wire messages.

use proto::v1 as pb;

use crate::jobs::record::{ExecutionRecord, JobRecord, Phase};

pub fn job(job: &JobRecord, execs: &[ExecutionRecord]) -> pb::Job {
    // The steps of the current run: a retry numbers its steps after every earlier one.
    let (n, base) = (job.plan.steps.len() as u32, job.seq_base);
    let mut steps: Vec<(u32, &crate::jobs::AtomicStep, bool)> = job
        .plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (base + i as u32 + 1, &s.step, false))
        .collect();
    if let Phase::Rollback { steps: undo, .. } = &job.phase {
        steps.extend(
            undo.iter()
                .enumerate()
                .map(|(i, s)| (base + n + i as u32 + 1, s, true)),
        );
    }
    let steps: Vec<pb::Step> = steps
        .into_iter()
        .map(|(seq, step, rollback)| {
            let attempts: Vec<&ExecutionRecord> =
                execs.iter().filter(|e| e.step_seq == seq).collect();
            let last = attempts.iter().max_by_key(|e| e.attempt);
            let state = match last {
                None => pb::StepState::Pending,
                Some(e) if e.finished_ms == 0 => pb::StepState::Dispatched,
                // As the engine judged it: a Destroy of a replica already gone succeeded.
                Some(e) => match e.outcome().map(|o| crate::jobs::plan::classify(step, &o)) {
                    Some(crate::jobs::Verdict::Done) => pb::StepState::Succeeded,
                    Some(crate::jobs::Verdict::Retry) => pb::StepState::Pending,
                    _ => pb::StepState::Failed,
                },
            };
            let store_id = match step.target() {
                crate::jobs::Target::Store(s) => s,
                _ => last.and_then(|e| e.store).unwrap_or(0),
            };
            pb::Step {
                seq,
                kind: step.kind() as i32,
                store_id,
                state: state as i32,
                rollback,
                attempts: attempts.len() as u32,
                started_unix_ms: attempts.iter().map(|e| e.dispatched_ms).min().unwrap_or(0),
                finished_unix_ms: last.map(|e| e.finished_ms).unwrap_or(0),
                description: format!("{step:?}"),
            }
        })
        .collect();
    let done = steps
        .iter()
        .filter(|s| s.state == pb::StepState::Succeeded as i32)
        .count() as u32;
    let current = job
        .current_step()
        .map(|(seq, _)| seq)
        .filter(|_| !job.state.is_final())
        .unwrap_or(0);
    pb::Job {
        id: job.id,
        r#type: job.spec.job_type() as i32,
        spec: Some(job.spec.to_proto()),
        state: job.state.to_proto() as i32,
        definition_version: job.definition_version,
        priority: job.priority.to_wire(),
        submitted_by: String::new(),
        reason: String::new(),
        created_unix_ms: job.created_ms,
        updated_unix_ms: job.updated_ms,
        finished_unix_ms: job.finished_ms,
        progress: Some(pb::JobProgress {
            steps_done: done,
            steps_total: steps.len() as u32,
            // Filled in by the API, which can look the children up.
            children_done: 0,
            children_total: job.children.len() as u32,
        }),
        steps,
        current_step: current,
        last_error: job
            .last_error
            .as_ref()
            .map(|m| pb::Error::new(pb::ErrorCode::FailedPrecondition, m.clone())),
        parent_job_id: job.parent.unwrap_or(0),
        child_job_ids: job.children.clone(),
        cancel_requested: job.cancel_requested
            || matches!(
                job.phase,
                Phase::Rollback {
                    cancelled: true,
                    ..
                }
            ),
    }
}

pub fn execution(e: &ExecutionRecord) -> pb::ExecutionRecord {
    pb::ExecutionRecord {
        job_id: e.job_id,
        step_seq: e.step_seq,
        attempt: e.attempt,
        kind: e.step.kind() as i32,
        store_id: e.store.unwrap_or(0),
        mc_term: e.mc_term,
        dispatched_unix_ms: e.dispatched_ms,
        finished_unix_ms: e.finished_ms,
        outcome: e.outcome(),
    }
}

/// The wire form of an RG; addresses come from the view.
pub fn rg(r: &crate::cluster::RgInfo, view: &crate::cluster::ClusterView) -> pb::Rg {
    pb::Rg {
        id: r.id,
        replicas: r
            .members
            .iter()
            .map(|(s, role)| pb::Replica {
                store_id: *s,
                role: if *role == crate::cluster::Role::Voter {
                    pb::ReplicaRole::Voter
                } else {
                    pb::ReplicaRole::Learner
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
        term: r.term,
        applied_index: r.applied_index,
        conf_ver: r.conf_ver,
        region_ids: r.regions.iter().copied().collect(),
        state: if r.offline {
            pb::RgState::Offline
        } else {
            pb::RgState::Online
        } as i32,
        size_bytes: r
            .regions
            .iter()
            .filter_map(|id| view.region(*id))
            .fold(0u64, |sum, x| sum.saturating_add(x.size_bytes)),
    }
}

/// The wire form of a region; its epoch's conf_ver is its RG's membership version.
pub fn region(r: &crate::cluster::RegionInfo, view: &crate::cluster::ClusterView) -> pb::Region {
    pb::Region {
        id: r.id,
        rg_id: r.rg,
        object_id: r.object,
        range: Some(pb::KeyRange {
            start: r.start.to_vec(),
            end: r.end.to_vec(),
        }),
        epoch: Some(pb::RegionEpoch {
            version: r.version,
            conf_ver: view.rg(r.rg).map(|g| g.conf_ver).unwrap_or(0),
        }),
        size_bytes: r.size_bytes,
        keys: r.keys,
    }
}
