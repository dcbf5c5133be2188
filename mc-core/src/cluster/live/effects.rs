//! What the job engine tells the view: a step's outcome and a finished job's effect change
//! the shapes the jobs made (and only those), and the shapes written are remembered.

use super::*;

impl crate::cluster::ViewSource for LiveCluster {
    fn snapshot(&self) -> ClusterView {
        self.view()
    }

    fn rg_members(&self, rg: RgId) -> Vec<StoreId> {
        let inner = self.inner.read().expect("cluster lock");
        inner
            .view
            .rg(rg)
            .map(|r| r.members.keys().copied().collect())
            .unwrap_or_default()
    }

    fn store_address(&self, store: StoreId) -> Option<String> {
        let inner = self.inner.read().expect("cluster lock");
        inner.view.store(store).map(|s| s.address.clone())
    }

    fn leader_hint(&self, rg: RgId) -> (Option<StoreId>, Vec<StoreId>) {
        crate::cluster::source::leader_hint(&self.inner.read().expect("cluster lock").view, rg)
    }

    fn rg_bytes(&self, rg: RgId) -> u64 {
        self.inner.read().expect("cluster lock").view.rg_bytes(rg)
    }

    fn rg_regions(&self, rg: RgId) -> Vec<crate::ids::RegionId> {
        let inner = self.inner.read().expect("cluster lock");
        inner
            .view
            .rg(rg)
            .map(|r| r.regions.iter().copied().collect())
            .unwrap_or_default()
    }

    fn job_succeeded(&self, effect: &crate::cluster::effect::Effect) -> ShapeChanges {
        use crate::cluster::effect::Effect;
        let mut inner = self.inner.write().expect("cluster lock");
        // Which RG records change; a region's RG is looked up before the effect moves it.
        let region_rg = |r: &RegionId| inner.view.region(*r).map(|x| x.rg);
        let touched: Vec<RgId> = match effect {
            Effect::RgCreated { rg, .. }
            | Effect::RgOffline { rg, .. }
            | Effect::RegionCreated { rg, .. }
            | Effect::RegionsCreated { rg, .. } => vec![*rg],
            Effect::RgSplit { rg, new_rg, .. } => vec![*rg, *new_rg],
            Effect::ReplicaAdded { rg, .. }
            | Effect::ReplicaRemoved { rg, .. }
            | Effect::ReplicaMoved { rg, .. }
            | Effect::LeaderMoved { rg, .. } => vec![*rg],
            Effect::RgsMerged { target, .. } => vec![*target],
            Effect::RegionSplit { region, .. }
            | Effect::RegionsMerged { left: region, .. }
            | Effect::RegionDeleted { region } => region_rg(region).into_iter().collect(),
            _ => vec![],
        };
        inner.view.apply_effect(effect);
        // Membership the job made. Its steps' outcomes normally brought it in already; a step
        // whose outcome was learned by a probe did not, and no heartbeat changes members.
        let voter = |members: &mut crate::cluster::members::Members, store: StoreId| {
            if members.get(&store) != Some(&Role::Voter) {
                members.insert(store, Role::Voter);
            }
        };
        match effect {
            Effect::ReplicaAdded {
                rg,
                store,
                voter: true,
            } => {
                inner
                    .view
                    .update_rg(*rg, |info| voter(&mut info.members, *store));
            }
            Effect::ReplicaAdded { rg, store, .. } => {
                inner.view.update_rg(*rg, |info| {
                    if !info.members.contains_key(store) {
                        info.members.insert(*store, Role::Learner);
                    }
                });
            }
            Effect::ReplicaRemoved { rg, store } => {
                inner.view.update_rg(*rg, |info| {
                    info.members.remove(store);
                    if info.leader == Some(*store) {
                        info.leader = None;
                    }
                });
            }
            Effect::ReplicaMoved { rg, from, to } => {
                inner.view.update_rg(*rg, |info| {
                    info.members.remove(from);
                    voter(&mut info.members, *to);
                    if info.leader == Some(*from) {
                        info.leader = None;
                    }
                });
            }
            Effect::LeaderMoved { rg, to } => {
                inner.view.update_rg(*rg, |info| {
                    if info.members.get(to) == Some(&Role::Voter) {
                        info.leader = Some(*to);
                    }
                });
            }
            _ => {}
        }
        if let Effect::RgCreated { rg, .. } = effect
            && let Some((leader, term, conf_ver, applied)) = inner.new_rg_leaders.remove(rg)
            // A heartbeat that brought the RG in first may know a newer leader.
            && inner.rg_version(*rg).is_none_or(|v| v <= (term, conf_ver))
        {
            inner.set_rg_version(*rg, (term, conf_ver));
            inner.view.update_rg(*rg, |info| {
                info.leader = Some(leader);
                info.term = term;
                info.conf_ver = conf_ver;
                info.applied_index = applied;
            });
        }
        let gone = match effect {
            Effect::RgDeleted { rg } => Some(*rg),
            Effect::RgsMerged { source, .. } => Some(*source),
            _ => None,
        };
        {
            let Inner { view, routes, .. } = &mut *inner;
            routes.sync(view, touched.iter().copied().chain(gone));
        }
        // Written by the engine with the job's records: what the catalog holds is no longer
        // known here until a heartbeat writes it again.
        for rg in touched.iter().copied().chain(gone) {
            *inner.persisted.entry(rg) = 0;
            inner.persisted.tidy(rg);
        }
        ShapeChanges {
            put: touched
                .into_iter()
                .filter_map(|rg| RgRecord::of(&inner.view, rg))
                .collect(),
            deleted: match effect {
                Effect::RgDeleted { rg } => vec![*rg],
                Effect::RgsMerged { source, .. } => vec![*source],
                _ => vec![],
            },
        }
    }

    /// A heartbeat's write of a newer shape may have committed before this one: forget what
    /// the catalog holds of these RGs, so the next heartbeat writes the view's shape again.
    fn shapes_committed(&self, shapes: &ShapeChanges) {
        let mut inner = self.inner.write().expect("cluster lock");
        for rg in shapes
            .put
            .iter()
            .map(|r| r.rg.id)
            .chain(shapes.deleted.iter().copied())
        {
            *inner.persisted.entry(rg) = 0;
            inner.persisted.tidy(rg);
        }
    }

    fn step_succeeded(
        &self,
        rg: RgId,
        step: &dyn crate::cluster::outcome::StepEffect,
        ok: &proto::v1::StepOk,
        from_leader: bool,
    ) -> ShapeChanges {
        let mut inner = self.inner.write().expect("cluster lock");
        let mut touched = BTreeSet::new();
        if let Some(members) = step.designated_leader_of()
            && from_leader
            && members.contains(&ok.leader_store_id)
            && !inner.view.rgs.contains_key(&rg)
        {
            // A new RG's designated leader: the job's effect brings the RG in, led by it.
            inner.new_rg_leaders.insert(
                rg,
                (ok.leader_store_id, ok.term, ok.conf_ver, ok.applied_index),
            );
        }
        let accepted = crate::cluster::outcome::accept(&inner.view, rg, step, ok, from_leader);
        if accepted.members.is_some() || accepted.leader.is_some() {
            let known = inner
                .view
                .rg(rg)
                .map(|r| (r.term, r.conf_ver))
                .unwrap_or_default();
            let (term, conf_ver) = inner.rg_version(rg).unwrap_or(known);
            let term = accepted.leader.map_or(term, |(_, t)| t.max(term));
            let conf_ver = accepted
                .members
                .as_ref()
                .map_or(conf_ver, |(_, c)| conf_ver.max(*c));
            inner.set_rg_version(rg, (term, conf_ver));
            inner.view.update_rg(rg, |info| {
                if let Some((members, conf_ver)) = &accepted.members {
                    info.members = members.clone();
                    info.conf_ver = info.conf_ver.max(*conf_ver);
                }
                if let Some((leader, term)) = accepted.leader {
                    info.leader = Some(leader);
                    info.term = term;
                }
                info.applied_index = info.applied_index.max(accepted.applied_index);
                info.heard = true;
            });
            touched.insert(rg);
        }
        for region in accepted.regions {
            let previous = inner
                .view
                .regions
                .get(&region.id)
                .map(|x| (x.rg, x.size_bytes, x.keys));
            let owner = region.rg;
            if let Some((old, _, _)) = previous
                && old != owner
                && inner
                    .view
                    .update_rg(old, |info| info.regions.remove(&region.id))
                    .is_some()
            {
                touched.insert(old);
            }
            let id = region.id;
            inner.view.put_region(RegionInfo {
                // Sizes come with heartbeats; a step's outcome does not measure them.
                size_bytes: previous.map_or(region.size_bytes, |(_, s, _)| s),
                keys: previous.map_or(region.keys, |(_, _, k)| k),
                ..region
            });
            inner.view.update_rg(owner, |info| info.regions.insert(id));
            touched.insert(owner);
        }
        {
            let Inner { view, routes, .. } = &mut *inner;
            routes.sync(view, touched.iter().copied());
        }
        for rg in &touched {
            *inner.persisted.entry(*rg) = 0;
            inner.persisted.tidy(*rg);
        }
        ShapeChanges {
            put: touched
                .into_iter()
                .filter_map(|rg| RgRecord::of(&inner.view, rg))
                .collect(),
            deleted: vec![],
        }
    }
}
