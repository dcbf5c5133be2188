//! How long a step may take on the store: what the step table says of each kind (a floor, a
//! fixed time, or time to move the RG's bytes for the steps that move data), bounded by the
//! policy. An expired deadline comes back as Unavailable, which the engine retries.

use crate::cluster::ClusterView;
use crate::jobs::plan::AtomicStep;
use crate::step::Deadline;

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
        let ms = match step.spec().map_or(Deadline::Floor, |s| s.deadline()) {
            Deadline::Floor => self.floor_ms,
            Deadline::Fixed(ms) => ms,
            Deadline::MovesData { base_ms, share } => base_ms + move_ms / share.max(1),
        };
        ms.clamp(self.floor_ms, self.ceiling_ms)
            .min(u64::from(u32::MAX)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::types::tests::view;
    use crate::step;

    #[test]
    fn data_moving_steps_scale_with_the_rg_and_others_get_the_floor() {
        let p = DeadlinePolicy::default();
        let v = view(); // RG 1 holds two regions of 64 MiB each.
        let add = p.for_step(
            &AtomicStep::AddLearner(step::AddLearner { rg: 1, store: 4 }),
            &v,
        );
        assert_eq!(add, 10_000 + (128u64 << 20) as u32 / 150_000);
        let empty = p.for_step(
            &AtomicStep::AddLearner(step::AddLearner { rg: 5, store: 4 }),
            &v,
        );
        assert_eq!(empty, 10_000);
        assert_eq!(
            p.for_step(&AtomicStep::Promote(step::Promote { rg: 1, store: 4 }), &v),
            5_000
        );
        assert!(p.for_step(&AtomicStep::destroy(1, 4), &v) < add);
        let tiny = DeadlinePolicy {
            floor_ms: 5_000,
            move_bytes_per_sec: 1,
            ceiling_ms: 60_000,
        };
        assert_eq!(
            tiny.for_step(
                &AtomicStep::AddLearner(step::AddLearner { rg: 1, store: 4 }),
                &v
            ),
            60_000,
            "capped"
        );
    }
}
