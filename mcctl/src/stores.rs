//! `mcctl store …`.

use clap::Subcommand;
use proto::v1::cluster_service_client::ClusterServiceClient;
use proto::v1::*;

use crate::Output;
use crate::client::{CliError, Mc, req};
use crate::render::{Table, bytes, json, labels, name, print_json, time};

#[derive(Subcommand, Debug)]
pub enum StoreCmd {
    /// Every store with its state, labels, replica and leader counts.
    List,
    /// One store.
    Show { id: u64 },
    /// Set SRE labels over the store's own (KEY=VALUE; an empty value removes one).
    Label {
        id: u64,
        #[arg(value_parser = crate::key_value, required = true)]
        labels: Vec<(String, String)>,
    },
    /// Set the store's limits.
    Limit {
        id: u64,
        #[arg(long)]
        steps_per_minute: Option<u32>,
        #[arg(long)]
        snapshots_in_flight: Option<u32>,
    },
    /// Move every replica off the store (starts a DrainStore job).
    Drain { id: u64 },
    /// Retire an empty store for good.
    Tombstone { id: u64 },
    /// Maintenance window: move every leader off the store and hold repair and balancing for
    /// it, so it can be stopped (a restart, an upgrade). Ends with --done, when the window
    /// runs out, or when the store reports again after a restart.
    Maintain {
        id: u64,
        /// How long the window lasts.
        #[arg(long, default_value_t = 600)]
        window_secs: u64,
        /// End the window now.
        #[arg(long)]
        done: bool,
        /// Wait until the store leads nothing (safe to stop), at most the window.
        #[arg(long)]
        wait: bool,
    },
}

fn state(s: i32) -> String {
    StoreState::try_from(s)
        .map(|s| name(s.as_str_name(), "STORE_STATE_"))
        .unwrap_or_else(|_| s.to_string())
}

fn table(stores: &[Store]) {
    let mut t = Table::new(&[
        "ID",
        "ADDRESS",
        "STATE",
        "REPLICAS",
        "LEADERS",
        "USED",
        "CAPACITY",
        "LAST HEARTBEAT",
        "LABELS",
    ]);
    for s in stores {
        let state = match s.maintenance_until_unix_ms {
            0 => state(s.state),
            until => format!("{} (maintenance until {})", state(s.state), time(until)),
        };
        t.row(vec![
            s.id.to_string(),
            s.address.clone(),
            state,
            s.replica_count.to_string(),
            s.leader_count.to_string(),
            bytes(s.used_bytes),
            bytes(s.capacity_bytes),
            time(s.last_heartbeat_unix_ms),
            labels(&s.labels),
        ]);
    }
    t.print();
}

fn show(out: Output, s: &Store) -> Result<(), CliError> {
    match out {
        Output::Json => print_json(&json(s, "mc.v1.Store")),
        Output::Table => {
            table(std::slice::from_ref(s));
            Ok(())
        }
    }
}

pub async fn run(mc: &mut Mc, out: Output, cmd: StoreCmd) -> Result<(), CliError> {
    match cmd {
        StoreCmd::List => {
            let r = mc
                .call(|c| async move {
                    ClusterServiceClient::new(c)
                        .list_stores(req(ListStoresRequest::default()))
                        .await
                })
                .await?;
            crate::render::print(out, r, "mc.v1.ListStoresResponse", |r| {
                table(&r.stores);
                Ok(())
            })
        }
        StoreCmd::Show { id } => {
            let r = mc
                .call(|c| async move {
                    ClusterServiceClient::new(c)
                        .get_store(req(GetStoreRequest { store_id: id }))
                        .await
                })
                .await?;
            show(out, &r.store.unwrap_or_default())
        }
        StoreCmd::Label { id, labels } => {
            let labels: std::collections::HashMap<String, String> = labels.into_iter().collect();
            let r = mc
                .call(|c| {
                    let labels = labels.clone();
                    async move {
                        ClusterServiceClient::new(c)
                            .set_store_labels(req(SetStoreLabelsRequest {
                                store_id: id,
                                labels,
                                ..Default::default()
                            }))
                            .await
                    }
                })
                .await?;
            show(out, &r.store.unwrap_or_default())
        }
        StoreCmd::Limit {
            id,
            steps_per_minute,
            snapshots_in_flight,
        } => {
            if steps_per_minute.is_none() && snapshots_in_flight.is_none() {
                return Err(CliError::Usage(
                    "give --steps-per-minute and/or --snapshots-in-flight".into(),
                ));
            }
            let current = mc
                .call(|c| async move {
                    ClusterServiceClient::new(c)
                        .get_store(req(GetStoreRequest { store_id: id }))
                        .await
                })
                .await?
                .store
                .and_then(|s| s.limit)
                .unwrap_or_default();
            let limit = StoreLimit {
                steps_per_minute: steps_per_minute.unwrap_or(current.steps_per_minute),
                snapshots_in_flight: snapshots_in_flight.unwrap_or(current.snapshots_in_flight),
            };
            let r = mc
                .call(|c| async move {
                    ClusterServiceClient::new(c)
                        .set_store_limit(req(SetStoreLimitRequest {
                            store_id: id,
                            limit: Some(limit),
                            ..Default::default()
                        }))
                        .await
                })
                .await?;
            show(out, &r.store.unwrap_or_default())
        }
        StoreCmd::Maintain {
            id,
            window_secs,
            done,
            wait,
        } => {
            let window = if done { 0 } else { window_secs };
            let mut r = mc
                .call(|c| async move {
                    ClusterServiceClient::new(c)
                        .set_store_maintenance(req(SetStoreMaintenanceRequest {
                            store_id: id,
                            window_secs: window,
                        }))
                        .await
                })
                .await?;
            let until = std::time::Instant::now() + std::time::Duration::from_secs(window);
            while wait && !done && !r.safe_to_stop && std::time::Instant::now() < until {
                if out == Output::Table {
                    println!("store {id} still leads {} RGs", r.leaders_left);
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                let store = mc
                    .call(|c| async move {
                        ClusterServiceClient::new(c)
                            .get_store(req(GetStoreRequest { store_id: id }))
                            .await
                    })
                    .await?
                    .store
                    .unwrap_or_default();
                r.leaders_left = store.leader_count;
                r.safe_to_stop = store.leader_count == 0;
                r.store = Some(store);
            }
            crate::render::print(out, r, "mc.v1.SetStoreMaintenanceResponse", |r| {
                table(std::slice::from_ref(&r.store.clone().unwrap_or_default()));
                if done {
                    println!("store {id}: maintenance ended");
                } else if r.safe_to_stop {
                    println!("store {id} leads nothing: safe to stop");
                } else {
                    println!(
                        "store {id} still leads {} RGs; they are being moved (--wait to \
                             wait for it)",
                        r.leaders_left
                    );
                }
                Ok(())
            })
        }
        StoreCmd::Drain { id } | StoreCmd::Tombstone { id } => {
            let target = if matches!(cmd, StoreCmd::Drain { .. }) {
                StoreState::Draining
            } else {
                StoreState::Tombstone
            };
            let r = mc
                .call(|c| async move {
                    ClusterServiceClient::new(c)
                        .set_store_state(req(SetStoreStateRequest {
                            store_id: id,
                            state: target as i32,
                            ..Default::default()
                        }))
                        .await
                })
                .await?;
            crate::render::print(out, r, "mc.v1.SetStoreStateResponse", |r| {
                table(std::slice::from_ref(&r.store.unwrap_or_default()));
                if r.job_id != 0 {
                    println!(
                        "drain job {} started; follow it with `mcctl job watch {}`",
                        r.job_id, r.job_id
                    );
                }
                Ok(())
            })
        }
    }
}
