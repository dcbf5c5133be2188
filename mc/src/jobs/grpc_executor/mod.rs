//! The server's StepExecutor: sends each atomic step to a real store over gRPC. It resolves
//! "the RG's leader" from the cluster view, then from NotLeader hints, then by asking members;
//! it fills in what only the live cluster knows (peer addresses, a merge source's final applied
//! index). Transport failures come back as Unavailable, which the engine retries.

mod probe;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto::v1::store_service_client::StoreServiceClient;
use proto::v1::{self as pb, StepOutcome, step_command::Step, step_outcome};
use tonic::transport::Channel;

use crate::cluster::ViewSource;
use crate::ids::{RgId, StoreId};
use crate::jobs::deadline::DeadlinePolicy;
use crate::jobs::executor::{Envelope, StepExecutor};
use crate::jobs::plan::{AtomicStep, Target};
use crate::step::{CommandContext, SourceLog};

pub struct GrpcExecutor {
    view: Arc<dyn ViewSource>,
    deadlines: DeadlinePolicy,
    channels: Mutex<HashMap<String, Channel>>,
    /// Leaders learned from NotLeader hints and status probes, fresher than the view.
    leaders: Mutex<HashMap<RgId, StoreId>>,
    /// RGs whose view leader answered "not the leader" without naming one (a new RG still
    /// electing, a view that missed an election), with that store: while the view still
    /// names it, the members are asked instead.
    unled: Mutex<HashMap<RgId, StoreId>>,
    /// TLS with this MC's certificate: stores take steps only from MCs.
    security: infra::security::Security,
    cluster_id: u64,
}

/// How long a status call to one store may take.
pub(crate) const STATUS_DEADLINE: Duration = Duration::from_secs(3);

fn unavailable(reason: impl Into<String>) -> StepOutcome {
    StepOutcome {
        result: Some(step_outcome::Result::Unavailable(pb::Unavailable {
            reason: reason.into(),
            retry_after_ms: 100,
        })),
    }
}

impl GrpcExecutor {
    pub fn new(
        view: Arc<dyn ViewSource>,
        security: infra::security::Security,
        cluster_id: u64,
    ) -> Self {
        Self {
            view,
            security,
            cluster_id,
            deadlines: DeadlinePolicy::default(),
            channels: Mutex::default(),
            leaders: Mutex::default(),
            unled: Mutex::default(),
        }
    }

    pub(crate) fn view(&self) -> &Arc<dyn ViewSource> {
        &self.view
    }

    fn address(&self, store: StoreId) -> Option<String> {
        self.view.store_address(store)
    }

    fn client(&self, addr: &str) -> Result<StoreServiceClient<Channel>, String> {
        let mut channels = self.channels.lock().expect("channel lock");
        if let Some(c) = channels.get(addr) {
            return Ok(StoreServiceClient::new(c.clone()));
        }
        let channel = self
            .security
            .endpoint(addr)
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(10))
            .connect_lazy();
        channels.insert(addr.to_string(), channel.clone());
        Ok(StoreServiceClient::new(channel))
    }

    /// A request to a store, carrying the cluster id it checks.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        infra::security::tag(&mut request, self.cluster_id);
        request
    }

    /// A store's status, of every replica (`rgs` empty) or of these RGs'. Bounded in time: a
    /// hung (SIGSTOPped, swapping) store costs the caller `STATUS_DEADLINE`, not forever.
    pub(crate) async fn status(
        &self,
        store: StoreId,
        rgs: &[RgId],
    ) -> Option<pb::GetStoreStatusResponse> {
        self.status_fencing(store, rgs, vec![]).await
    }

    /// `status`, fencing `fences` on the store first (see GetStoreStatusRequest).
    pub(crate) async fn status_fencing(
        &self,
        store: StoreId,
        rgs: &[RgId],
        fences: Vec<pb::StepFence>,
    ) -> Option<pb::GetStoreStatusResponse> {
        if infra::failpoint::hit("mc.executor.cut") {
            return None;
        }
        let addr = self.address(store)?;
        let mut client = self.client(&addr).ok()?;
        let mut request = self.request(pb::GetStoreStatusRequest {
            rg_ids: rgs.to_vec(),
            fences,
        });
        request.set_timeout(STATUS_DEADLINE);
        client
            .get_store_status(request)
            .await
            .ok()
            .map(|r| r.into_inner())
    }

    /// The RG's leader: a learned hint first, then the view, then a probe of the members.
    async fn leader(&self, rg: RgId) -> Option<StoreId> {
        if let Some(l) = self.leaders.lock().expect("leader lock").get(&rg).copied() {
            return Some(l);
        }
        let (hint, members) = self.view.leader_hint(rg);
        let stale =
            hint.is_some() && self.unled.lock().expect("unled lock").get(&rg) == hint.as_ref();
        if hint.is_some() && !stale {
            return hint;
        }
        for store in members {
            if let Some(status) = self.status(store, &[rg]).await
                && status.replicas.iter().any(|r| r.rg_id == rg && r.is_leader)
            {
                self.leaders.lock().expect("leader lock").insert(rg, store);
                self.unled.lock().expect("unled lock").remove(&rg);
                return Some(store);
            }
        }
        None
    }

    /// The end of `source`'s log across its members, for a merge's command. The source is
    /// offline on every member, so this is final.
    async fn source_log(&self, source: RgId) -> Result<SourceLog, String> {
        let members: Vec<StoreId> = self.view.rg_members(source);
        if members.is_empty() {
            return Err(format!("RG {source}'s members are not known yet"));
        }
        let mut last_index = 0;
        for store in members.iter().copied() {
            let status = self
                .status(store, &[source])
                .await
                .ok_or_else(|| format!("store {store} did not answer"))?;
            // The last index in any member's log, not only what is applied: a write appended
            // just before the source went offline must be in the merge too.
            match status.replicas.iter().find(|r| r.rg_id == source) {
                Some(r) => last_index = last_index.max(r.applied_index).max(r.last_log_index),
                // Without every member's index the merge could take a short source.
                None => return Err(format!("store {store} does not host RG {source}")),
            }
        }
        Ok(SourceLog {
            rg: source,
            last_index,
            members,
        })
    }

    /// The wire command for a step, as the step table builds it.
    async fn command(&self, step: &AtomicStep) -> Result<Step, String> {
        let spec = step.spec().ok_or("WaitChildren is not sent to stores")?;
        let source_log = match spec.reads_log_of() {
            Some(rg) => Some(self.source_log(rg).await?),
            None => None,
        };
        spec.command(&Context {
            executor: self,
            source_log,
        })
    }
}

/// What a step's command reads from the live cluster.
struct Context<'a> {
    executor: &'a GrpcExecutor,
    source_log: Option<SourceLog>,
}

impl CommandContext for Context<'_> {
    fn peer(&self, store: StoreId, role: pb::ReplicaRole) -> Result<pb::ReplicaPeer, String> {
        let address = self
            .executor
            .address(store)
            .ok_or_else(|| format!("no address for store {store}"))?;
        Ok(pb::ReplicaPeer {
            store_id: store,
            address,
            role: role as i32,
        })
    }

    fn rg_members(&self, rg: RgId) -> Vec<StoreId> {
        self.executor.view.rg_members(rg)
    }

    fn source_log(&self) -> Option<&SourceLog> {
        self.source_log.as_ref()
    }
}

impl StepExecutor for GrpcExecutor {
    async fn probe(&self, env: Envelope, step: &AtomicStep) -> crate::jobs::executor::Probe {
        probe::probe(self, env, step).await
    }

    async fn execute(&self, env: Envelope, step: &AtomicStep) -> StepOutcome {
        if infra::failpoint::hit("mc.executor.cut") {
            return unavailable("MC cut off from the stores (failpoint)");
        }
        let (store, rg) = match (step.target(), step.rg()) {
            (Target::Store(s), Some(rg)) => (Some(s), rg),
            (Target::Leader(rg), _) => (self.leader(rg).await, rg),
            _ => return unavailable("step has no store target"),
        };
        let Some(store) = store else {
            return unavailable(format!("no known leader for RG {rg}"));
        };
        let Some(addr) = self.address(store) else {
            return unavailable(format!("no address for store {store}"));
        };
        let command = match self.command(step).await {
            Ok(c) => c,
            Err(e) => return unavailable(e),
        };
        // The step's own deadline on the store, and a little more for the reply to arrive: a
        // store that hangs costs one deadline, then the engine retries.
        let bytes = step.rg().map(|rg| self.view.rg_bytes(rg)).unwrap_or(0);
        let deadline_ms = self.deadlines.for_step_bytes(step, bytes);
        let request = pb::ExecuteStepRequest {
            envelope: Some(pb::StepEnvelope {
                job_id: env.job_id,
                step_seq: env.step_seq,
                attempt: env.attempt,
                mc_term: env.mc_term,
                rg_id: rg,
                deadline_ms,
            }),
            command: Some(pb::StepCommand {
                step: Some(command),
            }),
        };
        let mut client = match self.client(&addr) {
            Ok(c) => c,
            Err(e) => return unavailable(e),
        };
        let mut request = self.request(request);
        request.set_timeout(Duration::from_millis(u64::from(deadline_ms) + 5_000));
        let outcome = match client.execute_step(request).await {
            Ok(reply) => reply
                .into_inner()
                .outcome
                .unwrap_or_else(|| unavailable("empty reply")),
            Err(status) => unavailable(format!("store {store}: {}", status.message())),
        };
        let mut leaders = self.leaders.lock().expect("leader lock");
        let mut unled = self.unled.lock().expect("unled lock");
        match &outcome.result {
            Some(step_outcome::Result::NotLeader(n)) if n.leader_id != 0 => {
                leaders.insert(rg, n.leader_id);
                unled.remove(&rg);
            }
            Some(step_outcome::Result::NotLeader(_)) => {
                leaders.remove(&rg);
                unled.insert(rg, store);
            }
            Some(step_outcome::Result::Unavailable(_))
            | Some(step_outcome::Result::NotFound(_)) => {
                leaders.remove(&rg);
            }
            Some(step_outcome::Result::Ok(ok)) if ok.leader_store_id != 0 => {
                leaders.insert(rg, ok.leader_store_id);
                unled.remove(&rg);
            }
            _ => {}
        }
        outcome
    }
}
