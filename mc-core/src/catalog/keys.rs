//! Every key space of the catalog, in one place: what lives under each prefix and which module
//! writes it. A write of a key that belongs to no space here is refused by every catalog store
//! (a new table must be registered first), and no prefix here is a prefix of another, so a scan
//! of one table never reads another's keys.

use crate::error::{McError, Result};

/// One table of the catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySpace {
    pub prefix: &'static str,
    /// What it holds, and who writes it.
    pub holds: &'static str,
}

/// The catalog's key spaces.
pub const SPACES: &[KeySpace] = &[
    KeySpace {
        prefix: "cluster/",
        holds: "the cluster's id (catalog::cluster_id)",
    },
    KeySpace {
        prefix: "meta/",
        holds: "schema version, id allocators, limits and scheduler config (catalog::schema, jobs::alloc, jobs::engine, schedule::config, the API's limits)",
    },
    KeySpace {
        prefix: "user/",
        holds: "users and their roles (catalog::users)",
    },
    KeySpace {
        prefix: "role/",
        holds: "custom roles (catalog::users)",
    },
    KeySpace {
        prefix: "token/",
        holds: "API tokens, by id (catalog::tokens)",
    },
    KeySpace {
        prefix: "job/",
        holds: "job records, by id (jobs::record)",
    },
    KeySpace {
        prefix: "exec/",
        holds: "execution records, by job, step and attempt (jobs::record)",
    },
    KeySpace {
        prefix: "jidx/",
        holds: "job indexes by state, type, RG, store and creation time (jobs::index)",
    },
    KeySpace {
        prefix: "req/",
        holds: "submissions' request ids, for idempotent retries (jobs::engine)",
    },
    KeySpace {
        prefix: "rg/",
        holds: "RG shapes: members, leader, regions (cluster::rgs)",
    },
    KeySpace {
        prefix: "rg-retired/",
        holds: "RGs merged away or deleted, never to come back (cluster::rgs)",
    },
    KeySpace {
        prefix: "store/",
        holds: "store records (cluster::stores)",
    },
    KeySpace {
        prefix: "store-labels/",
        holds: "labels an SRE set on a store, by store (cluster::stores)",
    },
    KeySpace {
        prefix: "maint/",
        holds: "maintenance windows, by store (cluster::stores)",
    },
    KeySpace {
        prefix: "obj/",
        holds: "data objects: databases, tables, indexes, partitions (objects::records)",
    },
    KeySpace {
        prefix: "obj-hw/",
        holds: "high-water marks of child numbers, by parent object (objects::records)",
    },
    KeySpace {
        prefix: "ddl/",
        holds: "DDL requests, by request id (objects::records)",
    },
    KeySpace {
        prefix: "sched/",
        holds: "the scheduling log (history)",
    },
    KeySpace {
        prefix: "errq/",
        holds: "the error queue (history)",
    },
    KeySpace {
        prefix: "audit/",
        holds: "the audit log (history)",
    },
    KeySpace {
        prefix: "alert/",
        holds: "alerts, by subject (history)",
    },
    KeySpace {
        prefix: "bench/",
        holds: "what benchmarks of the catalog itself write (benches/catalog_commits.rs); no MC reads it",
    },
];

/// The space `key` belongs to.
pub fn space_of(key: &[u8]) -> Option<&'static KeySpace> {
    SPACES.iter().find(|s| key.starts_with(s.prefix.as_bytes()))
}

/// Refuses a write of a key outside every registered space: a bug in the MC, not bad input.
pub fn check_write<'a>(keys: impl IntoIterator<Item = &'a [u8]>) -> Result<()> {
    for key in keys {
        if space_of(key).is_none() {
            return Err(McError::internal(format!(
                "catalog key `{}` belongs to no registered key space",
                String::from_utf8_lossy(&key[..key.len().min(64)])
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_space_holds_another() {
        for a in SPACES {
            assert!(a.prefix.ends_with('/'), "{a:?}");
            for b in SPACES {
                if a != b {
                    assert!(!b.prefix.starts_with(a.prefix), "{a:?} holds {b:?}");
                }
            }
        }
    }

    #[test]
    fn a_key_outside_every_space_is_refused_naming_it() {
        assert!(check_write([&b"job/0000000000000001"[..], b"meta/limits"]).is_ok());
        let err = check_write([&b"job/1"[..], b"jobs/1"]).unwrap_err();
        assert!(err.to_string().contains("`jobs/1`"), "{err}");
    }
}
