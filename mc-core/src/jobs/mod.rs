//! The job engine's definitions: job specs, their plans of atomic steps, the life-cycle
//! transition table, and one module per job type.

pub mod alloc;
pub mod checks;
pub mod children;
pub use crate::cluster::effect;
pub mod plan;
pub mod spec;
pub mod state;
pub mod types;

pub use plan::{AtomicStep, Plan, PlannedStep, Target, Verdict};
pub use spec::JobSpec;
pub use state::JobState;
pub mod deadline;
pub mod engine;
pub mod executor;
pub mod index;
pub mod limits;
pub mod locks;
pub mod metrics;
pub mod queue;
pub mod record;
pub mod runner;
