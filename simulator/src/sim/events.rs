//! The scenario's events as they come due: stores added, lost and back, load shifts, DDL.

use super::*;

impl Sim {
    pub(super) async fn on_scenario(&mut self, i: usize) {
        let e = self.s.events[i].clone();
        let now = self.now();
        match e.kind.as_str() {
            "add_store" => {
                let group = self.s.cluster.stores[0].clone();
                for k in 0..e.count {
                    let mut g = group.clone();
                    if !e.zone.is_empty() {
                        g.zones = vec![e.zone.clone()];
                    }
                    g.labels.extend(e.labels.clone());
                    let id = self.model.stores.keys().max().copied().unwrap_or(0) + 1;
                    let zone = g.zones[(id as usize + k as usize) % g.zones.len()].clone();
                    let mut labels = g.labels.clone();
                    labels.insert("zone".into(), zone.clone());
                    labels.insert("host".into(), format!("h-new-{id}"));
                    self.model.view.put_store(mc_core::cluster::StoreInfo {
                        id,
                        address: format!("sim-{id}"),
                        state: StoreState::Up,
                        labels,
                        capacity_bytes: g.capacity_gib << 30,
                    });
                    self.model.stores.insert(
                        id,
                        SimStore {
                            id,
                            zone,
                            bandwidth: g.bandwidth_mib * crate::model::MIB,
                            cpu: g.cpu,
                            alive: true,
                            died_at: None,
                        },
                    );
                }
                self.work.lower_bound_moves += excess(&self.model);
            }
            "kill_store" | "zone_loss" => {
                let victims: Vec<u64> = self
                    .model
                    .stores
                    .values()
                    .filter(|s| s.alive)
                    .filter(|s| {
                        if e.kind == "kill_store" {
                            s.id == e.store
                        } else {
                            s.zone == e.zone
                        }
                    })
                    .map(|s| s.id)
                    .collect();
                let counts = mc_core::placement::replica_counts(&self.model.view);
                for v in &victims {
                    if let Some(s) = self.model.stores.get_mut(v) {
                        s.alive = false;
                        s.died_at = Some(now);
                    }
                    self.work.lower_bound_moves += counts.get(v).copied().unwrap_or(0) as u64;
                }
                self.model.elect();
                self.losses.push((now / 1000, None));
            }
            "drain_store" => {
                self.model
                    .view
                    .update_store(e.store, |info| info.state = StoreState::Draining);
                let view = self.mc_view().clone();
                if let Some(info) = view.stores.get(&e.store) {
                    let _ = info;
                    let spec = JobSpec::DrainStore {
                        store: e.store,
                        max_parallel: 0,
                    };
                    if let Ok(job) = self.engine.submit(spec, &view).await {
                        self.job_types.push(job.spec.type_name().to_string());
                        self.count_job(job.id);
                        self.wake(job.id, now);
                    }
                }
                let counts = mc_core::placement::replica_counts(&self.model.view);
                self.work.lower_bound_moves += counts.get(&e.store).copied().unwrap_or(0) as u64;
            }
            "label_change" => {
                self.model.view.update_store(e.store, |info| {
                    for (k, v) in &e.labels {
                        info.labels.insert(k.clone(), v.clone());
                    }
                });
                if let Some(s) = self.model.stores.get_mut(&e.store)
                    && let Some(z) = e.labels.get("zone")
                {
                    s.zone = z.clone();
                }
            }
            "load_change" => {
                let n = if e.tables == 0 {
                    self.model.tables.len()
                } else {
                    e.tables as usize
                };
                for f in self.model.load_factor.iter_mut().take(n) {
                    *f *= e.factor;
                }
                self.model.refresh_loads();
            }
            _ => {}
        }
    }
}
