//! Faults at exact step boundaries against real processes (see `matrix`), with the harness
//! that injects them and the linearizability checker that judges the writes made meanwhile.

pub mod harness;
pub mod linearizable;
mod matrix;
pub mod shape;
