//! Taking in what stores report: registrations, store heartbeats and RG heartbeats, each
//! checked as evidence against what the catalog knows (see `cluster::evidence`).

use super::*;

impl LiveCluster {
    /// Registers a store (assigning an id when it has none) and returns its id.
    pub fn register(&self, req: &RegisterStoreRequest, now: u64) -> Result<StoreId> {
        crate::cluster::stores::check_address(&req.address)?;
        crate::cluster::stores::check_labels(&req.labels, req.labels.len())?;
        if req.capacity_bytes > self.evidence.max_store_capacity_bytes {
            return Err(McError::invalid(
                "capacity_bytes",
                format!(
                    "{} is above the largest store this MC takes ({} bytes)",
                    req.capacity_bytes, self.evidence.max_store_capacity_bytes
                ),
            ));
        }
        let mut inner = self.inner.write().expect("cluster lock");
        if let Some(other) = inner
            .view
            .stores
            .values()
            .find(|s| s.address == req.address && s.id != req.store_id && req.store_id != 0)
        {
            return Err(McError::FailedPrecondition {
                subject: format!("address {}", req.address),
                state: format!("registered by store {}", other.id),
                required: "one store per address".into(),
            });
        }
        let id = match req.store_id {
            0 => match inner
                .view
                .stores
                .values()
                .find(|s| s.address == req.address)
            {
                Some(existing) => existing.id,
                None => {
                    let id = inner.next_store_id;
                    inner.next_store_id += 1;
                    id
                }
            },
            id => id,
        };
        inner.next_store_id = inner.next_store_id.max(id + 1);
        let state = match inner.view.stores.get(&id).map(|s| s.state) {
            Some(StoreState::Tombstone) => {
                return Err(McError::FailedPrecondition {
                    subject: format!("store/{id}"),
                    state: "tombstone".into(),
                    required: "a new store id".into(),
                });
            }
            Some(StoreState::Draining) => StoreState::Draining,
            _ => StoreState::Up,
        };
        let reported: BTreeMap<String, String> = req
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        inner.reported.insert(id, reported);
        let labels = inner.effective_labels(id);
        inner.view.put_store(StoreInfo {
            id,
            address: req.address.clone(),
            state,
            labels,
            capacity_bytes: req.capacity_bytes,
        });
        inner.last_seen.insert(id, now);
        Ok(id)
    }

    pub fn store_heartbeat(&self, req: &StoreHeartbeatRequest, now: u64) -> Result<()> {
        self.heartbeats[0].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut inner = self.inner.write().expect("cluster lock");
        let id = req.store_id;
        match inner.view.stores.get(&id).map(|s| s.state) {
            None => return Err(McError::not_found("store", id)),
            Some(StoreState::Tombstone) => return Err(tombstoned(id)),
            Some(_) => {}
        }
        // Numbers are bounded before anything adds them: a report past them is refused
        // whole, counted against the store, and nothing of it is stored.
        if let Some(stats) = &req.stats
            && let Err(what) = check_stats(stats, self.evidence.max_store_capacity_bytes)
        {
            inner.ledger.lie(&self.evidence, id, &what, now);
            self.judge(&mut inner, id);
            let Disagreement::Number { field, .. } = &what else {
                unreachable!("check_stats finds numbers")
            };
            return Err(McError::invalid(*field, what.to_string()));
        }
        // A store the ledger suspects stays unhealthy whatever it says of itself.
        let sick = if req.unhealthy.is_empty() {
            inner.ledger.suspect(id)
        } else {
            Some(crate::cluster::stores::printable(&req.unhealthy, 512))
        };
        let was_sick = inner.unhealthy.contains_key(&id);
        // Back from the restart its maintenance window was for: the window ends. The report's
        // process started (now − uptime) later than the one the window began with, by more
        // than whole-second uptimes and transit can blur.
        if let Some(stats) = &req.stats
            && let Some(known) = inner.maintenance_started.get_mut(&id)
        {
            let this = now.saturating_sub(stats.uptime_secs.saturating_mul(1_000));
            match *known {
                Some(started) if this > started.saturating_add(2_000) => {
                    inner.view.maintenance.remove(&id);
                    inner.maintenance_started.remove(&id);
                    inner.maintenance_ended.push(id);
                }
                Some(_) => {}
                None => *known = Some(this),
            }
        }
        let capacity = req
            .stats
            .as_ref()
            .map(|s| s.capacity_bytes)
            .filter(|c| *c > 0);
        inner
            .view
            .update_store(id, |store| {
                match (&sick, store.state) {
                    // A store that reports but cannot write is as good as Down for placement
                    // and repair; an operator's Draining or Tombstone stays.
                    (Some(_), StoreState::Up | StoreState::Disconnected) => {
                        store.state = StoreState::Down
                    }
                    (None, StoreState::Disconnected | StoreState::Down) => {
                        store.state = StoreState::Up
                    }
                    _ => {}
                }
                if let Some(c) = capacity {
                    store.capacity_bytes = c;
                }
            })
            .ok_or_else(|| McError::not_found("store", id))?;
        inner.last_seen.insert(id, now);
        if let Some(stats) = &req.stats {
            let mut stats = *stats;
            if let Some(field) = past_capacity(&stats) {
                // A store past its configured quota is full, not lying: kept as full.
                tracing::debug!(store = id, field, "store reports more than its capacity");
                stats.used_bytes = stats.used_bytes.min(stats.capacity_bytes);
                stats.available_bytes = stats
                    .available_bytes
                    .min(stats.capacity_bytes - stats.used_bytes);
            }
            inner.stats.insert(id, stats);
        }
        match sick {
            Some(why) => {
                if !was_sick {
                    inner.health_events.push((id, Some(why.clone())));
                }
                inner.unhealthy.insert(id, why);
            }
            None if was_sick => {
                inner.unhealthy.remove(&id);
                inner.health_events.push((id, None));
            }
            None => {}
        }
        // Replicas of RGs that no longer list this store, or that were merged away or deleted
        // while the store was behind: kept with when first reported.
        let view = &mut inner.view;
        let strays: BTreeSet<RgId> = req
            .hosted_rg_ids
            .iter()
            .copied()
            .filter(|rg| match view.rgs.get(rg) {
                Some(info) => !info.members.contains_key(&id),
                None => view.retired.contains(rg),
            })
            .collect();
        view.strays
            .retain(|(s, rg), _| *s != id || strays.contains(rg));
        for rg in strays {
            view.strays.entry((id, rg)).or_insert(now);
        }
        Ok(())
    }

    /// Takes in one RG heartbeat from its leader, as evidence (see `cluster::evidence`): only
    /// for an RG the catalog knows, from a voter the catalog lists, and only what the store
    /// alone can know — who leads, the term, the applied index, and the sizes, load and split
    /// keys of regions the catalog places in this RG. Members, regions and ranges stay as the
    /// jobs made them. A report of an older (term, conf_ver) than one already taken is stale
    /// and ignored, so a deposed leader cannot roll the view back. Returns whether the report
    /// was taken.
    pub fn rg_heartbeat(&self, from: StoreId, hb: &RgHeartbeat, now: u64) -> Result<bool> {
        self.heartbeats[1].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.heartbeats[2].fetch_add(
            hb.regions.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        let mut inner = self.inner.write().expect("cluster lock");
        match inner.view.stores.get(&from).map(|s| s.state) {
            None => return Err(McError::not_found("store", from)),
            Some(StoreState::Tombstone) => return Err(tombstoned(from)),
            Some(_) => {}
        }
        inner.last_seen.insert(from, now);
        let config = &self.evidence;
        let rg = hb.rg_id;
        // A store that keeps lying is not heard at all until it is trusted again.
        if inner.ledger.suspect(from).is_some() {
            return Ok(false);
        }
        // Only a leader reports its RG. A stale replica that still believes it leads (a store
        // back from the dead, a replica the MC removed) is ignored, not refused: its store's
        // live RGs report on the same stream.
        if hb.leader_store_id != from {
            return Ok(false);
        }
        let Some(known) = inner.view.rgs.get(&rg) else {
            if !inner.view.retired.contains(&rg) {
                let what = Disagreement::UnknownRg { rg };
                inner.ledger.disagree(config, from, rg, &what, now);
            }
            return Ok(false);
        };
        match known.members.get(&from) {
            None => return Ok(false),
            Some(Role::Learner) => {
                let what = Disagreement::LearnerLeads { rg };
                inner.ledger.disagree(config, from, rg, &what, now);
                return Ok(false);
            }
            Some(Role::Voter) => {}
        }
        let (known_term, known_conf) = inner.rg_version(rg).unwrap_or((known.term, known.conf_ver));
        if (hb.term, hb.conf_ver) < (known_term, known_conf) {
            // Stale, or the claim taken was a lie: the members settle it (`settle_leader`).
            // First come, first asked: a store cannot keep some RGs in conflict to starve
            // the rest.
            if known.leader != Some(from)
                && inner.conflicted.len() < MAX_LEADER_CONFLICTS
                && inner.conflicted.insert(rg)
            {
                inner.leader_conflicts.push_back(rg);
            }
            return Ok(false);
        }
        // A report from before one already taken at the same term and configuration (sent
        // by the same leader, delivered late): the applied index only grows within a term.
        if (hb.term, hb.conf_ver) == (known_term, known_conf)
            && hb.applied_index < inner.rg_applied(rg, from)
        {
            return Ok(false);
        }
        if known.leader != Some(from)
            && inner
                .discredited
                .get(&(from, rg))
                .is_some_and(|until| now < *until)
        {
            return Ok(false);
        }
        let jump = if hb.term > known_term.saturating_add(evidence::MAX_TERM_STEP) {
            Some(Disagreement::TermJump {
                rg,
                known: known_term,
                reported: hb.term,
            })
        } else if hb.conf_ver > known_conf.saturating_add(evidence::MAX_CONF_VER_STEP) {
            Some(Disagreement::ConfVerJump {
                rg,
                known: known_conf,
                reported: hb.conf_ver,
            })
        } else {
            None
        };
        if let Some(what) = jump {
            inner.ledger.lie(config, from, &what, now);
            self.judge(&mut inner, from);
            return Ok(false);
        }
        // From here on the report is taken, as far as it agrees.
        let mut disagreements = Vec::new();
        let reported: BTreeSet<StoreId> = hb.members.iter().map(|m| m.store_id).collect();
        let members: BTreeSet<StoreId> = known.members.keys().copied().collect();
        // One conf change in flight differs by one store; more than that no job made.
        if reported.symmetric_difference(&members).count() > 1 {
            disagreements.push(Disagreement::Members {
                rg,
                reported: reported.iter().copied().collect(),
                known: members.iter().copied().collect(),
            });
        }
        let elapsed_ms = inner
            .hear_rg(rg, now)
            .map(|last| now.saturating_sub(last))
            .filter(|ms| *ms > 0)
            .unwrap_or(1_000);
        let mut seen = 0;
        let mut reported = std::collections::HashSet::new();
        for r in &hb.regions {
            // A region listed twice is counted once (and cannot hide a missing one).
            if !reported.insert(r.region_id) {
                continue;
            }
            let Some(region) = inner.view.region(r.region_id) else {
                disagreements.push(Disagreement::UnknownRegion {
                    rg,
                    region: r.region_id,
                });
                continue;
            };
            if region.rg != rg {
                disagreements.push(Disagreement::RegionOfAnotherRg {
                    rg,
                    region: r.region_id,
                    owner: region.rg,
                });
                continue;
            }
            seen += 1;
            let range = r.range.as_ref();
            let same_range =
                range.is_some_and(|k| k.start == *region.start && k.end == *region.end);
            if range.is_some() && !same_range {
                disagreements.push(Disagreement::Range {
                    rg,
                    region: r.region_id,
                });
            }
            // A region's version moves with the jobs that split, merge or move it; a job whose
            // step outcome was lost (settled by a probe) leaves the view a version behind, and
            // every later region job on it would fail on the epoch. The leader's report of the
            // same range a few versions on is taken (only the RG's own regions, bounded).
            let version = r.epoch.map_or(0, |e| e.version);
            let newer_version = (same_range
                && version > region.version
                && version <= region.version.saturating_add(MAX_VERSION_STEP))
            .then_some(version);
            let mut numbers_ok = true;
            for (field, value, max) in [
                (
                    "regions.size_bytes",
                    r.size_bytes,
                    evidence::MAX_REGION_BYTES,
                ),
                ("regions.keys", r.keys, evidence::MAX_REGION_KEYS),
            ] {
                if value > max {
                    numbers_ok = false;
                    disagreements.push(Disagreement::Number { field, value, max });
                }
            }
            // A split key is a key of the region, past its start, as the catalog holds it.
            let split_key = if r.split_key.len() <= MAX_SPLIT_KEY_BYTES
                && region.contains(&r.split_key)
                && r.split_key.as_slice() != &*region.start
            {
                r.split_key.clone()
            } else {
                Vec::new()
            };
            // Counters come from the network: saturate, bound, never overflow.
            let rate =
                |bytes: u64| (bytes.saturating_mul(1_000) / elapsed_ms).min(evidence::MAX_RATE);
            let load = crate::cluster::view::RegionLoad {
                read_bytes_per_sec: rate(r.read_bytes),
                write_bytes_per_sec: rate(r.write_bytes),
            };
            let (size_bytes, keys) = (r.size_bytes, r.keys);
            inner.view.set_load(r.region_id, load);
            inner.view.set_split_key(r.region_id, split_key);
            if numbers_ok || newer_version.is_some() {
                inner.view.update_region(r.region_id, |info| {
                    if numbers_ok {
                        info.size_bytes = size_bytes;
                        info.keys = keys;
                    }
                    if let Some(v) = newer_version {
                        info.version = v;
                    }
                });
            }
        }
        let known_regions = inner.view.rgs.get(&rg).map_or(0, |r| r.regions.len());
        if seen < known_regions {
            disagreements.push(Disagreement::MissingRegions {
                rg,
                count: known_regions - seen,
            });
        }
        if disagreements.is_empty() {
            inner.ledger.agree(from, rg);
        }
        // One of each kind per report: a report listing the same lie a thousand times is one.
        let mut kinds = BTreeSet::new();
        for what in disagreements.iter().filter(|w| kinds.insert(w.kind())) {
            inner.ledger.disagree(config, from, rg, what, now);
        }
        self.judge(&mut inner, from);
        let version = (hb.term, hb.conf_ver.max(known_conf));
        inner.set_rg_version(rg, version);
        let seen = inner.rg_seen.entry(rg);
        (seen.applied, seen.applied_by) = (hb.applied_index, from);
        // Whose word the view's leader is now, for the members to confirm if it is disputed.
        let previous = inner.view.rg(rg).and_then(|r| r.leader);
        // Kept only for a leader that replaced another: an RG nobody was known to lead has no
        // claim to contradict (and a map entry per RG at a new leader's start would cost 10 B
        // per cached region).
        if previous.is_some_and(|p| p != from) {
            inner.claims.insert(rg, (from, hb.term, now));
        } else if let Some(claim) = inner.claims.get_mut(&rg) {
            claim.1 = hb.term;
        }
        let applied = hb.applied_index;
        inner.view.update_rg(rg, |info| {
            info.leader = Some(from);
            info.heard = true;
            info.term = version.0;
            info.conf_ver = version.1;
            info.applied_index = info.applied_index.max(applied);
        });
        let Inner { view, routes, .. } = &mut *inner;
        routes.sync(view, [rg]);
        Ok(true)
    }
}

fn tombstoned(store: StoreId) -> McError {
    McError::FailedPrecondition {
        subject: format!("store/{store}"),
        state: "tombstone".into(),
        required: "a store that is part of the cluster (a tombstoned store's reports are refused)"
            .into(),
    }
}

/// The first number of a store's report past any disk or network: capacity above the largest
/// store this MC takes, used or available bytes above that too, rates past any disk. No honest
/// store sends one.
fn check_stats(stats: &StoreStats, max_capacity: u64) -> std::result::Result<(), Disagreement> {
    let checks = [
        ("stats.capacity_bytes", stats.capacity_bytes, max_capacity),
        ("stats.used_bytes", stats.used_bytes, max_capacity),
        ("stats.available_bytes", stats.available_bytes, max_capacity),
        (
            "stats.read_bytes_per_sec",
            stats.read_bytes_per_sec,
            evidence::MAX_RATE,
        ),
        (
            "stats.write_bytes_per_sec",
            stats.write_bytes_per_sec,
            evidence::MAX_RATE,
        ),
    ];
    match checks.into_iter().find(|(_, value, max)| value > max) {
        Some((field, value, max)) => Err(Disagreement::Number { field, value, max }),
        None => Ok(()),
    }
}

/// Used or available bytes above the store's capacity: a store filled past its configured
/// quota. Taken as full (used = capacity, nothing available), not held against the store.
fn past_capacity(stats: &StoreStats) -> Option<&'static str> {
    let capacity = stats.capacity_bytes;
    if capacity == 0 {
        return None;
    }
    if stats.used_bytes > capacity {
        Some("stats.used_bytes")
    } else if stats.available_bytes > capacity {
        Some("stats.available_bytes")
    } else {
        None
    }
}
