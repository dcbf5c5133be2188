//! A store's replicas from birth to death: opened at start, created by a step, taken offline,
//! and destroyed with the data of every key range no other RG here holds.

use super::*;

impl Store {
    pub(super) async fn open_hosted(self: &Arc<Self>) -> Result<()> {
        let hosted = self.engine.scan_meta::<ReplicaMeta>(keys::HOSTED_PREFIX)?;
        for (key, meta) in hosted {
            let rg = keys::hosted_rg(&key)
                .ok_or_else(|| StoreError::Corrupt("bad hosted key".into()))?;
            let offline = meta.offline;
            let replica = self.open_replica(rg, meta).await?;
            if !offline && self.hibernation().options.enabled {
                replica.sleep_state().hold_election(&replica.raft);
            }
        }
        Ok(())
    }

    /// Starts the Raft instance of a replica whose records exist in RocksDB.
    pub(super) async fn open_replica(
        self: &Arc<Self>,
        rg: u64,
        meta: ReplicaMeta,
    ) -> Result<Arc<Replica>> {
        let mut sm = RgStateMachine::open(rg, self.ctx.clone())?;
        if snapshot::install_interrupted(&self.engine, rg)? {
            tracing::warn!(rg, "finishing a snapshot install interrupted by a crash");
            snapshot::redo_install(&mut sm).await?;
        }
        let log_store =
            crate::rg::log_store::rg_log_store(rg, self.engine.clone(), self.syncer.clone());
        let network = RgNetworkFactory::new(rg, self.transport.clone());
        let raft = Raft::new(self.id(), self.raft_config.clone(), network, log_store, sm)
            .await
            .map_err(|e| StoreError::Unavailable(format!("start RG {rg}: {e}")))?;
        if meta.offline {
            raft.runtime_config().elect(false);
        }
        let replica = Arc::new(Replica {
            rg,
            raft,
            offline: AtomicBool::new(meta.offline),
            sleep: Default::default(),
        });
        self.touch(&replica);
        self.replicas
            .write()
            .expect("replica map lock")
            .insert(rg, replica.clone());
        Ok(replica)
    }

    /// Creates a replica: with `seed`, the RG is new and this store is one of its initial
    /// members; without, the replica is empty and waits to be added by the RG's leader.
    ///
    /// `job` made it: the same job creating it again (its step re-sent after a crash between
    /// the create and its record) finds it and is answered as done; anyone else gets RgExists.
    pub async fn create_replica(
        self: &Arc<Self>,
        rg: u64,
        seed: Option<Seed>,
        job: u64,
    ) -> Result<Arc<Replica>> {
        let exists = self.replica(rg).is_some()
            || self
                .engine
                .get_meta::<ReplicaMeta>(&keys::hosted_key(rg))?
                .is_some();
        if exists {
            let creator: Option<u64> = self.engine.get_meta(&keys::rg_record(rg, "created_by"))?;
            return match (creator, self.replica(rg)) {
                (Some(by), Some(replica)) if by == job && job != 0 => Ok(replica),
                _ => Err(StoreError::RgExists(rg)),
            };
        }
        let mut batch = WriteBatch::default();
        self.engine
            .put_meta(&mut batch, &keys::rg_record(rg, "created_by"), &job)?;
        match &seed {
            Some((members, regions)) => {
                if !members.iter().any(|(id, _)| *id == self.id()) {
                    return Err(StoreError::InvalidArgument {
                        field: "members",
                        reason: format!("store {} is not among the new RG's members", self.id()),
                    });
                }
                crate::rg::seed::seed_rg(&self.engine, &mut batch, rg, members, regions)?
            }
            None => self.engine.put_meta(
                &mut batch,
                &keys::hosted_key(rg),
                &ReplicaMeta {
                    rg_id: rg,
                    offline: false,
                },
            )?,
        }
        self.engine.write(batch, true)?;
        self.open_replica(
            rg,
            ReplicaMeta {
                rg_id: rg,
                offline: false,
            },
        )
        .await
    }

    /// Marks a replica offline (no elections, no client traffic) or back online; persisted.
    pub fn set_offline(&self, replica: &Replica, offline: bool) -> Result<()> {
        let mut batch = WriteBatch::default();
        self.engine.put_meta(
            &mut batch,
            &keys::hosted_key(replica.rg),
            &ReplicaMeta {
                rg_id: replica.rg,
                offline,
            },
        )?;
        self.engine.write(batch, true)?;
        replica.offline.store(offline, Ordering::Release);
        replica.raft.runtime_config().elect(!offline);
        Ok(())
    }

    /// Shuts a replica down and deletes its log, records, snapshots and the data of the
    /// regions it holds. Idempotent.
    /// Deletes the replica and every key range no other RG here holds. `merged_into` (0 for
    /// none) records where a merge source went.
    pub async fn destroy_replica(&self, rg: u64, merged_into: u64) -> Result<()> {
        let replica = self.replicas.write().expect("replica map lock").remove(&rg);
        if let Some(replica) = replica {
            let _ = replica.raft.shutdown().await;
        }
        let regions = self
            .engine
            .scan_meta::<RegionMeta>(&keys::region_prefix(rg))?;
        // Which ranges are free is decided and acted on while no snapshot install is moving
        // ranges between RGs here (one that ingested a merged region's data but has not yet
        // registered the region would otherwise lose it to this delete).
        let _ranges = self.ctx.ranges.lock().await;
        let mut batch = WriteBatch::default();
        // Key ranges another RG here holds now keep their data, whatever region ids this
        // replica's records trail with (a merge or split it missed, a stale stray): the data
        // column family is shared, and those keys are that RG's.
        let others = self.ctx.regions.of_other_rgs(rg);
        for (_, region) in &regions {
            for (start, end) in uncovered(region, &others) {
                let mut piece = region.clone();
                piece.start = start;
                piece.end = end;
                delete_region_data(&self.engine, &mut batch, &piece);
            }
        }
        let prefix = keys::rg_prefix(rg);
        batch.delete_range_cf(self.engine.cf(CF_META), &prefix, &keys::prefix_end(&prefix));
        batch.delete_cf(self.engine.cf(CF_META), keys::hosted_key(rg));
        if merged_into != 0 {
            self.engine
                .put_meta(&mut batch, &keys::merged_key(rg), &merged_into)?;
        }
        batch.delete_range_cf(
            self.engine.cf(CF_LOG),
            keys::log_key(rg, 0),
            keys::log_key(rg, u64::MAX),
        );
        batch.delete_cf(self.engine.cf(CF_LOG), keys::log_key(rg, u64::MAX));
        self.engine.write(batch, true)?;
        for region in self.ctx.regions.of_rg(rg) {
            self.ctx.regions.remove(region.region.id);
        }
        let _ = self
            .ctx
            .applied
            .lock()
            .expect("applied map lock")
            .remove(&rg);
        let _ = std::fs::remove_dir_all(snapshot::rg_snapshot_dir(&self.ctx.snapshot_root, rg));
        Ok(())
    }
}

/// The parts of `region`'s key range no region of `others` covers (an empty end is unbounded).
pub(super) fn uncovered(region: &RegionMeta, others: &[RegionMeta]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let bounded = |end: &Vec<u8>| {
        if end.is_empty() {
            crate::rg::state_machine::MAX_KEY.to_vec()
        } else {
            end.clone()
        }
    };
    let (start, end) = (region.start.clone(), bounded(&region.end));
    let mut covers: Vec<(Vec<u8>, Vec<u8>)> = others
        .iter()
        .map(|o| (o.start.clone(), bounded(&o.end)))
        .filter(|(s, e)| *s < end && *e > start)
        .collect();
    covers.sort();
    let mut out = Vec::new();
    let mut at = start;
    for (s, e) in covers {
        if s > at {
            out.push((at.clone(), s.clone()));
        }
        if e > at {
            at = e;
        }
    }
    if at < end {
        out.push((at, end));
    }
    out
}
