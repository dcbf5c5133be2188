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

pub trait StepExecutor: Send + Sync + 'static {
    fn execute(
        &self,
        envelope: Envelope,
        step: &AtomicStep,
    ) -> impl std::future::Future<Output = StepOutcome> + Send;
}
