//! A store going down on purpose (SIGTERM, a rolling restart) first hands every RG it leads
//! to the most caught-up other voter, so no region waits out an election timeout with no
//! leader while the store restarts. Bounded: whatever has not moved by the deadline (a member
//! down, a transfer refused) is left to the RG's own election.

use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;

use crate::store::{Replica, Store};

/// The voter other than `me` whose log matches the leader's furthest; None when `me` does not
/// lead or leads alone.
fn successor(replica: &Replica, me: u64) -> Option<u64> {
    let metrics = replica.raft.metrics().borrow_watched().clone();
    if metrics.current_leader != Some(me) || replica.is_offline() {
        return None;
    }
    let voters: Vec<u64> = metrics
        .membership_config
        .membership()
        .voter_ids()
        .filter(|v| *v != me)
        .collect();
    let matched = metrics.replication.unwrap_or_default();
    let index = |v: &u64| matched.get(v).cloned().flatten().map(|l| l.index());
    let best = voters.iter().map(index).max()?;
    // Among the equally caught up (an idle cluster: all of them), one by the RG's id, so a
    // restarting store's RGs spread over the others instead of all going to one.
    let tied: Vec<u64> = voters.into_iter().filter(|v| index(v) == best).collect();
    Some(tied[(replica.rg % tied.len() as u64) as usize])
}

/// Moves leadership of every RG this store leads to another voter, all at once, waiting at
/// most `limit`. Returns (RGs it led, RGs whose leadership moved).
pub async fn hand_over_leaders(store: &Arc<Store>, limit: Duration) -> (usize, usize) {
    let me = store.id();
    let moves: Vec<_> = store
        .replicas()
        .into_iter()
        .filter_map(|r| successor(&r, me).map(|to| (r, to)))
        .collect();
    let led = moves.len();
    let tries = moves.into_iter().map(|(replica, to)| async move {
        let raft = &replica.raft;
        if raft.trigger().transfer_leader(to).await.is_err() {
            return false;
        }
        raft.wait(Some(limit))
            .metrics(
                |m| m.current_leader.is_some() && m.current_leader != Some(me),
                "leadership handed over",
            )
            .await
            .is_ok()
    });
    let moved = futures::future::join_all(tries)
        .await
        .into_iter()
        .filter(|m| *m)
        .count();
    tracing::info!(led, moved, "handed leadership over before stopping");
    (led, moved)
}
