//! Drives jobs in the background: each submitted, resumed or recovered job gets one task that
//! runs it until it stops; a job is never driven by two tasks at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::task::AbortHandle;

use crate::catalog::CatalogStore;
use crate::clock::Clock;
use crate::ids::JobId;
use crate::jobs::engine::Engine;
use crate::jobs::executor::StepExecutor;

pub struct JobRunner<S, E, C> {
    engine: Arc<Engine<S, E, C>>,
    /// `None` once stopped: the MC stepped down and drives nothing any more.
    running: Arc<Mutex<Option<HashMap<JobId, AbortHandle>>>>,
}

impl<S: CatalogStore, E: StepExecutor, C: Clock> JobRunner<S, E, C> {
    /// Also drives the jobs that parents (DrainStore) spawn.
    pub fn new(engine: Arc<Engine<S, E, C>>) -> Arc<Self> {
        Arc::new_cyclic(|me: &std::sync::Weak<Self>| {
            let me = me.clone();
            engine.set_spawner(Arc::new(move |id| {
                if let Some(runner) = me.upgrade() {
                    runner.drive(id);
                }
            }));
            Self {
                engine: engine.clone(),
                running: Arc::new(Mutex::new(Some(HashMap::new()))),
            }
        })
    }

    pub fn engine(&self) -> &Arc<Engine<S, E, C>> {
        &self.engine
    }

    pub fn drive(&self, id: JobId) {
        let mut running = self.running.lock().expect("runner lock");
        let Some(tasks) = running.as_mut() else {
            return;
        };
        if tasks.contains_key(&id) {
            return;
        }
        let (engine, registry) = (self.engine.clone(), self.running.clone());
        let task = tokio::spawn(async move {
            match engine.run(id).await {
                Ok(progress) => tracing::info!(job = id, ?progress, "job stopped"),
                Err(e) => tracing::warn!(job = id, error = %e, "job driver stopped"),
            }
            if let Some(tasks) = registry.lock().expect("runner lock").as_mut() {
                tasks.remove(&id);
            }
        });
        tasks.insert(id, task.abort_handle());
    }

    /// Whether `stop` was called: the term ended.
    pub fn is_stopped(&self) -> bool {
        self.running.lock().expect("runner lock").is_none()
    }

    /// Stops driving every job, at once. Safe at any point: each step was persisted as
    /// dispatched before it was sent, and whoever leads next re-sends it under a newer term.
    pub fn stop(&self) {
        if let Some(tasks) = self.running.lock().expect("runner lock").take() {
            for task in tasks.values() {
                task.abort();
            }
        }
        self.engine.stop();
    }
}
