//! Users, roles and permissions. Four built-in roles (admin, operator, viewer, ddl-hook)
//! grant fixed sets of permissions; custom roles are any set of them, kept in the catalog;
//! users hold roles. Every client call needs the permission its method maps to, checked on the
//! leader for the user its certificate or bearer token proves.

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
    DdlWrite,
    RoutesRead,
    /// Rows through the stores' KvService: checked by the stores, from the list the MC sends
    /// them (see `data_access`).
    DataRead,
    DataWrite,
}

pub const ALL: [Permission; 9] = [
    Permission::JobsRead,
    Permission::JobsWrite,
    Permission::ClusterRead,
    Permission::ClusterWrite,
    Permission::UsersWrite,
    Permission::DdlWrite,
    Permission::RoutesRead,
    Permission::DataRead,
    Permission::DataWrite,
];

impl Permission {
    pub fn name(self) -> &'static str {
        match self {
            Permission::JobsRead => "jobs.read",
            Permission::JobsWrite => "jobs.write",
            Permission::ClusterRead => "cluster.read",
            Permission::ClusterWrite => "cluster.write",
            Permission::UsersWrite => "users.write",
            Permission::DdlWrite => "ddl.write",
            Permission::RoutesRead => "routes.read",
            Permission::DataRead => "data.read",
            Permission::DataWrite => "data.write",
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
            Permission::DdlWrite => P::DdlWrite,
            Permission::RoutesRead => P::RoutesRead,
            Permission::DataRead => P::DataRead,
            Permission::DataWrite => P::DataWrite,
        }
    }

    pub fn from_proto(value: i32) -> Option<Self> {
        ALL.into_iter().find(|p| p.to_proto() as i32 == value)
    }
}

/// The built-in roles and what they grant.
pub fn builtin_roles() -> Vec<(&'static str, Vec<Permission>)> {
    use Permission::*;
    vec![
        ("admin", ALL.to_vec()),
        (
            "operator",
            vec![JobsRead, JobsWrite, ClusterRead, RoutesRead],
        ),
        ("viewer", vec![JobsRead, ClusterRead, RoutesRead]),
        // What a SQL engine's DDL hook does: create and drop objects, read routes, follow
        // the jobs its DDL started.
        ("ddl-hook", vec![DdlWrite, RoutesRead, JobsRead]),
        // What a SQL engine's data path does: find routes, read and write rows on the stores.
        ("sql-engine", vec![RoutesRead, DataRead, DataWrite]),
    ]
}

/// The users whose roles grant `data.read` and `data.write`: what every store is sent, so it
/// checks its KvService callers against the catalog without asking the MC per call.
pub fn data_access(catalog: &impl CatalogStore) -> Result<proto::v1::DataAccess> {
    let builtin = builtin_roles();
    let mut custom: std::collections::HashMap<String, Vec<Permission>> = Default::default();
    let mut access = proto::v1::DataAccess::default();
    for user in list(catalog)? {
        let mut granted = Vec::new();
        for name in &user.roles {
            match builtin.iter().find(|(n, _)| n == name) {
                Some((_, p)) => granted.extend(p.iter().copied()),
                None => {
                    if !custom.contains_key(name) {
                        // A role that cannot be read grants nothing (and stops no one's
                        // heartbeat: this list goes with every store's).
                        let perms = match catalog.get(&role_key(name))? {
                            Some(v) => match serde_json::from_slice::<Role>(&v) {
                                Ok(role) => role.permissions,
                                Err(e) => {
                                    tracing::error!(role = %name, error = %e, "unreadable role");
                                    vec![]
                                }
                            },
                            None => vec![],
                        };
                        custom.insert(name.clone(), perms);
                    }
                    granted.extend(custom[name].iter().copied());
                }
            }
        }
        if granted.contains(&Permission::DataRead) {
            access.readers.push(user.name.clone());
        }
        if granted.contains(&Permission::DataWrite) {
            access.writers.push(user.name);
        }
    }
    Ok(access)
}

/// A role kept in the catalog (`role/<name>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub name: String,
    pub permissions: Vec<Permission>,
}

/// Every role: the built-in ones, then the custom ones.
pub fn roles(catalog: &impl CatalogStore) -> Result<Vec<(Role, bool)>> {
    let mut out: Vec<(Role, bool)> = builtin_roles()
        .into_iter()
        .map(|(name, permissions)| {
            (
                Role {
                    name: name.into(),
                    permissions,
                },
                true,
            )
        })
        .collect();
    for (k, v) in catalog.scan(b"role/")? {
        let role: Role = serde_json::from_slice(&v)
            .map_err(|e| McError::corrupt(String::from_utf8_lossy(&k), e))?;
        out.push((role, false));
    }
    Ok(out)
}

fn role_key(name: &str) -> Vec<u8> {
    format!("role/{name}").into_bytes()
}

pub async fn put_role(catalog: &impl CatalogStore, role: &Role) -> Result<()> {
    if !infra::names::valid_user_name(&role.name) {
        return Err(McError::invalid(
            "role.name",
            format!(
                "`{}` must be 1-64 letters, digits or ._@-",
                crate::error::short(&role.name)
            ),
        ));
    }
    if builtin_roles().iter().any(|(n, _)| *n == role.name) {
        return Err(McError::invalid(
            "role.name",
            format!("`{}` is a built-in role and cannot be changed", role.name),
        ));
    }
    if role.permissions.is_empty() {
        return Err(McError::invalid(
            "role.permissions",
            "give at least one permission",
        ));
    }
    let mut batch = WriteBatch::default();
    batch.put(
        role_key(&role.name),
        serde_json::to_vec(role).map_err(McError::internal)?,
    );
    catalog.write(batch).await
}

/// Deletes a custom role no user holds.
pub async fn delete_role(catalog: &impl CatalogStore, name: &str) -> Result<()> {
    if catalog.get(&role_key(name))?.is_none() {
        return Err(McError::not_found("role", crate::error::short(name)));
    }
    if let Some(holder) = list(catalog)?
        .into_iter()
        .find(|u| u.roles.iter().any(|r| r == name))
    {
        return Err(McError::FailedPrecondition {
            subject: format!("role/{name}"),
            state: format!("held by user {}", holder.name),
            required: "no user holding it".into(),
        });
    }
    let mut batch = WriteBatch::default();
    batch.delete(role_key(name));
    catalog.write(batch).await
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub roles: Vec<String>,
}

fn key(name: &str) -> Vec<u8> {
    format!("user/{name}").into_bytes()
}

/// Names are what certificates and tokens carry: letters, digits and `._@-`, at most 64.
pub fn validate(catalog: &impl CatalogStore, user: &User) -> Result<()> {
    if !infra::names::valid_user_name(&user.name) {
        return Err(McError::invalid(
            "user.name",
            format!(
                "`{}` must be 1-64 letters, digits or ._@-",
                crate::error::short(&user.name)
            ),
        ));
    }
    if user.roles.is_empty() {
        return Err(McError::invalid("user.roles", "give at least one role"));
    }
    if user.roles.len() > 16 {
        return Err(McError::invalid("user.roles", "at most 16 roles"));
    }
    let known: Vec<String> = roles(catalog)?.into_iter().map(|(r, _)| r.name).collect();
    if let Some(bad) = user.roles.iter().find(|r| !known.contains(r)) {
        return Err(McError::invalid(
            "user.roles",
            format!(
                "`{}` is not a role ({})",
                crate::error::short(bad),
                known.join(", ")
            ),
        ));
    }
    Ok(())
}

pub fn get(catalog: &impl CatalogStore, name: &str) -> Result<Option<User>> {
    catalog
        .get(&key(name))?
        .map(|v| {
            serde_json::from_slice(&v).map_err(|e| McError::corrupt(format!("user {name}"), e))
        })
        .transpose()
}

pub fn list(catalog: &impl CatalogStore) -> Result<Vec<User>> {
    catalog
        .scan(b"user/")?
        .into_iter()
        .map(|(k, v)| {
            serde_json::from_slice(&v).map_err(|e| McError::corrupt(String::from_utf8_lossy(&k), e))
        })
        .collect()
}

pub async fn put(catalog: &impl CatalogStore, user: &User) -> Result<()> {
    validate(catalog, user)?;
    let is_admin = |u: &User| u.roles.iter().any(|r| r == "admin");
    if !is_admin(user)
        && get(catalog, &user.name)?.is_some_and(|old| is_admin(&old))
        && list(catalog)?.iter().filter(|u| is_admin(u)).count() == 1
    {
        return Err(McError::FailedPrecondition {
            subject: format!("user/{}", user.name),
            state: "the last admin".into(),
            required: "another admin first".into(),
        });
    }
    let mut batch = WriteBatch::default();
    batch.put(
        key(&user.name),
        serde_json::to_vec(user).map_err(McError::internal)?,
    );
    catalog.write(batch).await
}

/// The write that deletes a user; the last admin cannot be deleted (nobody could manage users
/// after). Its tokens go in the same batch (`tokens::delete_user`).
pub fn delete_batch(catalog: &impl CatalogStore, name: &str) -> Result<WriteBatch> {
    let user =
        get(catalog, name)?.ok_or_else(|| McError::not_found("user", crate::error::short(name)))?;
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
    Ok(batch)
}

/// The permission each client method needs. Every method of MetaService, JobService and
/// ClusterService is listed; one that is not (a method added without its permission) is
/// refused, never let through.
pub fn permission_for(path: &str) -> Option<Permission> {
    use Permission::*;
    let (service, method) = path.trim_start_matches('/').split_once('/')?;
    Some(match (service, method) {
        ("mc.v1.JobService", "SubmitJob" | "PauseJob" | "ResumeJob" | "CancelJob" | "RetryJob") => {
            JobsWrite
        }
        ("mc.v1.JobService", "GetJob" | "ListJobs" | "WatchJob") => JobsRead,
        (
            "mc.v1.ClusterService",
            "SetUser" | "DeleteUser" | "SetRole" | "DeleteRole" | "CreateToken" | "RevokeToken"
            | "ListTokens",
        ) => UsersWrite,
        (
            "mc.v1.ClusterService",
            "SetStoreLabels"
            | "SetStoreLimit"
            | "SetStoreState"
            | "SetStoreMaintenance"
            | "PauseScheduler"
            | "ResumeScheduler"
            | "SetConfig",
        ) => ClusterWrite,
        (
            "mc.v1.ClusterService",
            "ListStores" | "GetStore" | "ListRgs" | "GetRg" | "ListRegions" | "GetRegion"
            | "ListSchedulers" | "GetConfig" | "QueryHistory" | "ListAlerts" | "GetMembers"
            | "ListUsers" | "ListRoles",
        ) => ClusterRead,
        ("mc.v1.MetaService", "GetRoutes" | "WatchRoutes" | "GetObjectTree") => RoutesRead,
        (
            "mc.v1.MetaService",
            "CreateDatabase" | "CreateTable" | "CreateIndex" | "CreatePartition" | "DropObject"
            | "TruncateObject",
        ) => DdlWrite,
        _ => return None,
    })
}

/// Refuses `principal` unless one of its roles grants `permission`.
pub fn check(catalog: &impl CatalogStore, principal: &str, permission: Permission) -> Result<()> {
    let denied = |why: String| McError::PermissionDenied {
        principal: principal.to_string(),
        permission: permission.name(),
        reason: why,
    };
    let user = get(catalog, principal)?.ok_or_else(|| denied("no such user".into()))?;
    // The user's own roles only, each by key: a call costs what its caller holds (at most 16
    // roles), not a scan of every custom role.
    let builtin = builtin_roles();
    let mut granted = false;
    for name in &user.roles {
        let perms = match builtin.iter().find(|(n, _)| n == name) {
            Some((_, p)) => p.clone(),
            None => match catalog.get(&role_key(name))? {
                Some(v) => {
                    serde_json::from_slice::<Role>(&v)
                        .map_err(|e| McError::corrupt(format!("role/{name}"), e))?
                        .permissions
                }
                None => continue,
            },
        };
        if perms.contains(&permission) {
            granted = true;
            break;
        }
    }
    if granted {
        Ok(())
    } else {
        Err(denied(format!("roles {}", user.roles.join(","))))
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
        assert!(check(&store, "alice", drain).is_ok());
        assert!(check(&store, "ops", submit).is_ok());
        assert!(check(&store, "bob", list).is_ok());
        match check(&store, "bob", submit) {
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
        assert!(check(&store, "ops", drain).is_err());
        assert!(check(&store, "mallory", list).is_err());
        // A method nobody gave a permission is no client call.
        assert_eq!(permission_for("/mc.v1.JobService/DropEverything"), None);
        assert_eq!(
            permission_for("/mc.v1.HeartbeatService/StoreHeartbeat"),
            None
        );
        // A custom role grants exactly its permissions.
        put_role(
            &store,
            &Role {
                name: "ddl-reader".into(),
                permissions: vec![Permission::RoutesRead],
            },
        )
        .await
        .unwrap();
        put(&store, &user("carol", &["ddl-reader"])).await.unwrap();
        let routes = permission_for("/mc.v1.MetaService/GetRoutes").unwrap();
        // Watching routes needs what reading them does, no more.
        assert_eq!(
            permission_for("/mc.v1.MetaService/WatchRoutes").unwrap(),
            routes
        );
        let create = permission_for("/mc.v1.MetaService/CreateTable").unwrap();
        assert!(check(&store, "carol", routes).is_ok());
        assert!(check(&store, "carol", create).is_err());
        assert!(matches!(
            delete_role(&store, "ddl-reader").await,
            Err(McError::FailedPrecondition { .. })
        ));
        assert!(matches!(
            put_role(
                &store,
                &Role {
                    name: "admin".into(),
                    permissions: vec![Permission::RoutesRead],
                }
            )
            .await,
            Err(McError::InvalidArgument { .. })
        ));
    }

    #[test]
    fn every_client_method_of_the_proto_has_a_permission() {
        let files = [
            include_str!("../../../proto/proto/mc/v1/job.proto"),
            include_str!("../../../proto/proto/mc/v1/cluster.proto"),
            include_str!("../../../proto/proto/mc/v1/meta.proto"),
        ];
        let mut checked = 0;
        for text in files {
            let service = text
                .lines()
                .find_map(|l| l.strip_prefix("service ")?.split_whitespace().next())
                .unwrap();
            for line in text.lines().map(str::trim) {
                if let Some(rest) = line.strip_prefix("rpc ") {
                    let method = rest.split('(').next().unwrap().trim();
                    let path = format!("/mc.v1.{service}/{method}");
                    assert!(permission_for(&path).is_some(), "{path} has no permission");
                    checked += 1;
                }
            }
        }
        assert!(checked > 40, "{checked}");
    }

    #[tokio::test]
    async fn bad_users_are_refused_naming_the_field_and_the_last_admin_stays() {
        let store = MemoryStore::default();
        let err = put(&store, &user("a b", &["admin"])).await.unwrap_err();
        assert!(matches!(err, McError::InvalidArgument { ref field, .. } if field == "user.name"));
        let err = put(&store, &user("carol", &["root"])).await.unwrap_err();
        assert!(err.to_string().contains("`root` is not a role"), "{err}");
        let long = "x".repeat(1 << 20);
        let err = put(&store, &user(&long, &["admin"])).await.unwrap_err();
        assert!(
            err.to_string().len() < 300,
            "the error echoes a short prefix"
        );
        assert!(list(&store).unwrap().is_empty(), "nothing written");
        put(&store, &user("alice", &["admin"])).await.unwrap();
        assert!(matches!(
            super::super::tokens::delete_user(&store, "alice").await,
            Err(McError::FailedPrecondition { .. })
        ));
        put(&store, &user("dave", &["admin", "viewer"]))
            .await
            .unwrap();
        super::super::tokens::delete_user(&store, "alice")
            .await
            .unwrap();
        assert!(matches!(
            super::super::tokens::delete_user(&store, "alice").await,
            Err(McError::NotFound { .. })
        ));
    }
}
