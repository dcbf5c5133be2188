//! The bodies of ClusterService's role and token calls (the service in `cluster.rs` audits
//! them).

use proto::v1::*;
use tonic::{Response, Status};

use crate::api::errors::status;
use crate::catalog::users::{self, Permission};
use crate::catalog::{CatalogStore, tokens};
use crate::clock::{Clock, SystemClock};
use crate::error::McError;

pub async fn set_role(
    catalog: &impl CatalogStore,
    role: Role,
) -> Result<Response<SetRoleResponse>, Status> {
    let mut permissions = Vec::new();
    for p in &role.permissions {
        let p = Permission::from_proto(*p).ok_or_else(|| {
            status(McError::invalid(
                "role.permissions",
                format!("{p} is not a permission"),
            ))
        })?;
        if !permissions.contains(&p) {
            permissions.push(p);
        }
    }
    let record = users::Role {
        name: role.name.clone(),
        permissions,
    };
    users::put_role(catalog, &record).await.map_err(status)?;
    Ok(Response::new(SetRoleResponse {
        role: Some(Role {
            builtin: false,
            ..role
        }),
    }))
}

pub fn token_proto(t: tokens::TokenRecord) -> Token {
    Token {
        id: t.id,
        user: t.user,
        description: t.description,
        created_unix_ms: t.created_ms,
    }
}

pub async fn create_token(
    catalog: &impl CatalogStore,
    user: &str,
    description: &str,
) -> Result<Response<CreateTokenResponse>, Status> {
    let (record, secret) = tokens::create(catalog, user, description, SystemClock.now_ms())
        .await
        .map_err(status)?;
    Ok(Response::new(CreateTokenResponse {
        token: Some(token_proto(record)),
        secret,
    }))
}
