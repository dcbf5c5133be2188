//! Who may read and write rows here. Users' roles live in the MC's catalog; the MC sends the
//! store the users whose roles grant `data.read` and `data.write` with every registration and
//! store heartbeat reply, and the store checks each KvService call against the last list it
//! was sent (kept across restarts, so a store whose MC is away still serves the users it knew
//! and still refuses the ones it was told to). A certificate the cluster CA signed proves who
//! a caller is, not what it may do: a viewer's or an unknown user's certificate reads nothing.

use std::collections::BTreeSet;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use crate::engine::{Engine, keys};
use crate::error::Result;
use rocksdb::WriteBatch;

/// What a KvService method needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataPermission {
    Read,
    Write,
}

impl DataPermission {
    pub fn name(self) -> &'static str {
        match self {
            DataPermission::Read => "data.read",
            DataPermission::Write => "data.write",
        }
    }

    /// The permission a KvService method (its last path segment) needs; None for a method
    /// this store does not know (refused).
    pub fn of_method(method: &str) -> Option<Self> {
        match method {
            "Get" | "Scan" => Some(DataPermission::Read),
            "Put" | "Delete" | "BatchWrite" => Some(DataPermission::Write),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Grants {
    readers: BTreeSet<String>,
    writers: BTreeSet<String>,
}

impl Grants {
    fn of(access: &proto::v1::DataAccess) -> Self {
        Self {
            readers: access.readers.iter().cloned().collect(),
            writers: access.writers.iter().cloned().collect(),
        }
    }
}

/// The last list the MC sent; None until one came.
#[derive(Debug, Default)]
pub struct DataAccessList {
    grants: RwLock<Option<Grants>>,
}

/// Why a user's call is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No MC has told this store yet who may read and write (retry later).
    NotLearned,
    /// The user's roles grant no such permission.
    NotGranted,
}

impl DataAccessList {
    /// The list the store kept from its last MC.
    pub fn load(engine: &Engine) -> Result<Self> {
        let grants: Option<Grants> = engine.get_meta(keys::STORE_DATA_ACCESS)?;
        Ok(Self {
            grants: RwLock::new(grants),
        })
    }

    /// Takes the MC's list: in force at once, then persisted and synced when it changed (a
    /// revocation must survive a crash, or a store restarted while its MC is away would
    /// honour a revoked user again). A failed write is logged, not fatal: the list is in
    /// force, and the next heartbeat reply brings it again.
    pub fn set(&self, engine: &Engine, access: &proto::v1::DataAccess) {
        let new = Grants::of(access);
        if self.grants.read().expect("access lock").as_ref() == Some(&new) {
            return;
        }
        tracing::info!(
            readers = new.readers.len(),
            writers = new.writers.len(),
            "data access list from the MC"
        );
        *self.grants.write().expect("access lock") = Some(new.clone());
        let persisted: Result<()> = (|| {
            let mut batch = WriteBatch::default();
            engine.put_meta(&mut batch, keys::STORE_DATA_ACCESS, &new)?;
            engine.write(batch, true)
        })();
        if let Err(e) = persisted {
            tracing::warn!(error = %e, "could not persist the data access list");
        }
    }

    /// Users to grant read and write until an MC sends its list (`--bootstrap-data-users`):
    /// for a store run without an MC, as tests and benchmarks do. A list an MC sent, now or
    /// before a restart, wins.
    pub fn bootstrap(&self, users: &[String]) {
        let mut grants = self.grants.write().expect("access lock");
        if grants.is_none() && !users.is_empty() {
            let all: BTreeSet<String> = users.iter().cloned().collect();
            *grants = Some(Grants {
                readers: all.clone(),
                writers: all,
            });
        }
    }

    pub fn check(
        &self,
        user: &str,
        permission: DataPermission,
    ) -> std::result::Result<(), Refusal> {
        let grants = self.grants.read().expect("access lock");
        let Some(grants) = grants.as_ref() else {
            return Err(Refusal::NotLearned);
        };
        let granted = match permission {
            DataPermission::Read => grants.readers.contains(user),
            DataPermission::Write => grants.writers.contains(user),
        };
        if granted {
            Ok(())
        } else {
            Err(Refusal::NotGranted)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_map_to_permissions_and_unknown_ones_to_none() {
        assert_eq!(DataPermission::of_method("Get"), Some(DataPermission::Read));
        assert_eq!(
            DataPermission::of_method("Scan"),
            Some(DataPermission::Read)
        );
        for m in ["Put", "Delete", "BatchWrite"] {
            assert_eq!(DataPermission::of_method(m), Some(DataPermission::Write));
        }
        assert_eq!(DataPermission::of_method("DropEverything"), None);
    }

    #[test]
    fn a_list_grants_what_it_names_and_nothing_before_one_came() {
        let list = DataAccessList::default();
        assert_eq!(
            list.check("app", DataPermission::Read),
            Err(Refusal::NotLearned)
        );
        *list.grants.write().unwrap() = Some(Grants::of(&proto::v1::DataAccess {
            readers: vec!["app".into(), "report".into()],
            writers: vec!["app".into()],
        }));
        assert_eq!(list.check("app", DataPermission::Write), Ok(()));
        assert_eq!(list.check("report", DataPermission::Read), Ok(()));
        assert_eq!(
            list.check("report", DataPermission::Write),
            Err(Refusal::NotGranted)
        );
        assert_eq!(
            list.check("viewer", DataPermission::Read),
            Err(Refusal::NotGranted)
        );
    }
}
