//! `mcctl job …`: submit every job type, follow jobs, steer them.

mod show;
mod spec;

use std::time::Duration;

use clap::{Args, Subcommand};
use proto::v1::job_service_client::JobServiceClient;
use proto::v1::*;

use crate::Output;
use crate::client::{CliError, Mc, req};
use crate::render::{Table, json, name, print_json, time};

pub use show::records_table;
use show::{show, summary_table, watch};
use spec::{priority, spec_of};

#[derive(Args, Debug, Clone)]
pub struct SubmitOpts {
    /// Follow the job until it ends; exit 0 only if it succeeded.
    #[arg(long)]
    watch: bool,
    /// Queue behind a conflicting job instead of being refused.
    #[arg(long)]
    wait_for_locks: bool,
    /// Makes a retried submission idempotent (default: a fresh id).
    #[arg(long)]
    request_id: Option<String>,
    /// Class: admin (default), repair, ddl, balance.
    #[arg(long, default_value = "admin")]
    priority: String,
    /// Recorded with the job.
    #[arg(long, default_value = "")]
    reason: String,
    /// Delete regions of an object no DDL request is dropping (a live table's data): admins
    /// only, recorded in the audit log.
    #[arg(long)]
    force: bool,
}

#[derive(Subcommand, Debug)]
pub enum JobCmd {
    /// Move an RG's replica from one store to another.
    Migrate {
        #[arg(long)]
        rg: u64,
        #[arg(long)]
        from: u64,
        #[arg(long)]
        to: u64,
        #[command(flatten)]
        opts: SubmitOpts,
    },
    /// Add a replica of an RG on a store.
    AddReplica {
        #[arg(long)]
        rg: u64,
        #[arg(long)]
        store: u64,
        /// As a learner rather than a voter.
        #[arg(long)]
        learner: bool,
        #[command(flatten)]
        opts: SubmitOpts,
    },
    /// Remove an RG's replica from a store.
    RemoveReplica {
        #[arg(long)]
        rg: u64,
        #[arg(long)]
        store: u64,
        #[command(flatten)]
        opts: SubmitOpts,
    },
    /// Move an RG's leadership to a store.
    TransferLeader {
        #[arg(long)]
        rg: u64,
        #[arg(long)]
        to: u64,
        #[command(flatten)]
        opts: SubmitOpts,
    },
    /// Split a region at a key (UTF-8, or hex with a 0x prefix).
    SplitRegion {
        #[arg(long)]
        region: u64,
        #[arg(long)]
        key: String,
        #[command(flatten)]
        opts: SubmitOpts,
    },
    /// Merge two adjacent regions of one RG.
    MergeRegion {
        #[arg(long)]
        left: u64,
        #[arg(long)]
        right: u64,
        #[command(flatten)]
        opts: SubmitOpts,
    },
    /// Move some regions of an RG to a new RG on the same stores.
    SplitRg {
        #[arg(long)]
        rg: u64,
        #[arg(long, value_delimiter = ',', required = true)]
        regions: Vec<u64>,
        #[command(flatten)]
        opts: SubmitOpts,
    },
    /// Merge an RG into another on the same stores.
    MergeRg {
        #[arg(long)]
        source: u64,
        #[arg(long)]
        target: u64,
        #[command(flatten)]
        opts: SubmitOpts,
    },
    /// Create an RG on the given stores.
    CreateRg {
        #[arg(long, value_delimiter = ',', required = true)]
        stores: Vec<u64>,
        #[arg(long, default_value_t = 0)]
        leader: u64,
        #[command(flatten)]
        opts: SubmitOpts,
    },
    /// Delete an empty RG.
    DeleteRg {
        #[arg(long)]
        rg: u64,
        #[command(flatten)]
        opts: SubmitOpts,
    },
    /// Move every replica off a store.
    Drain {
        #[arg(long)]
        store: u64,
        /// Child migrations at once; 0: the store's snapshot limit.
        #[arg(long, default_value_t = 0)]
        max_parallel: u32,
        #[command(flatten)]
        opts: SubmitOpts,
    },
    /// Jobs, newest first, by state, type, store or RG.
    List {
        /// States: pending, running, paused, retrying, rolling_back, succeeded, failed,
        /// cancelled.
        #[arg(long, value_delimiter = ',')]
        state: Vec<String>,
        /// Types: MigrateReplica, AddReplica, … (as `job show` prints them).
        #[arg(long = "type", value_delimiter = ',')]
        types: Vec<String>,
        #[arg(long, default_value_t = 0)]
        store: u64,
        #[arg(long, default_value_t = 0)]
        rg: u64,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One job: its steps with timings and outcomes, and its execution records.
    Show {
        id: u64,
    },
    /// Follow a job with a progress bar until it ends; exit 0 only if it succeeded.
    Watch {
        id: u64,
    },
    Pause {
        id: u64,
    },
    Resume {
        id: u64,
    },
    Cancel {
        id: u64,
    },
    Retry {
        id: u64,
    },
}

fn type_name(t: i32) -> String {
    JobType::try_from(t)
        .ok()
        .and_then(proto::job_types::def)
        .map(|d| d.name.to_string())
        .unwrap_or_else(|| t.to_string())
}

fn state_name(s: i32) -> String {
    JobState::try_from(s)
        .map(|s| name(s.as_str_name(), "JOB_STATE_"))
        .unwrap_or_else(|_| s.to_string())
}

/// "STEP_KIND_ADD_LEARNER" → "AddLearner".
fn step_name(k: i32) -> String {
    let raw = StepKind::try_from(k)
        .map(|k| name(k.as_str_name(), "STEP_KIND_"))
        .unwrap_or_else(|_| k.to_string());
    raw.split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

async fn get(mc: &mut Mc, id: u64, records: bool) -> Result<GetJobResponse, CliError> {
    mc.call(|c| async move {
        JobServiceClient::new(c)
            .get_job(req(GetJobRequest {
                job_id: id,
                include_records: records,
            }))
            .await
    })
    .await
}

/// "RG 12 is locked by job 88 (MigrateReplica, running step 3/5 Offline)".
async fn explain_lock(mc: &mut Mc, e: CliError) -> CliError {
    let CliError::Locked {
        message,
        resource,
        holder,
    } = e
    else {
        return e;
    };
    let Ok(job) = get(mc, holder, false)
        .await
        .map(|r| r.job.unwrap_or_default())
    else {
        return CliError::Locked {
            message,
            resource,
            holder,
        };
    };
    let subject = match resource.split_once('/') {
        Some(("rg", id)) => format!("RG {id}"),
        Some(("region", id)) => format!("region {id}"),
        Some(("store", id)) => format!("store {id}"),
        _ => resource.clone(),
    };
    let total = job.steps.len();
    let step = job
        .steps
        .iter()
        .find(|s| s.seq == job.current_step)
        .map(|s| format!(" step {}/{total} {}", s.seq, step_name(s.kind)))
        .unwrap_or_default();
    CliError::Locked {
        message: format!(
            "{subject} is locked by job {holder} ({}, {}{step})",
            type_name(job.r#type),
            state_name(job.state)
        ),
        resource,
        holder,
    }
}

fn parse_states(names: &[String]) -> Result<Vec<i32>, CliError> {
    names
        .iter()
        .map(|n| {
            JobState::from_str_name(&format!("JOB_STATE_{}", n.to_uppercase()))
                .map(|s| s as i32)
                .ok_or_else(|| CliError::Usage(format!("--state: `{n}` is not a job state")))
        })
        .collect()
}

fn parse_types(names: &[String]) -> Result<Vec<i32>, CliError> {
    names
        .iter()
        .map(|n| {
            proto::job_types::JOB_TYPES
                .iter()
                .find(|d| d.name.eq_ignore_ascii_case(n))
                .map(|d| d.job_type as i32)
                .ok_or_else(|| CliError::Usage(format!("--type: `{n}` is not a job type")))
        })
        .collect()
}

pub async fn run(mc: &mut Mc, out: Output, cmd: JobCmd) -> Result<(), CliError> {
    if let Some((spec, opts)) = spec_of(&cmd)? {
        let request = SubmitJobRequest {
            request_id: opts.request_id.clone().unwrap_or_else(|| {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                format!("mcctl-{}-{nanos}", std::process::id())
            }),
            spec: Some(JobSpec { spec: Some(spec) }),
            priority: priority(&opts.priority)?,
            wait_for_locks: opts.wait_for_locks,
            reason: opts.reason.clone(),
            force: opts.force,
        };
        let submitted = mc
            .call(|c| {
                let request = request.clone();
                async move { JobServiceClient::new(c).submit_job(req(request)).await }
            })
            .await;
        let job = match submitted {
            Ok(r) => r.job.unwrap_or_default(),
            Err(e) => return Err(explain_lock(mc, e).await),
        };
        if opts.watch {
            if out == Output::Table {
                println!("job {} submitted ({})", job.id, type_name(job.r#type));
            }
            return watch(mc, job.id, out).await;
        }
        return crate::render::print(out, job, "mc.v1.Job", |job| {
            summary_table(std::slice::from_ref(&job));
            Ok(())
        });
    }
    match cmd {
        JobCmd::List {
            state,
            types,
            store,
            rg,
            limit,
        } => {
            let request = ListJobsRequest {
                states: parse_states(&state)?,
                types: parse_types(&types)?,
                store_id: store,
                rg_id: rg,
                page: Some(PageRequest {
                    limit,
                    page_token: String::new(),
                }),
                ..Default::default()
            };
            let r = mc
                .call(|c| {
                    let request = request.clone();
                    async move { JobServiceClient::new(c).list_jobs(req(request)).await }
                })
                .await?;
            crate::render::print(out, r, "mc.v1.ListJobsResponse", |r| {
                summary_table(&r.jobs);
                Ok(())
            })
        }
        JobCmd::Show { id } => show(out, &get(mc, id, true).await?),
        JobCmd::Watch { id } => watch(mc, id, out).await,
        JobCmd::Pause { id }
        | JobCmd::Resume { id }
        | JobCmd::Cancel { id }
        | JobCmd::Retry { id } => {
            let action = match cmd {
                JobCmd::Pause { .. } => 0,
                JobCmd::Resume { .. } => 1,
                JobCmd::Cancel { .. } => 2,
                _ => 3,
            };
            let job = mc
                .call(|c| async move {
                    let mut client = JobServiceClient::new(c);
                    let reason = String::new();
                    let job = match action {
                        0 => {
                            client
                                .pause_job(req(PauseJobRequest { job_id: id, reason }))
                                .await?
                                .into_inner()
                                .job
                        }
                        1 => {
                            client
                                .resume_job(req(ResumeJobRequest { job_id: id, reason }))
                                .await?
                                .into_inner()
                                .job
                        }
                        2 => {
                            client
                                .cancel_job(req(CancelJobRequest { job_id: id, reason }))
                                .await?
                                .into_inner()
                                .job
                        }
                        _ => {
                            client
                                .retry_job(req(RetryJobRequest { job_id: id, reason }))
                                .await?
                                .into_inner()
                                .job
                        }
                    };
                    Ok(tonic::Response::new(job.unwrap_or_default()))
                })
                .await?;
            crate::render::print(out, job, "mc.v1.Job", |job| {
                summary_table(std::slice::from_ref(&job));
                Ok(())
            })
        }
        _ => Ok(()),
    }
}
