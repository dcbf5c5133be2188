//! A finished job's effect on the view: RGs and regions created, split, merged or deleted.

use super::*;

impl ClusterView {
    /// Takes in what a succeeded job did to the cluster's shape: RGs and regions created,
    /// split, merged or deleted. Members and leaders are left to the stores' reports (see
    /// `apply_step`), which their Raft term and conf_ver order.
    pub fn apply_effect(&mut self, effect: &Effect) {
        match effect {
            Effect::RgCreated {
                rg,
                members,
                leader,
                regions,
            } => {
                if !self.rgs.contains_key(rg) {
                    self.put_rg(RgInfo {
                        id: *rg,
                        members: members.iter().map(|s| (*s, Role::Voter)).collect(),
                        leader: *leader,
                        conf_ver: 1,
                        heard: true,
                        ..Default::default()
                    });
                }
                self.add_new_regions(*rg, regions);
            }
            Effect::RegionsCreated { rg, regions } => self.add_new_regions(*rg, regions),
            Effect::RgDeleted { rg } => {
                self.retired.insert(*rg);
                if let Some(info) = self.remove_rg(*rg) {
                    for r in info.regions {
                        self.remove_region(r);
                    }
                }
            }
            Effect::RgOffline { rg, offline } => {
                self.update_rg(*rg, |info| info.offline = *offline);
            }
            Effect::RgSplit {
                rg,
                new_rg,
                regions,
            } => {
                let Some(parent) = self.update_rg(*rg, |parent| {
                    for r in regions {
                        parent.regions.remove(r);
                    }
                    parent.clone()
                }) else {
                    return;
                };
                for r in regions {
                    self.update_region(*r, |x| x.rg = *new_rg);
                }
                if !self.rgs.contains_key(new_rg) {
                    // The stores seed the new RG at term 0 with membership version 1: its
                    // leader's reports start there, not at the parent's term (which would make
                    // every one of them look stale).
                    self.put_rg(RgInfo {
                        id: *new_rg,
                        regions: regions.iter().copied().collect(),
                        term: 0,
                        conf_ver: 1,
                        applied_index: 0,
                        ..parent
                    });
                }
            }
            Effect::RgsMerged { source, target } => {
                self.retired.insert(*source);
                let Some(src) = self.remove_rg(*source) else {
                    return;
                };
                for r in &src.regions {
                    self.update_region(*r, |x| x.rg = *target);
                }
                self.update_rg(*target, |t| t.regions.extend(src.regions));
            }
            Effect::RegionCreated {
                rg,
                region,
                object,
                start,
                end,
            } => {
                if self.rgs.contains_key(rg) {
                    self.update_rg(*rg, |info| info.regions.insert(*region));
                    if !self.regions.contains_key(region) {
                        self.put_region(RegionInfo {
                            id: *region,
                            rg: *rg,
                            object: *object,
                            start: start.clone().into(),
                            end: end.clone().into(),
                            version: 1,
                            size_bytes: 0,
                            keys: 0,
                        });
                    }
                }
            }
            Effect::RegionSplit {
                region,
                at,
                new_region,
            } => {
                if self.regions.contains_key(new_region) {
                    // The step's outcome already brought both halves in.
                    return;
                }
                let Some(left) = self.region(*region).cloned() else {
                    return;
                };
                let half = RegionInfo {
                    size_bytes: left.size_bytes / 2,
                    keys: left.keys / 2,
                    ..left.clone()
                };
                let left = RegionInfo {
                    end: at.clone().into(),
                    version: left.version + 1,
                    size_bytes: left.size_bytes - half.size_bytes,
                    keys: left.keys - half.keys,
                    ..left
                };
                let right = RegionInfo {
                    id: *new_region,
                    start: at.clone().into(),
                    version: left.version,
                    ..half
                };
                let rg = left.rg;
                self.put_region(left);
                self.put_region(right);
                self.split_keys.0.remove(region);
                self.update_rg(rg, |info| info.regions.insert(*new_region));
            }
            Effect::RegionsMerged { left, right } => {
                let Some(r) = self.remove_region(*right) else {
                    return;
                };
                self.update_rg(r.rg, |info| info.regions.remove(right));
                self.update_region(*left, |l| {
                    if l.end == r.start {
                        l.end = r.end.clone();
                        l.version = l.version.max(r.version) + 1;
                        l.size_bytes = l.size_bytes.saturating_add(r.size_bytes);
                        l.keys = l.keys.saturating_add(r.keys);
                    }
                });
                self.split_keys.0.remove(left);
            }
            Effect::RegionDeleted { region } => {
                if let Some(r) = self.remove_region(*region) {
                    self.update_rg(r.rg, |info| info.regions.remove(region));
                }
            }
            Effect::None
            | Effect::ReplicaAdded { .. }
            | Effect::ReplicaRemoved { .. }
            | Effect::ReplicaMoved { .. }
            | Effect::LeaderMoved { .. } => {}
        }
    }
}
