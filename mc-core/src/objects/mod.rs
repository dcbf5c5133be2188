//! The data-object topology as the MC keeps it: the object tree (topology crate) with each
//! object's state, RG and regions, persisted in the catalog; the DDL hooks that create, drop
//! and truncate objects and allocate their storage on demand; and the routes a SQL engine's
//! router asks for.

pub mod ddl;
pub mod limits;
pub mod plan;
mod procedure;
pub mod records;
pub mod request;

use std::collections::BTreeMap;

use topology::{ObjectTree, TreeError};

use crate::error::McError;
use crate::ids::ObjectId;
pub use records::{ObjectRecord, ObjectState};

/// The tree and the records, always changed together.
#[derive(Clone, Debug, Default)]
pub struct Objects {
    pub tree: ObjectTree,
    pub records: BTreeMap<ObjectId, ObjectRecord>,
    /// Counts changes of `records`: the schedulers' placement rules are rebuilt only after
    /// one.
    pub generation: u64,
}

impl Objects {
    /// An object named by id or by path.
    pub fn resolve(&self, target: &Target) -> Result<ObjectId, McError> {
        match target {
            Target::Id(id) => self
                .records
                .contains_key(id)
                .then_some(*id)
                .ok_or_else(|| McError::not_found("object", id)),
            Target::Path(p) => self.tree.resolve(p).map(|id| id.0).map_err(tree_error),
        }
    }

    /// The object and everything below it, the object first.
    pub fn subtree(&self, id: ObjectId) -> Vec<ObjectId> {
        let root = topology::ObjectId(id);
        let mut out = vec![id];
        out.extend(
            self.records
                .keys()
                .copied()
                .filter(|o| root.is_ancestor_of(topology::ObjectId(*o))),
        );
        out
    }
}

/// How a call names an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Id(ObjectId),
    Path(String),
}

/// The tree's refusals as the MC's typed errors.
pub fn tree_error(e: TreeError) -> McError {
    match e {
        TreeError::AlreadyExists { parent, kind, name } => McError::AlreadyExists {
            what: format!("{kind:?} `{}` in {parent}", crate::error::short(&name)),
        },
        TreeError::NotFound(id) => McError::not_found("object", id),
        TreeError::NoSuchPath(p) => McError::not_found("object", crate::error::short(&p)),
        TreeError::WrongParent { parent, child } => McError::invalid(
            "parent",
            format!("a {child:?} cannot be created under a {parent:?}"),
        ),
        TreeError::InvalidName(name) => McError::invalid(
            "name",
            format!(
                "`{}`: 1-64 characters, no '/' or control characters",
                crate::error::short(&name)
            ),
        ),
        e @ TreeError::Full(_) => McError::FailedPrecondition {
            subject: "object ids".into(),
            state: e.to_string(),
            required: "a free child number".into(),
        },
    }
}
