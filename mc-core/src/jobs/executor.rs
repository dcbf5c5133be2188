//! How the engine reaches stores: one step out, one typed outcome back. The server's
//! implementation speaks gRPC (resolving the RG leader); tests and the simulator use their own.

use proto::v1::StepOutcome;

use crate::ids::JobId;
use crate::jobs::plan::AtomicStep;

/// What fences and identifies one attempt of one step on the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub job_id: JobId,
    pub step_seq: u32,
    pub attempt: u32,
    pub mc_term: u64,
    pub deadline_ms: u32,
}

/// Whether a step's effect is in place, as the stores say now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    Landed,
    NotLanded,
    /// The stores could not be asked, or their answer does not tell (why, for the job's error).
    Unknown(String),
}

pub trait StepExecutor: Send + Sync + 'static {
    fn execute(
        &self,
        envelope: Envelope,
        step: &AtomicStep,
    ) -> impl std::future::Future<Output = StepOutcome> + Send;

    /// Asks the stores whether `step` took effect: what the engine does before it rolls back a
    /// point-of-no-return step whose attempts ended without a definite outcome. Bounded in
    /// time; an executor that cannot ask answers Unknown, and the engine then does not roll
    /// back past the step.
    /// `envelope` names the step (job, sequence number): the stores fence it first, so an
    /// attempt still on its way cannot run after the answer.
    fn probe(
        &self,
        _envelope: Envelope,
        _step: &AtomicStep,
    ) -> impl std::future::Future<Output = Probe> + Send {
        async { Probe::Unknown("this executor cannot ask the stores".into()) }
    }
}
