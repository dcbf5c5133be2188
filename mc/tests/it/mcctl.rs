//! The `mcctl` binary against a real `mc serve` and four real store nodes: a watched migration
//! exits 0 with its progress at the end, a refused one exits 3 with the typed reason (a lock
//! conflict names the holder's type, state and step), JSON output parses with the proto field
//! names, and `history` shows the job's execution records.

use crate::common;

use std::process::Command;

use common::*;
use proto::v1::*;

fn mcctl(mc: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(mcctl_exe())
        .args(["--endpoint", mc])
        .args(
            store_node::security::pki::TestPki::shared()
                .flags(&store_node::security::Identity::User("admin".into())),
        )
        .args(args)
        .output()
        .expect("mcctl runs");
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mcctl_drives_and_explains_jobs_on_a_real_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let mc_addr = free_addr();
    let _mc = start_mc(1, &mc_addr, &dir.path().join("mc"), &[]);
    jobs(&mc_addr).await;
    let mut stores = Vec::new();
    for id in 1..=4 {
        stores.push(start_store(id, dir.path(), std::slice::from_ref(&mc_addr)).await);
    }
    create_rg_and_region(&mc_addr).await;
    let mc = mc_addr.clone();
    let run = move |args: Vec<&'static str>| {
        let mc = mc.clone();
        async move {
            tokio::task::spawn_blocking(move || mcctl(&mc, &args))
                .await
                .unwrap()
        }
    };

    // JSON output with the proto's field names.
    let (code, out, err) = run(vec!["--output", "json", "store", "list"]).await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let stores_json = v["stores"].as_array().unwrap();
    assert_eq!(stores_json.len(), 4);
    assert!(stores_json.iter().all(|s| s["state"] == "STORE_STATE_UP"));
    assert_eq!(stores_json[0]["id"], 1);
    assert!(
        stores_json[0]["address"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );

    // A watched migration: exit 0, and the last progress line is complete.
    let (code, out, err) = run(vec![
        "job", "migrate", "--rg", "1", "--from", "1", "--to", "4", "--watch",
    ])
    .await;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let last = out
        .lines()
        .rev()
        .find(|l| l.contains("MigrateReplica"))
        .unwrap();
    assert!(last.contains("succeeded"), "{out}");
    let progress = last
        .split_whitespace()
        .find(|w| w.contains('/') && w.chars().next().unwrap().is_ascii_digit())
        .unwrap();
    let (done, total) = progress.split_once('/').unwrap();
    assert_eq!(done, total, "{last}");
    // The five replica steps, with Add as two atomic steps (AddLearner, then Promote once
    // caught up), so a crash between them resumes at the promotion.
    assert_eq!(total, "6", "MigrateReplica's steps: {out}");
    let job_id: u64 = out
        .lines()
        .find_map(|l| {
            l.strip_prefix("job ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap();

    // History shows the job's execution records, one per step.
    let subject = format!("job/{job_id}");
    let (code, out, err) = tokio::task::spawn_blocking({
        let (mc, subject) = (mc_addr.clone(), subject.clone());
        move || mcctl(&mc, &["--output", "json", "history", "--subject", &subject])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let entries = v["entries"].as_array().unwrap();
    assert!(entries.len() >= 5, "{out}");
    assert!(entries.iter().all(|e| e["execution"]["job_id"] == job_id));
    let (code, table, _) = tokio::task::spawn_blocking({
        let mc = mc_addr.clone();
        move || mcctl(&mc, &["history", "--subject", &subject])
    })
    .await
    .unwrap();
    assert_eq!(code, 0);
    assert!(table.lines().next().unwrap().starts_with("JOB"), "{table}");
    assert!(
        table.contains("AddLearner") && table.contains("Destroy"),
        "{table}"
    );

    // Refused: store 4 already holds RG 1. Exit 3, the typed reason on stderr.
    let (code, _, err) = run(vec![
        "job", "migrate", "--rg", "1", "--from", "2", "--to", "4",
    ])
    .await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("store 4"), "{err}");

    // A lock conflict names the holder: a migration throttled to a step a minute holds RG 1.
    let (code, _, err) = run(vec!["store", "limit", "1", "--steps-per-minute", "1"]).await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(vec![
        "--output", "json", "job", "migrate", "--rg", "1", "--from", "2", "--to", "1",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let holder: serde_json::Value = serde_json::from_str(&out).unwrap();
    let holder = holder["id"].as_u64().unwrap();
    let (code, _, err) = run(vec!["job", "transfer-leader", "--rg", "1", "--to", "4"]).await;
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains(&format!("RG 1 is locked by job {holder} (MigrateReplica, ")),
        "{err}"
    );
    assert!(err.contains(" step "), "the holder's step is named: {err}");
    // Cancel it; `job show` tells the story.
    let (code, _, err) = tokio::task::spawn_blocking({
        let mc = mc_addr.clone();
        move || mcctl(&mc, &["job", "cancel", &holder.to_string()])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    let done = wait_job(&mc_addr, holder, |j| {
        j.state == JobState::Cancelled as i32 || j.state == JobState::Failed as i32
    })
    .await;
    let (code, out, _) = tokio::task::spawn_blocking({
        let mc = mc_addr.clone();
        move || mcctl(&mc, &["job", "show", &holder.to_string()])
    })
    .await
    .unwrap();
    assert_eq!(code, 0);
    assert!(
        out.contains("MigrateReplica") && out.contains("SEQ"),
        "{out}"
    );
    assert!(done.state == JobState::Cancelled as i32, "{done:?}");

    // Watching a job that did not succeed exits 1.
    let (code, _, err) = tokio::task::spawn_blocking({
        let mc = mc_addr.clone();
        move || mcctl(&mc, &["job", "watch", &holder.to_string()])
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cancelled"), "{err}");

    // Schedulers and config in JSON.
    let (code, out, _) = run(vec!["--output", "json", "scheduler", "list"]).await;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["schedulers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "replica-checker")
    );
    let (code, _, err) = run(vec!["config", "set", "jobs.max-running=nope"]).await;
    assert_eq!(code, 3);
    assert!(err.contains("jobs.max-running"), "{err}");
    // No MC at the endpoint: exit 4.
    let (code, _, _) = tokio::task::spawn_blocking(|| mcctl("127.0.0.1:1", &["store", "list"]))
        .await
        .unwrap();
    assert_eq!(code, 4);
}
