//! JobService: submit, inspect, watch and steer jobs.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use proto::v1::job_service_server::JobService;
use proto::v1::*;
use tonic::{Request, Response, Status};

use crate::api::auth::Caller;
use crate::api::{audit, convert, errors::status, page_reply};
use crate::catalog::CatalogStore;
use crate::catalog::users::{self, Permission};
use crate::clock::Clock;
use crate::cluster::LiveCluster;
use crate::error::McError;
use crate::jobs::executor::StepExecutor;
use crate::jobs::index::{self, JobFilter};
use crate::jobs::queue::Priority;
use crate::jobs::record;
use crate::jobs::runner::JobRunner;

/// The state of each of these objects that has a record (dropped objects have none).
pub type ObjectStatesFn = Arc<
    dyn Fn(
            Vec<crate::ids::ObjectId>,
        ) -> futures::future::BoxFuture<
            'static,
            Vec<(crate::ids::ObjectId, crate::objects::ObjectState)>,
        > + Send
        + Sync,
>;

pub struct JobApi<S, E, C> {
    runner: Arc<JobRunner<S, E, C>>,
    cluster: Arc<LiveCluster>,
    objects: Option<ObjectStatesFn>,
}

impl<S: CatalogStore, E: StepExecutor, C: Clock> JobApi<S, E, C> {
    pub fn new(runner: Arc<JobRunner<S, E, C>>, cluster: Arc<LiveCluster>) -> Self {
        Self {
            runner,
            cluster,
            objects: None,
        }
    }

    /// Jobs that delete data look up the objects they would delete here.
    pub fn with_objects(mut self, objects: ObjectStatesFn) -> Self {
        self.objects = Some(objects);
        self
    }

    /// What a job asks beyond `jobs.write`: deleting regions of an object no DDL request is
    /// dropping needs `force`, and `force` needs the admin role; draining a store changes the
    /// cluster (`cluster.write`).
    async fn over_reach(
        &self,
        caller: Option<&Caller>,
        spec: &crate::jobs::JobSpec,
        force: bool,
        wait_for_locks: bool,
    ) -> Result<(), McError> {
        use crate::jobs::JobSpec;
        // What a job that deletes data deletes is checked when it is submitted; queued behind
        // another job (a MergeRg moving a live table's regions into the RG it deletes, say) it
        // would run on what that job left, unchecked.
        if wait_for_locks
            && matches!(
                spec,
                JobSpec::DeleteRegion { .. } | JobSpec::DeleteRg { .. }
            )
        {
            return Err(McError::invalid(
                "wait_for_locks",
                "a job that deletes data does not wait behind another job: submit it again \
                 once the lock holder ended",
            ));
        }
        let user = match caller {
            Some(Caller::User(name)) => Some(name.as_str()),
            _ => None,
        };
        let catalog = self.runner.engine().store();
        if let (JobSpec::DrainStore { .. }, Some(user)) = (spec, user) {
            users::check(catalog, user, Permission::ClusterWrite)?;
        }
        let regions: Vec<(u64, u64)> = self.cluster.read(|view| match spec {
            JobSpec::DeleteRegion { region } => view
                .region(*region)
                .map(|r| (r.id, r.object))
                .into_iter()
                .collect(),
            JobSpec::DeleteRg { rg } => view
                .rg(*rg)
                .map(|info| {
                    info.regions
                        .iter()
                        .filter_map(|id| view.region(*id).map(|r| (r.id, r.object)))
                        .collect()
                })
                .unwrap_or_default(),
            _ => vec![],
        });
        if force {
            if let Some(user) = user {
                let admin = users::get(catalog, user)?
                    .is_some_and(|u| u.roles.iter().any(|r| r == "admin"));
                if !admin {
                    return Err(McError::PermissionDenied {
                        principal: user.to_string(),
                        permission: "jobs.force",
                        reason: "only the admin role may force a job that deletes data".into(),
                    });
                }
            }
            return Ok(());
        }
        let (Some(objects), false) = (&self.objects, regions.is_empty()) else {
            return Ok(());
        };
        let mut ids: Vec<u64> = regions.iter().map(|(_, o)| *o).collect();
        ids.sort_unstable();
        ids.dedup();
        let states = objects(ids).await;
        let live = regions.iter().find_map(|(region, object)| {
            states
                .iter()
                .find(|(o, s)| o == object && *s != crate::objects::ObjectState::Dropping)
                .map(|(o, s)| (*region, *o, *s))
        });
        match live {
            Some((region, object, state)) => Err(McError::FailedPrecondition {
                subject: format!("region {region} of object {object}"),
                state: format!(
                    "{} (no DDL request is dropping it)",
                    format!("{state:?}").to_lowercase()
                ),
                required: "a drop of the object first, or `force` (admins only, audited)".into(),
            }),
            None => Ok(()),
        }
    }

    async fn submit(
        &self,
        caller: Option<Caller>,
        req: SubmitJobRequest,
    ) -> Result<Response<SubmitJobResponse>, Status> {
        let spec = req
            .spec
            .clone()
            .ok_or_else(|| status(McError::invalid("spec", "missing")))?;
        let priority = Priority::from_wire(req.priority, Priority::Admin).map_err(status)?;
        let engine = self.runner.engine();
        let spec = engine
            .spec_from_live(&spec, &self.cluster)
            .await
            .map_err(status)?;
        self.over_reach(caller.as_ref(), &spec, req.force, req.wait_for_locks)
            .await
            .map_err(status)?;
        let job = engine
            .submit_live_with(
                spec,
                &self.cluster,
                req.wait_for_locks,
                Some(req.request_id.as_str()),
                priority,
            )
            .await
            .map_err(status)?;
        self.runner.drive(job.id);
        let (job, _) = self.get(job.id, false).map_err(status)?;
        Ok(Response::new(SubmitJobResponse { job: Some(job) }))
    }

    /// Records `call` with the job it concerns.
    async fn audit<T>(
        &self,
        call: audit::Call<'_>,
        job_id: u64,
        result: &Result<Response<T>, Status>,
    ) {
        let engine = self.runner.engine();
        let call = audit::Call { job_id, ..call };
        audit::record(engine.store(), &engine.log_ids(), call, result).await;
    }

    /// The wire form of a job, with its children's progress.
    fn proto(&self, job: &record::JobRecord, execs: &[record::ExecutionRecord]) -> Job {
        let mut out = convert::job(job, execs);
        if !job.children.is_empty()
            && let Some(p) = out.progress.as_mut()
        {
            p.children_done = self.runner.engine().children_progress(job).0;
        }
        out
    }

    fn get(&self, id: u64, with_records: bool) -> Result<(Job, Vec<ExecutionRecord>), McError> {
        let engine = self.runner.engine();
        let job = engine.job(id)?;
        let execs = record::load_execs(engine.store(), id)?;
        let records = if with_records {
            execs.iter().map(convert::execution).collect()
        } else {
            vec![]
        };
        Ok((self.proto(&job, &execs), records))
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<JobEvent, Status>> + Send>>;

/// Counts a watch stream while its task lives.
struct WatchGuard(Arc<crate::jobs::metrics::EngineMetrics>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0
            .watches
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

fn is_final(state: i32) -> bool {
    [JobState::Succeeded, JobState::Failed, JobState::Cancelled]
        .iter()
        .any(|s| *s as i32 == state)
}

#[tonic::async_trait]
impl<S: CatalogStore, E: StepExecutor, C: Clock> JobService for JobApi<S, E, C> {
    async fn submit_job(
        &self,
        request: Request<SubmitJobRequest>,
    ) -> Result<Response<SubmitJobResponse>, Status> {
        let call = audit::Call::begin("JobService/SubmitJob", &request);
        let caller = request.extensions().get::<Caller>().cloned();
        let req = request.into_inner();
        let result = self.submit(caller, req.clone()).await;
        let job_id = match &result {
            Ok(r) => r.get_ref().job.as_ref().map(|j| j.id).unwrap_or(0),
            Err(_) => 0,
        };
        self.audit(call, job_id, &result).await;
        result
    }

    async fn get_job(
        &self,
        request: Request<GetJobRequest>,
    ) -> Result<Response<GetJobResponse>, Status> {
        let req = request.into_inner();
        let (job, records) = self.get(req.job_id, req.include_records).map_err(status)?;
        Ok(Response::new(GetJobResponse {
            job: Some(job),
            records,
        }))
    }

    async fn list_jobs(
        &self,
        request: Request<ListJobsRequest>,
    ) -> Result<Response<ListJobsResponse>, Status> {
        let req = request.into_inner();
        let page = req.page.unwrap_or_default();
        let after: u64 = if page.page_token.is_empty() {
            0
        } else {
            page.page_token.parse().map_err(|_| {
                status(McError::invalid(
                    "page.page_token",
                    "not a token this server issued",
                ))
            })?
        };
        let limit = match page.limit as usize {
            0 => 100,
            n if n > crate::api::cluster::MAX_PAGE => {
                return Err(status(McError::invalid(
                    "page.limit",
                    format!(
                        "{n} is more than the {} one page may hold",
                        crate::api::cluster::MAX_PAGE
                    ),
                )));
            }
            n => n,
        };
        let range = req.created.unwrap_or_default();
        let filter = JobFilter {
            states: req.states.clone(),
            types: req.types.clone(),
            rg: req.rg_id,
            store: req.store_id,
            created_from_ms: range.start_unix_ms,
            created_to_ms: range.end_unix_ms,
        };
        let store = self.runner.engine().store();
        let (jobs, more) = index::query(store, &filter, after, limit).map_err(status)?;
        let mut out = Vec::with_capacity(jobs.len());
        for job in &jobs {
            let execs = record::load_execs(store, job.id).map_err(status)?;
            out.push(self.proto(job, &execs));
        }
        let page = page_reply(more, || {
            out.last().map(|j| j.id.to_string()).unwrap_or_default()
        });
        Ok(Response::new(ListJobsResponse { jobs: out, page }))
    }

    type WatchJobStream = EventStream;

    async fn watch_job(
        &self,
        request: Request<WatchJobRequest>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        let id = request.into_inner().job_id;
        let engine = self.runner.engine().clone();
        // Subscribed before the snapshot is read, so no change falls between the two.
        let mut events = engine.subscribe();
        let (first, _) = self.get(id, false).map_err(status)?;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let watches = engine.metrics().clone();
        tokio::spawn(async move {
            watches
                .watches
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let _count = WatchGuard(watches);
            let mut last = first.clone();
            let snapshot = JobEvent {
                kind: JobEventKind::Snapshot as i32,
                at_unix_ms: first.updated_unix_ms,
                job: Some(first),
                step_seq: 0,
            };
            if tx.send(Ok(snapshot)).await.is_err() || is_final(last.state) {
                return;
            }
            loop {
                // The stream's work ends when its client goes: nothing is polled meanwhile.
                let event = tokio::select! {
                    _ = tx.closed() => return,
                    e = events.recv() => e,
                    // The term ended: the watcher learns it and watches again elsewhere.
                    _ = engine.stopped() => Err(tokio::sync::broadcast::error::RecvError::Closed),
                };
                use tokio::sync::broadcast::error::RecvError;
                match event {
                    // Its own changes, and its children's (a drain's progress).
                    Ok(e) if e.id == id || last.child_job_ids.contains(&e.id) => {}
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => {
                        let _ = tx
                            .send(Err(Status::unavailable(
                                "the MC leader changed; watch again (any MC forwards to the new one)",
                            )))
                            .await;
                        return;
                    }
                }
                let Ok(job) = engine.job(id) else { return };
                let execs = record::load_execs(engine.store(), id).unwrap_or_default();
                let (done, _) = engine.children_progress(&job);
                let mut job = convert::job(&job, &execs);
                if let Some(p) = job.progress.as_mut() {
                    p.children_done = done;
                }
                if job == last {
                    continue;
                }
                let kind = if job.state != last.state {
                    JobEventKind::StateChanged
                } else {
                    JobEventKind::StepFinished
                };
                let event = JobEvent {
                    kind: kind as i32,
                    at_unix_ms: job.updated_unix_ms,
                    step_seq: job.current_step,
                    job: Some(job.clone()),
                };
                if tx.send(Ok(event)).await.is_err() || is_final(job.state) {
                    return;
                }
                last = job;
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn pause_job(
        &self,
        request: Request<PauseJobRequest>,
    ) -> Result<Response<PauseJobResponse>, Status> {
        let call = audit::Call::begin("JobService/PauseJob", &request);
        let req = request.into_inner();
        let id = req.job_id;
        let result = async {
            self.runner.engine().pause(id).await.map_err(status)?;
            Ok(Response::new(PauseJobResponse {
                job: Some(self.get(id, false).map_err(status)?.0),
            }))
        }
        .await;
        self.audit(call, id, &result).await;
        result
    }

    async fn resume_job(
        &self,
        request: Request<ResumeJobRequest>,
    ) -> Result<Response<ResumeJobResponse>, Status> {
        let call = audit::Call::begin("JobService/ResumeJob", &request);
        let req = request.into_inner();
        let id = req.job_id;
        let result = async {
            self.runner.engine().resume(id).await.map_err(status)?;
            self.runner.drive(id);
            Ok(Response::new(ResumeJobResponse {
                job: Some(self.get(id, false).map_err(status)?.0),
            }))
        }
        .await;
        self.audit(call, id, &result).await;
        result
    }

    async fn cancel_job(
        &self,
        request: Request<CancelJobRequest>,
    ) -> Result<Response<CancelJobResponse>, Status> {
        let call = audit::Call::begin("JobService/CancelJob", &request);
        let req = request.into_inner();
        let id = req.job_id;
        let result = async {
            self.runner.engine().cancel(id).await.map_err(status)?;
            self.runner.drive(id);
            Ok(Response::new(CancelJobResponse {
                job: Some(self.get(id, false).map_err(status)?.0),
            }))
        }
        .await;
        self.audit(call, id, &result).await;
        result
    }

    async fn retry_job(
        &self,
        request: Request<RetryJobRequest>,
    ) -> Result<Response<RetryJobResponse>, Status> {
        let call = audit::Call::begin("JobService/RetryJob", &request);
        let req = request.into_inner();
        let id = req.job_id;
        let result = async {
            let view = self.cluster.view();
            self.runner
                .engine()
                .retry(id, &view)
                .await
                .map_err(status)?;
            self.runner.drive(id);
            Ok(Response::new(RetryJobResponse {
                job: Some(self.get(id, false).map_err(status)?.0),
            }))
        }
        .await;
        self.audit(call, id, &result).await;
        result
    }
}
