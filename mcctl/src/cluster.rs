//! `mcctl rg|region|object|scheduler|config|history …`.

use clap::{Args, Subcommand};
use proto::v1::cluster_service_client::ClusterServiceClient;
use proto::v1::meta_service_client::MetaServiceClient;
use proto::v1::*;

use crate::Output;
use crate::client::{CliError, Mc, req};
use crate::render::{Table, bytes, json, name, print_json, time};

#[derive(Subcommand, Debug)]
pub enum RgCmd {
    /// RGs, optionally those with a replica on one store.
    List {
        #[arg(long, default_value_t = 0)]
        store: u64,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// One RG with its regions.
    Show { id: u64 },
}

#[derive(Subcommand, Debug)]
pub enum RegionCmd {
    /// Regions, by RG, object or store.
    List {
        #[arg(long, default_value_t = 0)]
        rg: u64,
        #[arg(long, default_value_t = 0)]
        object: u64,
        #[arg(long, default_value_t = 0)]
        store: u64,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// One region with its RG.
    Show { id: u64 },
}

#[derive(Subcommand, Debug)]
pub enum ObjectCmd {
    /// The object tree (under PATH, for example shop/orders), with RGs and stores.
    Tree {
        path: Option<String>,
        /// 0: the whole tree.
        #[arg(long, default_value_t = 0)]
        depth: u32,
    },
}

#[derive(Subcommand, Debug)]
pub enum SchedulerCmd {
    /// Every scheduler: paused or not, interval, last run, decisions.
    List,
    /// Pause a scheduler, until resumed or for a while.
    Pause {
        name: String,
        /// Seconds; 0 until resumed.
        #[arg(long = "for", default_value_t = 0)]
        duration_secs: u64,
    },
    Resume {
        name: String,
    },
    /// Show the schedulers' config, or set KEY=VALUE pairs (keys under `schedule.`).
    Config {
        #[arg(value_parser = crate::key_value)]
        set: Vec<(String, String)>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Every key (or those under a prefix) with value, default and meaning.
    Show { prefix: Option<String> },
    /// Set KEY=VALUE pairs, all or none.
    Set {
        #[arg(value_parser = crate::key_value, required = true)]
        values: Vec<(String, String)>,
    },
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// execution, scheduling or audit.
    #[arg(long, default_value = "execution")]
    kind: String,
    /// job/N, rg/N, store/N, scheduler/NAME, user/NAME.
    #[arg(long, default_value = "")]
    subject: String,
    /// Only entries at most this long ago: 30s, 15m, 2h, 1d.
    #[arg(long)]
    since: Option<String>,
    /// Only entries older than this long ago.
    #[arg(long)]
    until: Option<String>,
    #[arg(long, default_value_t = 100)]
    limit: u32,
}

fn page(limit: u32) -> Option<PageRequest> {
    Some(PageRequest {
        limit,
        page_token: String::new(),
    })
}

fn rgs_table(rgs: &[Rg]) {
    let mut t = Table::new(&["ID", "LEADER", "REPLICAS", "REGIONS", "STATE", "SIZE"]);
    for g in rgs {
        let replicas: Vec<String> = g
            .replicas
            .iter()
            .map(|r| {
                let learner = r.role == ReplicaRole::Learner as i32;
                format!("{}{}", r.store_id, if learner { "(learner)" } else { "" })
            })
            .collect();
        t.row(vec![
            g.id.to_string(),
            if g.leader_store_id == 0 {
                "-".into()
            } else {
                g.leader_store_id.to_string()
            },
            replicas.join(","),
            g.region_ids.len().to_string(),
            RgState::try_from(g.state)
                .map(|s| name(s.as_str_name(), "RG_STATE_"))
                .unwrap_or_default(),
            bytes(g.size_bytes),
        ]);
    }
    t.print();
}

fn printable(k: &[u8]) -> String {
    if k.is_empty() {
        return "∞".into();
    }
    if k.iter().all(|b| b.is_ascii_graphic()) {
        String::from_utf8_lossy(k).into_owned()
    } else {
        format!(
            "0x{}",
            k.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
    }
}

fn regions_table(regions: &[Region]) {
    let mut t = Table::new(&["ID", "RG", "OBJECT", "START", "END", "VERSION", "SIZE"]);
    for r in regions {
        let range = r.range.clone().unwrap_or_default();
        t.row(vec![
            r.id.to_string(),
            r.rg_id.to_string(),
            r.object_id.to_string(),
            printable(&range.start),
            printable(&range.end),
            r.epoch.map(|e| e.version).unwrap_or(0).to_string(),
            bytes(r.size_bytes),
        ]);
    }
    t.print();
}

pub async fn rg(mc: &mut Mc, out: Output, cmd: RgCmd) -> Result<(), CliError> {
    match cmd {
        RgCmd::List { store, limit } => {
            let r = mc
                .call(|c| async move {
                    ClusterServiceClient::new(c)
                        .list_rgs(req(ListRgsRequest {
                            store_id: store,
                            page: page(limit),
                        }))
                        .await
                })
                .await?;
            crate::render::print(out, r, "mc.v1.ListRgsResponse", |r| {
                rgs_table(&r.rgs);
                Ok(())
            })
        }
        RgCmd::Show { id } => {
            let r = mc
                .call(|c| async move {
                    ClusterServiceClient::new(c)
                        .get_rg(req(GetRgRequest { rg_id: id }))
                        .await
                })
                .await?;
            crate::render::print(out, r, "mc.v1.GetRgResponse", |r| {
                rgs_table(&r.rg.into_iter().collect::<Vec<_>>());
                println!();
                regions_table(&r.regions);
                Ok(())
            })
        }
    }
}

pub async fn region(mc: &mut Mc, out: Output, cmd: RegionCmd) -> Result<(), CliError> {
    match cmd {
        RegionCmd::List {
            rg,
            object,
            store,
            limit,
        } => {
            let r = mc
                .call(|c| async move {
                    ClusterServiceClient::new(c)
                        .list_regions(req(ListRegionsRequest {
                            rg_id: rg,
                            object_id: object,
                            store_id: store,
                            page: page(limit),
                        }))
                        .await
                })
                .await?;
            crate::render::print(out, r, "mc.v1.ListRegionsResponse", |r| {
                regions_table(&r.regions);
                Ok(())
            })
        }
        RegionCmd::Show { id } => {
            let r = mc
                .call(|c| async move {
                    ClusterServiceClient::new(c)
                        .get_region(req(GetRegionRequest { region_id: id }))
                        .await
                })
                .await?;
            crate::render::print(out, r, "mc.v1.GetRegionResponse", |r| {
                regions_table(&r.region.into_iter().collect::<Vec<_>>());
                println!();
                rgs_table(&r.rg.into_iter().collect::<Vec<_>>());
                Ok(())
            })
        }
    }
}

fn tree_lines(node: &ObjectTreeNode, depth: usize, t: &mut Table) {
    let o = node.object.clone().unwrap_or_default();
    let kind = ObjectKind::try_from(o.kind)
        .map(|k| name(k.as_str_name(), "OBJECT_KIND_"))
        .unwrap_or_default();
    let state = ObjectState::try_from(o.state)
        .map(|k| name(k.as_str_name(), "OBJECT_STATE_"))
        .unwrap_or_default();
    let list = |v: &[u64]| {
        v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    t.row(vec![
        format!("{}{}", "  ".repeat(depth), o.name),
        kind,
        o.id.to_string(),
        state,
        list(&o.region_ids),
        list(&node.rg_ids),
        list(&node.store_ids),
    ]);
    for c in &node.children {
        tree_lines(c, depth + 1, t);
    }
}

pub async fn object(mc: &mut Mc, out: Output, cmd: ObjectCmd) -> Result<(), CliError> {
    let ObjectCmd::Tree { path, depth } = cmd;
    let r = mc
        .call(|c| {
            let root = path.clone().map(|p| ObjectRef {
                target: Some(object_ref::Target::Path(p)),
            });
            async move {
                MetaServiceClient::new(c)
                    .get_object_tree(req(GetObjectTreeRequest {
                        root,
                        max_depth: depth,
                    }))
                    .await
            }
        })
        .await?;
    crate::render::print(out, r, "mc.v1.GetObjectTreeResponse", |r| {
        let mut t = Table::new(&["NAME", "KIND", "ID", "STATE", "REGIONS", "RGS", "STORES"]);
        for root in &r.roots {
            tree_lines(root, 0, &mut t);
        }
        t.print();
        Ok(())
    })
}

fn schedulers_table(list: &[SchedulerInfo]) {
    let mut t = Table::new(&["NAME", "PAUSED", "INTERVAL", "LAST RUN", "TAKEN", "SKIPPED"]);
    for s in list {
        t.row(vec![
            s.name.clone(),
            match (s.paused, s.paused_until_unix_ms) {
                (false, _) => "no".into(),
                (true, 0) => "until resumed".into(),
                (true, until) => format!("until {}", time(until)),
            },
            format!("{} ms", s.interval_ms),
            time(s.last_run_unix_ms),
            s.decisions_taken.to_string(),
            s.decisions_skipped.to_string(),
        ]);
    }
    t.print();
}

fn config_table(entries: &[ConfigEntry]) {
    let mut t = Table::new(&["KEY", "VALUE", "DEFAULT", "MEANING"]);
    for e in entries {
        t.row(vec![
            e.key.clone(),
            e.value.clone(),
            e.default_value.clone(),
            e.description.clone(),
        ]);
    }
    t.print();
}

pub async fn status(mc: &mut Mc, out: Output) -> Result<(), CliError> {
    let r = mc
        .call(|c| async move {
            ClusterServiceClient::new(c)
                .get_members(req(GetMembersRequest {}))
                .await
        })
        .await?;
    crate::render::print(out, r, "mc.v1.GetMembersResponse", |r| {
        let mut t = Table::new(&["MC", "ADDRESS", "ROLE"]);
        for m in &r.members {
            let role = if m.is_leader { "leader" } else { "follower" };
            t.row(vec![m.id.to_string(), m.address.clone(), role.into()]);
        }
        t.print();
        let ready = if r.rgs_heard >= r.rgs_known {
            "ready"
        } else {
            "catching up: membership changes of the others wait"
        };
        println!(
            "term {}, leader MC {}; RGs heard from this term: {} of {} ({ready})",
            r.term, r.leader_id, r.rgs_heard, r.rgs_known
        );
        Ok(())
    })
}

async fn show_config(mc: &mut Mc, out: Output, prefix: String) -> Result<(), CliError> {
    let r = mc
        .call(|c| {
            let prefix = prefix.clone();
            async move {
                ClusterServiceClient::new(c)
                    .get_config(req(GetConfigRequest { prefix }))
                    .await
            }
        })
        .await?;
    crate::render::print(out, r, "mc.v1.GetConfigResponse", |r| {
        config_table(&r.entries);
        Ok(())
    })
}

async fn set_config(
    mc: &mut Mc,
    out: Output,
    values: Vec<(String, String)>,
    prefix: &str,
) -> Result<(), CliError> {
    let values: std::collections::HashMap<String, String> = values.into_iter().collect();
    let r = mc
        .call(|c| {
            let values = values.clone();
            async move {
                ClusterServiceClient::new(c)
                    .set_config(req(SetConfigRequest {
                        values,
                        ..Default::default()
                    }))
                    .await
            }
        })
        .await?;
    let entries: Vec<ConfigEntry> = r
        .entries
        .into_iter()
        .filter(|e| e.key.starts_with(prefix))
        .collect();
    match out {
        Output::Json => print_json(&json(
            &SetConfigResponse { entries },
            "mc.v1.SetConfigResponse",
        )),
        Output::Table => {
            config_table(&entries);
            Ok(())
        }
    }
}

pub async fn scheduler(mc: &mut Mc, out: Output, cmd: SchedulerCmd) -> Result<(), CliError> {
    let info = match cmd {
        SchedulerCmd::List => {
            let r = mc
                .call(|c| async move {
                    ClusterServiceClient::new(c)
                        .list_schedulers(req(ListSchedulersRequest {}))
                        .await
                })
                .await?;
            return crate::render::print(out, r, "mc.v1.ListSchedulersResponse", |r| {
                schedulers_table(&r.schedulers);
                Ok(())
            });
        }
        SchedulerCmd::Pause {
            name,
            duration_secs,
        } => mc
            .call(|c| {
                let name = name.clone();
                async move {
                    ClusterServiceClient::new(c)
                        .pause_scheduler(req(PauseSchedulerRequest {
                            name,
                            duration_secs,
                        }))
                        .await
                }
            })
            .await?
            .scheduler
            .unwrap_or_default(),
        SchedulerCmd::Resume { name } => mc
            .call(|c| {
                let name = name.clone();
                async move {
                    ClusterServiceClient::new(c)
                        .resume_scheduler(req(ResumeSchedulerRequest { name }))
                        .await
                }
            })
            .await?
            .scheduler
            .unwrap_or_default(),
        SchedulerCmd::Config { set } if set.is_empty() => {
            return show_config(mc, out, "schedule.".into()).await;
        }
        SchedulerCmd::Config { set } => {
            if let Some((k, _)) = set.iter().find(|(k, _)| !k.starts_with("schedule.")) {
                return Err(CliError::Usage(format!(
                    "`{k}` is not a scheduler key (schedule.…); use `mcctl config set`"
                )));
            }
            return set_config(mc, out, set, "schedule.").await;
        }
    };
    crate::render::print(out, info, "mc.v1.SchedulerInfo", |info| {
        schedulers_table(&[info]);
        Ok(())
    })
}

pub async fn config(mc: &mut Mc, out: Output, cmd: ConfigCmd) -> Result<(), CliError> {
    match cmd {
        ConfigCmd::Show { prefix } => show_config(mc, out, prefix.unwrap_or_default()).await,
        ConfigCmd::Set { values } => set_config(mc, out, values, "").await,
    }
}

/// "30s", "15m", "2h", "1d", or plain milliseconds.
fn ago_ms(s: &str, flag: &str) -> Result<u64, CliError> {
    let bad = || {
        CliError::Usage(format!(
            "{flag}: `{s}` is not a duration like 30s, 15m, 2h, 1d"
        ))
    };
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let scale = match unit {
        "" | "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    Ok(n.saturating_mul(scale))
}

pub async fn history(mc: &mut Mc, out: Output, a: HistoryArgs) -> Result<(), CliError> {
    let kind = match a.kind.as_str() {
        "execution" => HistoryKind::Execution,
        "scheduling" => HistoryKind::Scheduling,
        "audit" => HistoryKind::Audit,
        other => {
            return Err(CliError::Usage(format!(
                "--kind: `{other}` is not execution, scheduling or audit"
            )));
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let start = match &a.since {
        Some(s) => now.saturating_sub(ago_ms(s, "--since")?),
        None => 0,
    };
    let end = match &a.until {
        Some(s) => now.saturating_sub(ago_ms(s, "--until")?),
        None => 0,
    };
    let request = QueryHistoryRequest {
        kind: kind as i32,
        range: Some(TimeRange {
            start_unix_ms: start,
            end_unix_ms: end,
        }),
        subject: a.subject.clone(),
        page: page(a.limit),
        include_archive: false,
    };
    let r = mc
        .call(|c| {
            let request = request.clone();
            async move {
                ClusterServiceClient::new(c)
                    .query_history(req(request))
                    .await
            }
        })
        .await?;
    if out == Output::Json {
        return print_json(&json(&r, "mc.v1.QueryHistoryResponse"));
    }
    match kind {
        HistoryKind::Execution => {
            let records: Vec<ExecutionRecord> = r
                .entries
                .into_iter()
                .filter_map(|e| match e.entry {
                    Some(history_entry::Entry::Execution(x)) => Some(x),
                    _ => None,
                })
                .collect();
            crate::jobs::records_table(&records);
        }
        HistoryKind::Scheduling => {
            let mut t = Table::new(&["AT", "SCHEDULER", "TAKEN", "JOB", "REASON"]);
            for e in r.entries {
                if let Some(history_entry::Entry::Decision(d)) = e.entry {
                    t.row(vec![
                        time(d.at_unix_ms),
                        d.scheduler,
                        if d.taken { "yes" } else { "no" }.into(),
                        if d.job_id == 0 {
                            "-".into()
                        } else {
                            d.job_id.to_string()
                        },
                        d.reason,
                    ]);
                }
            }
            t.print();
        }
        _ => {
            let mut t = Table::new(&["AT", "PRINCIPAL", "METHOD", "RESULT", "JOB", "REQUEST"]);
            for e in r.entries {
                if let Some(history_entry::Entry::Audit(x)) = e.entry {
                    t.row(vec![
                        time(x.at_unix_ms),
                        x.principal,
                        x.method,
                        x.result,
                        if x.job_id == 0 {
                            "-".into()
                        } else {
                            x.job_id.to_string()
                        },
                        x.request.chars().take(80).collect(),
                    ]);
                }
            }
            t.print();
        }
    }
    Ok(())
}
