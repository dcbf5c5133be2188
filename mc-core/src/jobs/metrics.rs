//! What the job engine counts for Prometheus: jobs by type and state (a gauge kept in step with
//! every committed transition, seeded from the catalog when a term begins) and step latency
//! by step kind (dispatch to outcome, every attempt).

use std::collections::HashMap;
use std::sync::Mutex;

use infra::prometheus::{Histogram, LATENCY_BOUNDS, Text};

use crate::jobs::JobState;
use crate::jobs::record::JobRecord;

#[derive(Default)]
pub struct EngineMetrics {
    jobs: Mutex<HashMap<(&'static str, JobState), i64>>,
    steps: Mutex<HashMap<String, std::sync::Arc<Histogram>>>,
    /// WatchJob streams open now.
    pub watches: std::sync::atomic::AtomicI64,
}

impl EngineMetrics {
    /// Counts every job of the catalog once.
    pub fn seed<'a>(&self, jobs: impl IntoIterator<Item = &'a JobRecord>) {
        let mut counts = self.jobs.lock().expect("job counts");
        counts.clear();
        for j in jobs {
            *counts.entry((j.spec.type_name(), j.state)).or_default() += 1;
        }
    }

    /// A committed write moved `job` from `old` (None: new) to its current state.
    pub fn transition(&self, job: &JobRecord, old: Option<JobState>) {
        if old == Some(job.state) {
            return;
        }
        let mut counts = self.jobs.lock().expect("job counts");
        let name = job.spec.type_name();
        if let Some(o) = old {
            *counts.entry((name, o)).or_default() -= 1;
        }
        *counts.entry((name, job.state)).or_default() += 1;
    }

    pub fn step_finished(&self, kind: &str, seconds: f64) {
        let h = self
            .steps
            .lock()
            .expect("step histograms")
            .entry(kind.to_string())
            .or_insert_with(|| std::sync::Arc::new(Histogram::new(LATENCY_BOUNDS)))
            .clone();
        h.observe(seconds);
    }

    pub fn render(&self, t: &mut Text) {
        t.family("mc_job_watches", "gauge", "WatchJob streams open now.")
            .sample(
                "mc_job_watches",
                &[],
                self.watches.load(std::sync::atomic::Ordering::Relaxed) as f64,
            );
        t.family("mc_jobs", "gauge", "Jobs in the catalog by type and state.");
        let mut counts: Vec<_> = self
            .jobs
            .lock()
            .expect("job counts")
            .iter()
            .map(|((ty, st), n)| (ty.to_string(), st.name().to_string(), *n))
            .collect();
        counts.sort();
        for (ty, st, n) in counts {
            t.sample("mc_jobs", &[("type", ty), ("state", st)], n as f64);
        }
        t.family(
            "mc_step_duration_seconds",
            "histogram",
            "Atomic steps from dispatch to outcome, by step kind (every attempt).",
        );
        let mut steps: Vec<_> = self
            .steps
            .lock()
            .expect("step histograms")
            .iter()
            .map(|(k, h)| (k.clone(), h.clone()))
            .collect();
        steps.sort_by(|a, b| a.0.cmp(&b.0));
        for (kind, h) in steps {
            t.histogram("mc_step_duration_seconds", &[("step", kind)], &h);
        }
    }
}
