//! A sample of the simulated cluster every `sample_every`: balance, affinity, work in flight.

use super::*;

impl Sim {
    pub(super) fn on_sample(&mut self) {
        let now = self.now();
        if std::env::var_os("MCSIM_DEBUG").is_some() {
            eprintln!(
                "{now} running {:?} scheduled {:?}",
                self.engine.running_specs(),
                self.scheduled
            );
            if let Some(big) = self
                .model
                .view
                .regions
                .values()
                .max_by_key(|r| r.size_bytes)
            {
                eprintln!(
                    "{now} largest region {} [{:?}, {:?}) rg {} ({} MiB, {} keys, split key {:?}, load {:?})",
                    big.id,
                    big.start,
                    big.end,
                    big.rg,
                    big.size_bytes >> 20,
                    big.keys,
                    self.model.view.split_keys.get(&big.id),
                    self.model.view.loads.get(&big.id)
                );
            }
            for rg in self.model.view.rgs.values() {
                let dead: Vec<u64> = rg
                    .members
                    .keys()
                    .copied()
                    .filter(|s| !self.model.alive(*s))
                    .collect();
                if !dead.is_empty() {
                    eprintln!(
                        "{now} rg {} members {:?} dead {dead:?} busy {:?}",
                        rg.id,
                        rg.members,
                        self.engine.busy_rgs().contains(&rg.id)
                    );
                }
            }
        }
        let snapshots: u64 = self.snapshots.values().sum();
        let sample = report::sample(
            &self.model,
            now / 1000,
            snapshots,
            self.s.workload.txns_per_sample,
            self.s.workload.co_access,
            &mut self.rng,
            &self.cumulative_tables,
        );
        self.safety.under_replicated_region_secs +=
            sample.under_replicated_regions * self.s.sample_secs;
        self.safety.below_quorum_region_secs += sample.below_quorum_regions * self.s.sample_secs;
        self.safety.peak_below_quorum_regions = self
            .safety
            .peak_below_quorum_regions
            .max(sample.below_quorum_regions);
        if sample.under_replicated_regions == 0 {
            for loss in self.losses.iter_mut().filter(|l| l.1.is_none()) {
                loss.1 = Some(now / 1000 - loss.0);
            }
        }
        self.samples.push(sample);
    }
}
