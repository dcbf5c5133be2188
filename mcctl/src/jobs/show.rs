//! What mcctl prints of jobs: a table, one job with its steps, its execution records, and a job followed as it runs.

use super::*;

pub(super) fn summary_table(jobs: &[Job]) {
    let mut t = Table::new(&[
        "ID", "TYPE", "STATE", "PROGRESS", "CREATED", "FINISHED", "ERROR",
    ]);
    for j in jobs {
        let p = j.progress.unwrap_or_default();
        t.row(vec![
            j.id.to_string(),
            type_name(j.r#type),
            state_name(j.state),
            format!("{}/{}", p.steps_done, p.steps_total),
            time(j.created_unix_ms),
            time(j.finished_unix_ms),
            j.last_error
                .as_ref()
                .map(|e| e.message.clone())
                .unwrap_or_default(),
        ]);
    }
    t.print();
}

pub(super) fn bar(done: u32, total: u32) -> String {
    let width = 20usize;
    let filled = (done as usize * width)
        .checked_div(total as usize)
        .unwrap_or(0);
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}

pub(super) fn final_state(j: &Job) -> bool {
    matches!(
        JobState::try_from(j.state),
        Ok(JobState::Succeeded | JobState::Failed | JobState::Cancelled)
    )
}

/// Follows the job until it ends; the stream is opened again if it breaks (a leader change).
pub(super) async fn watch(mc: &mut Mc, id: u64, out: Output) -> Result<(), CliError> {
    let mut last_line = String::new();
    loop {
        let mut stream = mc
            .call(|c| async move {
                JobServiceClient::new(c)
                    .watch_job(req(WatchJobRequest { job_id: id }))
                    .await
            })
            .await?;
        loop {
            let event = match stream.message().await {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(_) => break,
            };
            let Some(job) = event.job else { continue };
            let p = job.progress.unwrap_or_default();
            let step = job
                .steps
                .iter()
                .find(|s| s.seq == job.current_step)
                .map(|s| {
                    let state = StepState::try_from(s.state)
                        .map(|x| name(x.as_str_name(), "STEP_STATE_"))
                        .unwrap_or_default();
                    format!(
                        " step {} {}{} {state}",
                        s.seq,
                        step_name(s.kind),
                        if s.store_id != 0 {
                            format!(" (store {})", s.store_id)
                        } else {
                            String::new()
                        }
                    )
                })
                .unwrap_or_default();
            let line = format!(
                "job {id} {} {} {} {}/{}{step}",
                type_name(job.r#type),
                state_name(job.state),
                bar(p.steps_done, p.steps_total),
                p.steps_done,
                p.steps_total
            );
            if out == Output::Table && line != last_line {
                println!("{line}");
                last_line = line;
            }
            if final_state(&job) {
                if out == Output::Json {
                    print_json(&json(&job, "mc.v1.Job"))?;
                }
                return match JobState::try_from(job.state) {
                    Ok(JobState::Succeeded) => Ok(()),
                    _ => Err(CliError::Failed(format!(
                        "job {id} ended {}: {}",
                        state_name(job.state),
                        job.last_error
                            .map(|e| e.message)
                            .unwrap_or_else(|| "no error recorded".into())
                    ))),
                };
            }
        }
        // The stream ended before the job did: look again.
        let job = get(mc, id, false).await?.job.unwrap_or_default();
        if final_state(&job) {
            continue;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(super) fn show(out: Output, r: &GetJobResponse) -> Result<(), CliError> {
    if out == Output::Json {
        return print_json(&json(r, "mc.v1.GetJobResponse"));
    }
    let j = r.job.clone().unwrap_or_default();
    let p = j.progress.unwrap_or_default();
    println!(
        "job {} {} {} {}/{} steps{}",
        j.id,
        type_name(j.r#type),
        state_name(j.state),
        p.steps_done,
        p.steps_total,
        if j.child_job_ids.is_empty() {
            String::new()
        } else {
            format!(
                ", children {}/{} {:?}",
                p.children_done, p.children_total, j.child_job_ids
            )
        }
    );
    println!(
        "created {}  updated {}  finished {}",
        time(j.created_unix_ms),
        time(j.updated_unix_ms),
        time(j.finished_unix_ms)
    );
    if let Some(e) = &j.last_error {
        println!("last error: {}", e.message);
    }
    let mut t = Table::new(&[
        "SEQ",
        "STEP",
        "STORE",
        "STATE",
        "ATTEMPTS",
        "STARTED",
        "TOOK",
        "DESCRIPTION",
    ]);
    for s in &j.steps {
        let took = if s.finished_unix_ms >= s.started_unix_ms && s.started_unix_ms > 0 {
            format!("{} ms", s.finished_unix_ms - s.started_unix_ms)
        } else {
            "-".into()
        };
        t.row(vec![
            format!("{}{}", s.seq, if s.rollback { " (undo)" } else { "" }),
            step_name(s.kind),
            if s.store_id == 0 {
                "leader".into()
            } else {
                s.store_id.to_string()
            },
            StepState::try_from(s.state)
                .map(|x| name(x.as_str_name(), "STEP_STATE_"))
                .unwrap_or_default(),
            s.attempts.to_string(),
            time(s.started_unix_ms),
            took,
            s.description.clone(),
        ]);
    }
    t.print();
    if !r.records.is_empty() {
        println!();
        records_table(&r.records);
    }
    Ok(())
}

pub fn records_table(records: &[ExecutionRecord]) {
    let mut t = Table::new(&[
        "JOB",
        "SEQ",
        "ATTEMPT",
        "STEP",
        "STORE",
        "TERM",
        "DISPATCHED",
        "TOOK",
        "OUTCOME",
    ]);
    for e in records {
        let outcome = match e.outcome.as_ref().and_then(|o| o.result.as_ref()) {
            Some(step_outcome::Result::Ok(_)) => "ok".to_string(),
            Some(other) => format!("{other:?}")
                .split('(')
                .next()
                .unwrap_or_default()
                .to_lowercase(),
            None => "in flight".into(),
        };
        t.row(vec![
            e.job_id.to_string(),
            e.step_seq.to_string(),
            e.attempt.to_string(),
            step_name(e.kind),
            if e.store_id == 0 {
                "leader".into()
            } else {
                e.store_id.to_string()
            },
            e.mc_term.to_string(),
            time(e.dispatched_unix_ms),
            if e.finished_unix_ms >= e.dispatched_unix_ms && e.finished_unix_ms > 0 {
                format!("{} ms", e.finished_unix_ms - e.dispatched_unix_ms)
            } else {
                "-".into()
            },
            outcome,
        ]);
    }
    t.print();
}
