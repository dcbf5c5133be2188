//! What a replica's state machine tells its store after a split or a merge: join the new RG,
//! campaign for it when this store led the parent, destroy a merged-away source.

use super::*;

impl Store {
    pub(super) async fn handle_events(
        store: std::sync::Weak<Self>,
        mut events: mpsc::UnboundedReceiver<RgEvent>,
    ) {
        while let Some(event) = events.recv().await {
            let Some(store) = store.upgrade() else { return };
            let (logged_in, index) = event.logged_at();
            if let Some(replica) = store.replica(logged_in)
                && snapshot_index(&replica.raft) < index
            {
                let raft = replica.raft.clone();
                tokio::spawn(async move {
                    // A few rounds: a build already running when the entry applied ends short.
                    for _ in 0..12 {
                        match snapshot_covering(&raft, logged_in, index).await {
                            Ok(()) => return,
                            Err(StoreError::Unavailable(_)) => continue,
                            Err(e) => {
                                tracing::warn!(rg = logged_in, index, error = %e, "could not snapshot past a split or merge");
                                return;
                            }
                        }
                    }
                    tracing::warn!(
                        rg = logged_in,
                        index,
                        "no snapshot past a split or merge after a minute"
                    );
                });
            }
            match event {
                RgEvent::Split { parent, new_rg, .. } => {
                    if store.replica(new_rg).is_none() {
                        let meta = ReplicaMeta {
                            rg_id: new_rg,
                            offline: false,
                        };
                        if let Err(e) = store.open_replica(new_rg, meta).await {
                            tracing::error!(parent, new_rg, error = %e, "could not start the RG created by SplitRg");
                        }
                    }
                    // The parent's leader leads the new RG at once, as a Create's designated
                    // leader does: otherwise nothing leads it (and its regions take no write)
                    // until an election timeout, 10-20 s at the default settings.
                    let me = store.id();
                    let leads_parent = store.replica(parent).is_some_and(|p| {
                        p.raft.metrics().borrow_watched().current_leader == Some(me)
                    });
                    if leads_parent && let Some(child) = store.replica(new_rg) {
                        tokio::spawn(async move {
                            crate::steps::replica_steps::campaign(
                                &child,
                                me,
                                crate::steps::replica_steps::CAMPAIGN_LIMIT,
                            )
                            .await
                        });
                    }
                }
                RgEvent::Merged { source, target, .. } => {
                    if let Some(replica) = store.replica(source)
                        && let Err(e) = store.set_offline(&replica, true)
                    {
                        tracing::error!(source, target, error = %e, "could not offline a merged RG");
                    }
                }
            }
        }
    }
}
