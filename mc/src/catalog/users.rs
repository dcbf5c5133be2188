//! Users and roles. Three built-in roles — admin, operator, viewer — grant fixed sets of
//! permissions; users hold roles. With `--enforce-permissions` every client call needs the
//! permission its method maps to, for the principal the call names.

use serde::{Deserialize, Serialize};

use super::{CatalogStore, WriteBatch};
use crate::error::{McError, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    JobsRead,
    JobsWrite,
    ClusterRead,
    ClusterWrite,
    UsersWrite,
}

impl Permission {
    pub fn name(self) -> &'static str {
        match self {
            Permission::JobsRead => "jobs.read",
            Permission::JobsWrite => "jobs.write",
            Permission::ClusterRead => "cluster.read",
            Permission::ClusterWrite => "cluster.write",
            Permission::UsersWrite => "users.write",
        }
    }

    pub fn to_proto(self) -> proto::v1::Permission {
        use proto::v1::Permission as P;
        match self {
            Permission::JobsRead => P::JobsRead,
            Permission::JobsWrite => P::JobsWrite,
            Permission::ClusterRead => P::ClusterRead,
            Permission::ClusterWrite => P::ClusterWrite,
            Permission::UsersWrite => P::UsersWrite,
        }
    }
}

/// The built-in roles and what they grant.
pub fn roles() -> Vec<(&'static str, Vec<Permission>)> {
    use Permission::*;
    vec![
        (
            "admin",
            vec![JobsRead, JobsWrite, ClusterRead, ClusterWrite, UsersWrite],
        ),
        ("operator", vec![JobsRead, JobsWrite, ClusterRead]),
        ("viewer", vec![JobsRead, ClusterRead]),
    ]
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub roles: Vec<String>,
}

fn key(name: &str) -> Vec<u8> {
    format!("user/{name}").into_bytes()
}

/// Names are what `x-mc-principal` carries: letters, digits and `._@-`, at most 64.
pub fn validate(user: &User) -> Result<()> {
    let ok = !user.name.is_empty()
        && user.name.len() <= 64
        && user
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
    if !ok {
        return Err(McError::invalid(
            "user.name",
            format!("`{}` must be 1-64 letters, digits or ._@-", user.name),
        ));
    }
    if user.roles.is_empty() {
        return Err(McError::invalid("user.roles", "give at least one role"));
    }
    let known: Vec<&str> = roles().iter().map(|(n, _)| *n).collect();
    if let Some(bad) = user.roles.iter().find(|r| !known.contains(&r.as_str())) {
        return Err(McError::invalid(
            "user.roles",
            format!("`{bad}` is not a role (admin, operator, viewer)"),
        ));
    }
    Ok(())
}

pub fn get(catalog: &impl CatalogStore, name: &str) -> Result<Option<User>> {
    catalog
        .get(&key(name))?
        .map(|v| {
            serde_json::from_slice(&v).map_err(|e| McError::Catalog(format!("user {name}: {e}")))
        })
        .transpose()
}

pub fn list(catalog: &impl CatalogStore) -> Result<Vec<User>> {
    catalog
        .scan(b"user/")?
        .into_iter()
        .map(|(k, v)| {
            serde_json::from_slice(&v)
                .map_err(|e| McError::Catalog(format!("{}: {e}", String::from_utf8_lossy(&k))))
        })
        .collect()
}

pub async fn put(catalog: &impl CatalogStore, user: &User) -> Result<()> {
    validate(user)?;
    let mut batch = WriteBatch::default();
    batch.put(
        key(&user.name),
        serde_json::to_vec(user).map_err(|e| McError::Catalog(e.to_string()))?,
    );
    catalog.write(batch).await
}

/// Deletes a user; the last admin cannot be deleted (nobody could manage users after).
pub async fn delete(catalog: &impl CatalogStore, name: &str) -> Result<()> {
    let user = get(catalog, name)?.ok_or_else(|| McError::not_found("user", name))?;
    let is_admin = |u: &User| u.roles.iter().any(|r| r == "admin");
    if is_admin(&user) && list(catalog)?.iter().filter(|u| is_admin(u)).count() == 1 {
        return Err(McError::FailedPrecondition {
            subject: format!("user/{name}"),
            state: "the last admin".into(),
            required: "another admin first".into(),
        });
    }
    let mut batch = WriteBatch::default();
    batch.delete(key(name));
    catalog.write(batch).await
}

/// The permission a client method needs; `None` for calls that are not a user's (store
/// heartbeats, Raft traffic between MCs).
pub fn permission_for(path: &str) -> Option<Permission> {
    let (service, method) = path.trim_start_matches('/').split_once('/')?;
    let writes = |names: &[&str]| names.contains(&method);
    match service {
        "mc.v1.JobService"
            if writes(&[
                "SubmitJob",
                "PauseJob",
                "ResumeJob",
                "CancelJob",
                "RetryJob",
            ]) =>
        {
            Some(Permission::JobsWrite)
        }
        "mc.v1.JobService" => Some(Permission::JobsRead),
        "mc.v1.ClusterService" if writes(&["SetUser", "DeleteUser"]) => {
            Some(Permission::UsersWrite)
        }
        "mc.v1.ClusterService"
            if writes(&[
                "SetStoreLabels",
                "SetStoreLimit",
                "SetStoreState",
                "PauseScheduler",
                "ResumeScheduler",
                "SetConfig",
            ]) =>
        {
            Some(Permission::ClusterWrite)
        }
        "mc.v1.ClusterService" => Some(Permission::ClusterRead),
        "mc.v1.MetaService" if writes(&["GetRoutes", "GetObjectTree"]) => {
            Some(Permission::ClusterRead)
        }
        "mc.v1.MetaService" => Some(Permission::ClusterWrite),
        _ => None,
    }
}

/// Refuses `principal` unless one of its roles grants `permission`.
pub fn check(
    catalog: &impl CatalogStore,
    principal: Option<&str>,
    permission: Permission,
) -> Result<()> {
    let denied = |who: &str, why: String| McError::PermissionDenied {
        principal: who.to_string(),
        permission: permission.name(),
        reason: why,
    };
    let Some(name) = principal else {
        return Err(denied(
            "(none)",
            "the call names no principal (x-mc-principal)".into(),
        ));
    };
    let user = get(catalog, name)?.ok_or_else(|| denied(name, "no such user".into()))?;
    let granted = roles()
        .into_iter()
        .filter(|(r, _)| user.roles.iter().any(|u| u == r))
        .any(|(_, perms)| perms.contains(&permission));
    if granted {
        Ok(())
    } else {
        Err(denied(name, format!("roles {}", user.roles.join(","))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::memory::MemoryStore;

    fn user(name: &str, roles: &[&str]) -> User {
        User {
            name: name.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[tokio::test]
    async fn roles_grant_what_they_say_and_nothing_else() {
        let store = MemoryStore::default();
        put(&store, &user("alice", &["admin"])).await.unwrap();
        put(&store, &user("bob", &["viewer"])).await.unwrap();
        put(&store, &user("ops", &["operator"])).await.unwrap();
        let submit = permission_for("/mc.v1.JobService/SubmitJob").unwrap();
        let list = permission_for("/mc.v1.JobService/ListJobs").unwrap();
        let drain = permission_for("/mc.v1.ClusterService/SetStoreState").unwrap();
        assert!(check(&store, Some("alice"), drain).is_ok());
        assert!(check(&store, Some("ops"), submit).is_ok());
        assert!(check(&store, Some("bob"), list).is_ok());
        match check(&store, Some("bob"), submit) {
            Err(McError::PermissionDenied {
                principal,
                permission,
                reason,
            }) => {
                assert_eq!((principal.as_str(), permission), ("bob", "jobs.write"));
                assert_eq!(reason, "roles viewer");
            }
            other => panic!("{other:?}"),
        }
        assert!(check(&store, Some("ops"), drain).is_err());
        assert!(check(&store, Some("mallory"), list).is_err());
        assert!(check(&store, None, list).is_err());
        assert_eq!(
            permission_for("/mc.v1.HeartbeatService/StoreHeartbeat"),
            None
        );
        assert_eq!(permission_for("/mc.v1.RaftService/Vote"), None);
    }

    #[tokio::test]
    async fn bad_users_are_refused_naming_the_field_and_the_last_admin_stays() {
        let store = MemoryStore::default();
        let err = put(&store, &user("a b", &["admin"])).await.unwrap_err();
        assert!(matches!(err, McError::InvalidArgument { ref field, .. } if field == "user.name"));
        let err = put(&store, &user("carol", &["root"])).await.unwrap_err();
        assert!(err.to_string().contains("`root` is not a role"), "{err}");
        assert!(list(&store).unwrap().is_empty(), "nothing written");
        put(&store, &user("alice", &["admin"])).await.unwrap();
        assert!(matches!(
            delete(&store, "alice").await,
            Err(McError::FailedPrecondition { .. })
        ));
        put(&store, &user("dave", &["admin", "viewer"]))
            .await
            .unwrap();
        delete(&store, "alice").await.unwrap();
        assert!(matches!(
            delete(&store, "alice").await,
            Err(McError::NotFound { .. })
        ));
    }
}
