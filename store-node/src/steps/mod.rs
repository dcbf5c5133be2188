//! StoreService.ExecuteStep: runs one atomic step the MC sends. The executor checks the
//! envelope, fences deposed MC leaders (mc_term), answers a repeat of the last step of an RG
//! with its stored outcome, lets one step per RG run at a time (a second gets Busy), and maps
//! every result to a typed `StepOutcome`. What each step does is in `replica_steps` and
//! `region_steps`; nothing here knows what job a step belongs to.

mod records;
mod region_steps;
pub(crate) mod replica_steps;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto::v1::store_service_server::StoreService;
use proto::v1::{
    ExecuteStepRequest, ExecuteStepResponse, GetStoreStatusRequest, GetStoreStatusResponse,
    ReplicaRole, ReplicaStatus, StepEnvelope, StepOk, StepOutcome, step_command::Step,
    step_outcome,
};
use rocksdb::WriteBatch;
use tonic::{Request, Response, Status};

use crate::engine::keys;
use crate::error::{Result, StoreError};
use crate::store::Store;

/// Fences one status call may ask for.
const MAX_FENCES: usize = 16;

/// Steps that wait (catch-up, leader transfer) get this long unless the envelope says.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);

/// Cheap to clone: every clone shares the gates, so each step can run in a task of its own.
#[derive(Clone)]
pub struct StepServer {
    store: Arc<Store>,
    /// One lock per RG, also for RGs not hosted yet (Create) or any more (Destroy).
    gates: Arc<Mutex<HashMap<u64, Arc<tokio::sync::Mutex<()>>>>>,
    /// The step holding each gate, to name it in Busy.
    running: Arc<Mutex<HashMap<u64, (u64, u32)>>>,
    term: Arc<tokio::sync::Mutex<()>>,
}

/// What a step implementation returns on success.
pub(crate) struct Done {
    pub regions: Vec<proto::v1::Region>,
}

impl StepServer {
    pub fn new(store: Arc<Store>) -> Self {
        Self {
            store,
            gates: Arc::default(),
            running: Arc::default(),
            term: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    fn gate(&self, rg: u64) -> Arc<tokio::sync::Mutex<()>> {
        self.gates
            .lock()
            .expect("gate map lock")
            .entry(rg)
            .or_default()
            .clone()
    }

    /// Refuses a step from an MC term older than the highest seen; persists a newer one.
    async fn fence(&self, mc_term: u64) -> Result<()> {
        let _guard = self.term.lock().await;
        let highest: u64 = self
            .store
            .engine
            .get_meta(keys::STORE_MC_TERM)?
            .unwrap_or(0);
        if mc_term < highest {
            return Err(StoreError::StaleTerm {
                request_term: mc_term,
                highest_seen_term: highest,
            });
        }
        if mc_term > highest {
            let mut batch = WriteBatch::default();
            self.store
                .engine
                .put_meta(&mut batch, keys::STORE_MC_TERM, &mc_term)?;
            self.store.engine.write(batch, true)?;
        }
        Ok(())
    }

    pub async fn execute(&self, req: ExecuteStepRequest) -> ExecuteStepResponse {
        let envelope = match validate(&req) {
            Ok(envelope) => envelope,
            Err(e) => {
                return ExecuteStepResponse {
                    outcome: Some(outcome_of_error(e)),
                    replayed: false,
                };
            }
        };
        let rg = envelope.rg_id;
        if let Err(e) = self.fence(envelope.mc_term).await {
            return ExecuteStepResponse {
                outcome: Some(outcome_of_error(e)),
                replayed: false,
            };
        }
        let gate = self.gate(rg);
        let Ok(_guard) = gate.try_lock() else {
            let (job_id, step_seq) = self
                .running
                .lock()
                .expect("running lock")
                .get(&rg)
                .copied()
                .unwrap_or((0, 0));
            let busy = StoreError::Busy {
                rg_id: rg,
                job_id,
                step_seq,
            };
            return ExecuteStepResponse {
                outcome: Some(outcome_of_error(busy)),
                replayed: false,
            };
        };
        self.running
            .lock()
            .expect("running lock")
            .insert(rg, (envelope.job_id, envelope.step_seq));
        let response = self.execute_locked(&envelope, req).await;
        self.running.lock().expect("running lock").remove(&rg);
        response
    }

    async fn execute_locked(
        &self,
        envelope: &StepEnvelope,
        req: ExecuteStepRequest,
    ) -> ExecuteStepResponse {
        let rg = envelope.rg_id;
        match self.stored_outcome(rg, envelope.job_id, envelope.step_seq) {
            Ok(Some(outcome)) => {
                return ExecuteStepResponse {
                    outcome: Some(outcome),
                    replayed: true,
                };
            }
            Ok(None) => {}
            Err(e) => {
                return ExecuteStepResponse {
                    outcome: Some(outcome_of_error(e)),
                    replayed: false,
                };
            }
        }
        let deadline = if envelope.deadline_ms == 0 {
            DEFAULT_DEADLINE
        } else {
            Duration::from_millis(envelope.deadline_ms.into())
        };
        let step = req.command.and_then(|c| c.step).expect("validated");
        let kind = format!("{:?}", std::mem::discriminant(&step));
        let result =
            match tokio::time::timeout(deadline, self.run(rg, envelope.job_id, step, deadline))
                .await
            {
                Ok(result) => result,
                Err(_) => Err(StoreError::DeadlineExceeded(format!(
                    "step did not finish within {deadline:?}"
                ))),
            };
        let outcome = match result {
            Ok(done) => {
                self.store
                    .count_executed(envelope.job_id, envelope.step_seq);
                StepOutcome {
                    result: Some(step_outcome::Result::Ok(self.ok(rg, done))),
                }
            }
            Err(e) => {
                tracing::info!(rg, job = envelope.job_id, step = envelope.step_seq, kind, error = %e, "step failed");
                outcome_of_error(e)
            }
        };
        // A crash here (the step ran, its outcome not recorded) makes the MC's re-send run it
        // again: every step checks whether its effect is already there.
        crate::failpoint::hit("store.step.ran");
        if is_final(&outcome)
            && let Err(e) = self.record(rg, envelope.job_id, envelope.step_seq, &outcome)
        {
            return ExecuteStepResponse {
                outcome: Some(outcome_of_error(e)),
                replayed: false,
            };
        }
        ExecuteStepResponse {
            outcome: Some(outcome),
            replayed: false,
        }
    }

    /// Fences one step (see `GetStoreStatusRequest.fences`): under the RG's gate, so no
    /// attempt of it can start between the check and the record.
    async fn fence_step(&self, f: &proto::v1::StepFence) -> Result<proto::v1::FenceResult> {
        use proto::v1::fence_result::State;
        let mut result = proto::v1::FenceResult {
            rg_id: f.rg_id,
            job_id: f.job_id,
            step_seq: f.step_seq,
            state: State::Running as i32,
            outcome: None,
        };
        let gate = self.gate(f.rg_id);
        let Ok(_guard) = tokio::time::timeout(Duration::from_secs(1), gate.lock()).await else {
            // Held all that time: the step (or another on the RG) is running.
            return Ok(result);
        };
        match self.stored_outcome(f.rg_id, f.job_id, f.step_seq)? {
            Some(outcome) => {
                result.state = State::Recorded as i32;
                result.outcome = Some(outcome);
            }
            None => {
                let fenced = StepOutcome {
                    result: Some(step_outcome::Result::Failed(proto::v1::StepFailed {
                        reason: "fenced: the MC judged this step not done and moved on".into(),
                        refused: true,
                    })),
                };
                self.record(f.rg_id, f.job_id, f.step_seq, &fenced)?;
                result.state = State::Fenced as i32;
            }
        }
        Ok(result)
    }

    fn stored_outcome(&self, rg: u64, job_id: u64, step_seq: u32) -> Result<Option<StepOutcome>> {
        records::stored(&self.store.engine, rg, job_id, step_seq)
    }

    fn record(&self, rg: u64, job_id: u64, step_seq: u32, outcome: &StepOutcome) -> Result<()> {
        records::record(&self.store.engine, rg, job_id, step_seq, outcome)
    }

    async fn run(&self, rg: u64, job: u64, step: Step, deadline: Duration) -> Result<Done> {
        let store = &self.store;
        // Fault injection at the start of a step, by kind: `store.step.create` and so on.
        let point = format!("store.step.{}", step_name(&step));
        if crate::failpoint::hit(&point) {
            return Err(StoreError::Failed(format!("injected at {point}")));
        }
        // A step wakes the RG it works on and keeps it awake while it runs and for the idle
        // time after it (merge and split steps wake the other RG where they touch it).
        let touch = || {
            if let Some(replica) = store.replica(rg) {
                store.touch(&replica);
            }
        };
        let slept = store.replica(rg).filter(|r| {
            r.sleep_state().is_asleep()
                && openraft::async_runtime::WatchReceiver::borrow_watched(&r.raft.metrics())
                    .state
                    .is_leader()
        });
        touch();
        if let Some(replica) = slept {
            // A leader that slept lost its lease: renew it with one quorum round, so a
            // membership change is not refused for it (see kv's writes).
            let _ = tokio::time::timeout(
                store.client_wait(),
                replica
                    .raft
                    .ensure_linearizable(openraft::raft::ReadPolicy::ReadIndex),
            )
            .await;
        }
        let result = self.run_step(rg, job, step, deadline).await;
        touch();
        result
    }

    async fn run_step(&self, rg: u64, job: u64, step: Step, deadline: Duration) -> Result<Done> {
        let store = &self.store;
        match step {
            Step::Create(s) => replica_steps::create(store, rg, s, job).await,
            Step::AddLearner(s) => replica_steps::add_learner(store, rg, s, deadline).await,
            Step::Promote(s) => replica_steps::promote(store, rg, s.store_id).await,
            Step::Demote(s) => replica_steps::demote(store, rg, s.store_id).await,
            Step::Offline(s) => {
                replica_steps::offline(store, rg, s.transfer_leader_to, s.whole_rg, deadline).await
            }
            Step::Online(_) => replica_steps::online(store, rg).await,
            Step::Remove(s) => replica_steps::remove(store, rg, s.store_id).await,
            Step::Destroy(s) => {
                replica_steps::destroy(store, rg, s.merged_into_rg_id, s.only_if_empty, deadline)
                    .await
            }
            Step::TransferLeader(s) => {
                replica_steps::transfer_leader(store, rg, s.to_store_id, deadline).await
            }
            Step::CreateRegion(s) => region_steps::create_region(store, rg, s).await,
            Step::SplitRegion(s) => region_steps::split_region(store, rg, s).await,
            Step::MergeRegion(s) => region_steps::merge_region(store, rg, s).await,
            Step::DeleteRegion(s) => region_steps::delete_region(store, rg, s).await,
            Step::SplitRg(s) => region_steps::split_rg(store, rg, s).await,
            Step::MergeRg(s) => region_steps::merge_rg(store, rg, s).await,
        }
    }

    fn ok(&self, rg: u64, done: Done) -> StepOk {
        let Some(replica) = self.store.replica(rg) else {
            return StepOk {
                regions: done.regions,
                ..Default::default()
            };
        };
        let status = replica_status(&self.store, &replica);
        StepOk {
            members: status.members,
            leader_store_id: status.leader_store_id,
            term: status.term,
            applied_index: status.applied_index,
            conf_ver: self
                .store
                .engine
                .get_meta(&keys::rg_record(rg, "conf_ver"))
                .ok()
                .flatten()
                .unwrap_or(0),
            regions: done.regions,
        }
    }
}

fn step_name(step: &Step) -> &'static str {
    match step {
        Step::Create(_) => "create",
        Step::AddLearner(_) => "add_learner",
        Step::Promote(_) => "promote",
        Step::Demote(_) => "demote",
        Step::Offline(_) => "offline",
        Step::Online(_) => "online",
        Step::Remove(_) => "remove",
        Step::Destroy(_) => "destroy",
        Step::TransferLeader(_) => "transfer_leader",
        Step::CreateRegion(_) => "create_region",
        Step::SplitRegion(_) => "split_region",
        Step::MergeRegion(_) => "merge_region",
        Step::DeleteRegion(_) => "delete_region",
        Step::SplitRg(_) => "split_rg",
        Step::MergeRg(_) => "merge_rg",
    }
}

fn validate(req: &ExecuteStepRequest) -> Result<StepEnvelope> {
    let envelope = req.envelope.ok_or(StoreError::InvalidArgument {
        field: "envelope",
        reason: "missing".into(),
    })?;
    if envelope.rg_id == 0 {
        return Err(StoreError::InvalidArgument {
            field: "envelope.rg_id",
            reason: "must be set".into(),
        });
    }
    if envelope.job_id == 0 || envelope.step_seq == 0 {
        return Err(StoreError::InvalidArgument {
            field: "envelope.job_id",
            reason: "job_id and step_seq must be set".into(),
        });
    }
    if req.command.as_ref().and_then(|c| c.step.as_ref()).is_none() {
        return Err(StoreError::InvalidArgument {
            field: "command.step",
            reason: "exactly one step kind must be set".into(),
        });
    }
    Ok(envelope)
}

/// Outcomes worth remembering: a repeat must get the same answer. Transient ones are not
/// stored, so the MC's retry runs the step again.
fn is_final(outcome: &StepOutcome) -> bool {
    matches!(
        outcome.result,
        Some(step_outcome::Result::Ok(_))
            | Some(step_outcome::Result::Failed(_))
            | Some(step_outcome::Result::InvalidArgument(_))
    )
}

pub(crate) fn outcome_of_error(error: StoreError) -> StepOutcome {
    use proto::v1::error::Detail;
    let proto = error.to_proto();
    let result = match (error, proto.detail) {
        (_, Some(Detail::Busy(b))) => step_outcome::Result::Busy(b),
        (_, Some(Detail::NotLeader(n))) => step_outcome::Result::NotLeader(n),
        (_, Some(Detail::EpochMismatch(e))) => step_outcome::Result::EpochMismatch(e),
        (_, Some(Detail::NotFound(n))) => step_outcome::Result::NotFound(n),
        (_, Some(Detail::Unavailable(u))) => step_outcome::Result::Unavailable(u),
        (_, Some(Detail::StaleTerm(s))) => step_outcome::Result::StaleTerm(s),
        (_, Some(Detail::InvalidArgument(i))) => step_outcome::Result::InvalidArgument(i),
        (StoreError::DeadlineExceeded(m), _) => {
            step_outcome::Result::Unavailable(proto::v1::Unavailable {
                reason: format!("deadline exceeded: {m}"),
                retry_after_ms: 0,
            })
        }
        (e, _) => step_outcome::Result::Failed(proto::v1::StepFailed {
            refused: matches!(e, StoreError::RgExists(_)),
            reason: e.to_string(),
        }),
    };
    StepOutcome {
        result: Some(result),
    }
}

/// What a replica reports about itself, for GetStoreStatus and step outcomes.
pub fn replica_status(store: &Store, replica: &crate::store::Replica) -> ReplicaStatus {
    use openraft::async_runtime::WatchReceiver;
    let metrics = replica.raft.metrics().borrow_watched().clone();
    let membership = metrics.membership_config.membership();
    let voters: Vec<u64> = membership.voter_ids().collect();
    let mut members: Vec<proto::v1::Replica> = membership
        .nodes()
        .map(|(id, _)| proto::v1::Replica {
            store_id: *id,
            role: if voters.contains(id) {
                ReplicaRole::Voter as i32
            } else {
                ReplicaRole::Learner as i32
            },
            offline: *id == store.id() && replica.is_offline(),
        })
        .collect();
    members.sort_by_key(|m| m.store_id);
    let me = members
        .iter()
        .find(|m| m.store_id == store.id())
        .map(|m| m.role)
        .unwrap_or(ReplicaRole::Learner as i32);
    let (last_job_id, last_step_seq) = records::last(&store.engine, replica.rg);
    let members_applied = match metrics.membership_config.log_id() {
        None => true,
        Some(at) => metrics
            .last_applied
            .is_some_and(|a| a.index() >= at.index()),
    };
    ReplicaStatus {
        rg_id: replica.rg,
        role: me,
        offline: replica.is_offline(),
        is_leader: metrics.current_leader == Some(store.id()),
        leader_store_id: metrics.current_leader.unwrap_or(0),
        term: metrics.current_term,
        applied_index: store.applied_index(replica.rg),
        members,
        regions: store
            .regions()
            .of_rg(replica.rg)
            .into_iter()
            .map(|e| region_proto(replica.rg, &e.region))
            .collect(),
        last_job_id,
        last_step_seq,
        members_applied,
        running_job_id: 0,
        running_step_seq: 0,
        last_log_index: metrics.last_log_index.unwrap_or(0),
        members_joint: membership.get_joint_config().len() > 1,
        asleep: replica.sleep_state().is_asleep(),
    }
}

pub(crate) fn region_proto(rg: u64, r: &crate::rg::types::RegionMeta) -> proto::v1::Region {
    proto::v1::Region {
        id: r.id,
        rg_id: rg,
        object_id: r.object_id,
        range: Some(proto::v1::KeyRange {
            start: r.start.clone(),
            end: r.end.clone(),
        }),
        epoch: Some(proto::v1::RegionEpoch {
            version: r.version,
            conf_ver: 0,
        }),
        size_bytes: 0,
        keys: 0,
    }
}

#[tonic::async_trait]
impl StoreService for StepServer {
    async fn execute_step(
        &self,
        request: Request<ExecuteStepRequest>,
    ) -> std::result::Result<Response<ExecuteStepResponse>, Status> {
        // The step runs in a task of its own: if the MC goes away mid-step (it crashed, or its
        // deadline passed), the step still finishes and its outcome is recorded, so the
        // re-sent step is answered from the record instead of running into what it did.
        let me = self.clone();
        let request = request.into_inner();
        let step = tokio::spawn(async move { me.execute(request).await });
        match step.await {
            Ok(response) => Ok(Response::new(response)),
            Err(e) => Err(Status::internal(format!("step task: {e}"))),
        }
    }

    async fn get_store_status(
        &self,
        request: Request<GetStoreStatusRequest>,
    ) -> std::result::Result<Response<GetStoreStatusResponse>, Status> {
        let request = request.into_inner();
        if request.fences.len() > MAX_FENCES {
            return Err(Status::invalid_argument(format!(
                "fences: at most {MAX_FENCES} per call, not {}",
                request.fences.len()
            )));
        }
        // Fences first, so the status read after them cannot miss a step that starts later.
        let mut fences = Vec::with_capacity(request.fences.len());
        for f in &request.fences {
            fences.push(
                self.fence_step(f)
                    .await
                    .map_err(|e| Status::unavailable(e.to_string()))?,
            );
        }
        let wanted: std::collections::HashSet<u64> = request.rg_ids.into_iter().collect();
        let highest_mc_term = self
            .store
            .engine
            .get_meta(keys::STORE_MC_TERM)
            .ok()
            .flatten()
            .unwrap_or(0);
        let running = self.running.lock().expect("running lock").clone();
        let replicas = self
            .store
            .replicas()
            .iter()
            .filter(|r| wanted.is_empty() || wanted.contains(&r.rg))
            .map(|r| {
                let mut status = replica_status(&self.store, r);
                if let Some((job, seq)) = running.get(&r.rg) {
                    (status.running_job_id, status.running_step_seq) = (*job, *seq);
                }
                status
            })
            .collect();
        let repeated_steps = self
            .store
            .steps_executed()
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|((job_id, step_seq), runs)| proto::v1::StepRuns {
                job_id,
                step_seq,
                runs,
            })
            .collect();
        Ok(Response::new(GetStoreStatusResponse {
            store_id: self.store.id(),
            highest_mc_term,
            replicas,
            repeated_steps,
            fences,
        }))
    }
}
