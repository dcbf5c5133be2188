//! Pure model of MC's data-object topology: the object tree (database > table > index or
//! partition), hierarchical ids and their key-range prefixes, affinity groups, failure
//! domains from store labels, and placement scoring.
//!
//! It must never do I/O, read a clock or draw unseeded randomness: the MC, the simulator and
//! property tests all call it and must get the same answer for the same input.

pub mod ids;
pub mod keys;
pub mod placement;
pub mod tree;

pub use ids::ObjectId;
pub use placement::{StoreLoc, Violation};
pub use tree::{Kind, Object, ObjectTree, TreeError};
