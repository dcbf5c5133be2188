//! RG split and merge as they apply: the regions move to the new RG, or come from the source.

use super::*;

impl RgStateMachine {
    pub(super) fn apply_split_rg(
        &mut self,
        new_rg_id: u64,
        region_ids: &[u64],
        batch: &mut WriteBatch,
        changed: &mut Vec<Change>,
    ) -> io::Result<RgResponse> {
        let invalid = |reason: String| {
            Ok(RgResponse {
                rejected: Some(Rejection::Invalid { reason }),
                regions: vec![],
            })
        };
        if new_rg_id == self.rg || region_ids.is_empty() {
            return invalid("SplitRg needs a new RG id and at least one region".into());
        }
        if let Some(missing) = region_ids.iter().find(|id| !self.regions.contains_key(id)) {
            return Ok(RgResponse {
                rejected: Some(Rejection::RegionNotFound {
                    region_id: *missing,
                }),
                regions: vec![],
            });
        }
        let membership = self.membership.membership();
        if membership.learner_ids().next().is_some() {
            return invalid("SplitRg needs an RG without learners".into());
        }
        let members: Vec<(u64, String)> = membership
            .nodes()
            .map(|(id, node)| (*id, node.addr.clone()))
            .collect();
        let engine = self.engine().clone();
        let mut moved = Vec::new();
        for id in region_ids {
            let mut region = self.regions.get(id).cloned().expect("checked above");
            self.remove_region(batch, *id, changed);
            region.version += 1;
            moved.push(region);
        }
        // The new RG starts on every member from the same seeded state, with no data copied:
        // the regions' keys stay where they are in the shared data CF.
        crate::rg::seed::seed_rg(&engine, batch, new_rg_id, &members, &moved).map_err(io_err)?;
        for region in &moved {
            changed.push(Change::Moved {
                rg: new_rg_id,
                region: region.clone(),
            });
        }
        self.splits.push(SplitRecord {
            index: self.applying,
            new_rg: new_rg_id,
            members: members.iter().map(|(id, _)| *id).collect(),
            regions: region_ids.to_vec(),
        });
        let excess = self.splits.len().saturating_sub(SPLITS_KEPT);
        self.splits.drain(..excess);
        engine
            .put_meta(batch, &keys::rg_record(self.rg, "splits"), &self.splits)
            .map_err(io_err)?;
        changed.push(Change::Event(RgEvent::Split {
            parent: self.rg,
            new_rg: new_rg_id,
            index: self.applying,
        }));
        Ok(RgResponse {
            rejected: None,
            regions: moved,
        })
    }

    pub(super) async fn apply_merge_rg(
        &mut self,
        source: u64,
        source_applied_index: u64,
        batch: &mut WriteBatch,
        changed: &mut Vec<Change>,
    ) -> io::Result<RgResponse> {
        let engine = self.engine().clone();
        let hosted: Option<ReplicaMeta> =
            engine.get_meta(&keys::hosted_key(source)).map_err(io_err)?;
        if hosted.is_none() {
            // A repeat of a merge this replica applied, its source destroyed since: done.
            let merged: Option<u64> = engine.get_meta(&keys::merged_key(source)).map_err(io_err)?;
            if merged == Some(self.rg) {
                return Ok(RgResponse {
                    rejected: None,
                    regions: vec![],
                });
            }
            // The MC aligns members before merging; a member without the source cannot take
            // its regions, and diverging here would corrupt the RG. Stop this replica.
            return Err(io_err(format!(
                "MergeRg: source RG {source} is not hosted on this store"
            )));
        }
        // The source is offline and stops at source_applied_index; wait for the local replica.
        let mut applied = self.ctx.applied_watch(source);
        let wait = applied.wait_for(|index| *index >= source_applied_index);
        match tokio::time::timeout(Duration::from_secs(30), wait).await {
            Ok(Ok(_)) => {}
            _ => {
                return Err(io_err(format!(
                    "MergeRg: source RG {source} did not reach index {source_applied_index}"
                )));
            }
        }
        let source_regions = engine
            .scan_meta::<RegionMeta>(&keys::region_prefix(source))
            .map_err(io_err)?;
        let mut moved = Vec::new();
        for (key, mut region) in source_regions {
            batch.delete_cf(engine.cf(CF_META), key);
            region.version += 1;
            self.put_region(batch, region.clone(), changed)?;
            moved.push(region);
        }
        changed.push(Change::Event(RgEvent::Merged {
            source,
            target: self.rg,
            index: self.applying,
        }));
        Ok(RgResponse {
            rejected: None,
            regions: moved,
        })
    }
}
