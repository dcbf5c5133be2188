//! Conflicting leadership claims, settled by asking an RG's voters, and the judgement of a
//! store whose reports keep disagreeing.

use super::*;

impl LiveCluster {
    /// RGs with conflicting leadership claims, at most `max`, oldest first: for the caller to
    /// ask the members who leads (`settle_leader`).
    pub fn take_leader_conflicts(&self, max: usize) -> Vec<LeaderConflict> {
        let mut inner = self.inner.write().expect("cluster lock");
        let mut out = Vec::new();
        while out.len() < max {
            let Some(rg) = inner.leader_conflicts.pop_front() else {
                break;
            };
            inner.conflicted.remove(&rg);
            if let Some(info) = inner.view.rg(rg) {
                // Voters only: learners take no part in elections and know least.
                out.push(LeaderConflict {
                    rg,
                    members: info.voters().collect(),
                    claim: (info.leader, info.term),
                });
            }
        }
        out
    }

    /// What the RG's members said leads it (`leader` at `term`), asked while the view held
    /// `conflict.claim`. A claim changed since is left alone (the answers may predate it).
    /// When the view took a claim at a higher term from a store's heartbeat, that claim was a
    /// lie: it counts against the store, whose claims to lead this RG are not taken for
    /// `grace_ms`. The view follows the members.
    pub fn settle_leader(&self, conflict: &LeaderConflict, leader: StoreId, term: u64, now: u64) {
        let rg = conflict.rg;
        let mut inner = self.inner.write().expect("cluster lock");
        let Some(known) = inner.view.rgs.get(&rg) else {
            return;
        };
        if (known.leader, known.term) != conflict.claim
            || known.leader == Some(leader)
            || known.members.get(&leader) != Some(&Role::Voter)
            || known.term > term && !inner.claims.contains_key(&rg)
        {
            return;
        }
        let (claimant, claimed, conf_ver) = (known.leader, known.term, known.conf_ver);
        if let Some(liar) = claimant
            && claimed > term
            && inner
                .claims
                .get(&rg)
                .is_some_and(|(s, t, _)| *s == liar && *t == claimed)
        {
            let what = Disagreement::LeaderClaim {
                rg,
                claimed,
                leader,
                term,
            };
            inner.ledger.lie(&self.evidence, liar, &what, now);
            if inner.discredited.len() >= MAX_DISCREDITED {
                inner.discredited.retain(|_, until| *until > now);
                let stale = self.evidence.grace_ms.saturating_mul(4);
                inner
                    .claims
                    .retain(|_, (_, _, at)| now.saturating_sub(*at) < stale);
            }
            if inner.discredited.len() < MAX_DISCREDITED {
                let until = now.saturating_add(self.evidence.grace_ms);
                inner.discredited.insert((liar, rg), until);
            }
            self.judge(&mut inner, liar);
        }
        inner.claims.remove(&rg);
        let conf_ver = inner.rg_version(rg).map_or(conf_ver, |v| v.1);
        inner.set_rg_version(rg, (term, conf_ver));
        inner.view.update_rg(rg, |info| {
            info.leader = Some(leader);
            info.term = term;
        });
        let Inner { view, routes, .. } = &mut *inner;
        routes.sync(view, [rg]);
    }

    /// Treats a store the ledger suspects as unhealthy: Down for placement and repair (an
    /// operator's Draining or Tombstone stays), with an event for the alerts.
    pub(super) fn judge(&self, inner: &mut Inner, store: StoreId) {
        let Some(why) = inner.ledger.suspect(store) else {
            return;
        };
        if inner.unhealthy.contains_key(&store) {
            return;
        }
        inner.view.update_store(store, |s| {
            if matches!(s.state, StoreState::Up | StoreState::Disconnected) {
                s.state = StoreState::Down;
            }
        });
        inner.health_events.push((store, Some(why.clone())));
        inner.unhealthy.insert(store, why);
    }
}
