//! How long a step may take on the store: a floor per step kind, plus time to move the RG's
//! bytes for the steps that move data (catching up a learner, destroying a replica). An
//! expired deadline comes back as Unavailable, which the engine retries.

use crate::cluster::ClusterView;
use crate::jobs::plan::AtomicStep;

#[derive(Clone, Copy, Debug)]
pub struct DeadlinePolicy {
    /// Shortest deadline of any step.
    pub floor_ms: u64,
    /// Assumed transfer rate for data-moving steps (snapshot, catch-up).
    pub move_bytes_per_sec: u64,
    /// Longest deadline: beyond it a step is more likely stuck than slow.
    pub ceiling_ms: u64,
}

impl Default for DeadlinePolicy {
    fn default() -> Self {
        // Half the 300 MB/s a snapshot measurably streams at, for headroom under load.
        Self {
            floor_ms: 5_000,
            move_bytes_per_sec: 150_000_000,
            ceiling_ms: 3_600_000,
        }
    }
}

impl DeadlinePolicy {
    pub fn for_step(&self, step: &AtomicStep, view: &ClusterView) -> u32 {
        self.for_step_bytes(step, step.rg().map(|rg| view.rg_bytes(rg)).unwrap_or(0))
    }

    /// `for_step` for a step whose RG holds `bytes`.
    pub fn for_step_bytes(&self, step: &AtomicStep, bytes: u64) -> u32 {
        let move_ms = bytes.saturating_mul(1_000) / self.move_bytes_per_sec.max(1);
        let ms = match step {
            // A learner receives the whole RG by snapshot or log.
            AtomicStep::AddLearner { .. } => 10_000 + move_ms,
            // Deleting is much cheaper than moving, but still grows with the data.
            AtomicStep::Destroy { .. } => 5_000 + move_ms / 10,
            // An election may be needed.
            AtomicStep::Offline { .. } | AtomicStep::TransferLeader { .. } => 20_000,
            // The merge waits for the source replicas to finish applying.
            AtomicStep::MergeRg { .. } | AtomicStep::SplitRg { .. } => 30_000,
            _ => self.floor_ms,
        };
        ms.clamp(self.floor_ms, self.ceiling_ms)
            .min(u64::from(u32::MAX)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::types::tests::view;

    #[test]
    fn data_moving_steps_scale_with_the_rg_and_others_get_the_floor() {
        let p = DeadlinePolicy::default();
        let v = view(); // RG 1 holds two regions of 64 MiB each.
        let add = p.for_step(&AtomicStep::AddLearner { rg: 1, store: 4 }, &v);
        assert_eq!(add, 10_000 + (128u64 << 20) as u32 / 150_000);
        let empty = p.for_step(&AtomicStep::AddLearner { rg: 5, store: 4 }, &v);
        assert_eq!(empty, 10_000);
        assert_eq!(
            p.for_step(&AtomicStep::Promote { rg: 1, store: 4 }, &v),
            5_000
        );
        assert!(p.for_step(&AtomicStep::destroy(1, 4), &v) < add);
        let tiny = DeadlinePolicy {
            floor_ms: 5_000,
            move_bytes_per_sec: 1,
            ceiling_ms: 60_000,
        };
        assert_eq!(
            tiny.for_step(&AtomicStep::AddLearner { rg: 1, store: 4 }, &v),
            60_000,
            "capped"
        );
    }
}
