//! Drives jobs in the background: each submitted, resumed or recovered job gets one task that
//! runs it until it stops; a job is never driven by two tasks at once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::catalog::CatalogStore;
use crate::clock::Clock;
use crate::ids::JobId;
use crate::jobs::engine::Engine;
use crate::jobs::executor::StepExecutor;

pub struct JobRunner<S, E, C> {
    engine: Arc<Engine<S, E, C>>,
    running: Arc<Mutex<HashSet<JobId>>>,
}

impl<S: CatalogStore, E: StepExecutor, C: Clock> JobRunner<S, E, C> {
    pub fn new(engine: Arc<Engine<S, E, C>>) -> Arc<Self> {
        Arc::new(Self {
            engine,
            running: Arc::default(),
        })
    }

    pub fn engine(&self) -> &Arc<Engine<S, E, C>> {
        &self.engine
    }

    pub fn drive(&self, id: JobId) {
        if !self.running.lock().expect("runner lock").insert(id) {
            return;
        }
        let (engine, running) = (self.engine.clone(), self.running.clone());
        tokio::spawn(async move {
            match engine.run(id).await {
                Ok(progress) => tracing::info!(job = id, ?progress, "job stopped"),
                Err(e) => tracing::error!(job = id, error = %e, "job driver failed"),
            }
            running.lock().expect("runner lock").remove(&id);
        });
    }
}
