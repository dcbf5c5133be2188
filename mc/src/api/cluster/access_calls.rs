//! Users, roles and tokens: who may call what. Every change is audited; a token's secret is
//! shown once, at creation, and never recorded.

use proto::v1::*;
use tonic::{Request, Response, Status};

use super::*;

pub(super) async fn list_users<S: CatalogStore>(
    api: &ClusterApi<S>,
    _: Request<ListUsersRequest>,
) -> Result<Response<ListUsersResponse>, Status> {
    let users = users::list(&*api.catalog)
        .map_err(status)?
        .into_iter()
        .map(|u| User {
            name: u.name,
            roles: u.roles,
        })
        .collect();
    Ok(Response::new(ListUsersResponse { users }))
}

pub(super) async fn set_user<S: CatalogStore>(
    api: &ClusterApi<S>,
    request: Request<SetUserRequest>,
) -> Result<Response<SetUserResponse>, Status> {
    let call = audit::Call::begin("ClusterService/SetUser", &request);
    let user = request.into_inner().user.unwrap_or_default();
    let subjects = vec![format!("user/{}", user.name)];
    let result: Result<Response<SetUserResponse>, Status> = async {
        let record = users::User {
            name: user.name.clone(),
            roles: user.roles.clone(),
        };
        users::put(&*api.catalog, &record).await.map_err(status)?;
        Ok(Response::new(SetUserResponse { user: Some(user) }))
    }
    .await;
    api.audited(call, subjects, result).await
}

pub(super) async fn delete_user<S: CatalogStore>(
    api: &ClusterApi<S>,
    request: Request<DeleteUserRequest>,
) -> Result<Response<DeleteUserResponse>, Status> {
    let call = audit::Call::begin("ClusterService/DeleteUser", &request);
    let name = request.into_inner().name;
    let subjects = vec![format!("user/{name}")];
    let result: Result<Response<DeleteUserResponse>, Status> = async {
        crate::catalog::tokens::delete_user(&*api.catalog, &name)
            .await
            .map_err(status)?;
        Ok(Response::new(DeleteUserResponse {}))
    }
    .await;
    api.audited(call, subjects, result).await
}

pub(super) async fn list_roles<S: CatalogStore>(
    api: &ClusterApi<S>,
    _: Request<ListRolesRequest>,
) -> Result<Response<ListRolesResponse>, Status> {
    let roles = users::roles(&*api.catalog)
        .map_err(status)?
        .into_iter()
        .map(|(role, builtin)| Role {
            name: role.name,
            permissions: role
                .permissions
                .iter()
                .map(|p| p.to_proto() as i32)
                .collect(),
            builtin,
        })
        .collect();
    Ok(Response::new(ListRolesResponse { roles }))
}

pub(super) async fn set_role<S: CatalogStore>(
    api: &ClusterApi<S>,
    request: Request<SetRoleRequest>,
) -> Result<Response<SetRoleResponse>, Status> {
    let call = audit::Call::begin("ClusterService/SetRole", &request);
    let role = request.into_inner().role.unwrap_or_default();
    let subjects = vec![format!("role/{}", crate::error::short(&role.name))];
    let result = crate::api::access::set_role(&*api.catalog, role).await;
    api.audited(call, subjects, result).await
}

pub(super) async fn delete_role<S: CatalogStore>(
    api: &ClusterApi<S>,
    request: Request<DeleteRoleRequest>,
) -> Result<Response<DeleteRoleResponse>, Status> {
    let call = audit::Call::begin("ClusterService/DeleteRole", &request);
    let name = request.into_inner().name;
    let subjects = vec![format!("role/{}", crate::error::short(&name))];
    let result = users::delete_role(&*api.catalog, &name)
        .await
        .map(|()| Response::new(DeleteRoleResponse {}))
        .map_err(status);
    api.audited(call, subjects, result).await
}

pub(super) async fn create_token<S: CatalogStore>(
    api: &ClusterApi<S>,
    request: Request<CreateTokenRequest>,
) -> Result<Response<CreateTokenResponse>, Status> {
    let principal = audit::principal(&request);
    let r = request.into_inner();
    // The audit record names the user, never the secret.
    let call = audit::Call {
        principal,
        method: "ClusterService/CreateToken",
        request: format!(
            "user={} description={:?}",
            crate::error::short(&r.user),
            crate::error::short(&r.description)
        ),
        job_id: 0,
        subjects: vec![],
    };
    let subjects = vec![format!("user/{}", crate::error::short(&r.user))];
    let result = crate::api::access::create_token(&*api.catalog, &r.user, &r.description).await;
    api.audited(call, subjects, result).await
}

pub(super) async fn revoke_token<S: CatalogStore>(
    api: &ClusterApi<S>,
    request: Request<RevokeTokenRequest>,
) -> Result<Response<RevokeTokenResponse>, Status> {
    let call = audit::Call::begin("ClusterService/RevokeToken", &request);
    let id = request.into_inner().id;
    let subjects = vec![format!("token/{}", crate::error::short(&id))];
    let result = crate::catalog::tokens::revoke(&*api.catalog, &id)
        .await
        .map(|()| Response::new(RevokeTokenResponse {}))
        .map_err(status);
    api.audited(call, subjects, result).await
}

pub(super) async fn list_tokens<S: CatalogStore>(
    api: &ClusterApi<S>,
    _: Request<ListTokensRequest>,
) -> Result<Response<ListTokensResponse>, Status> {
    let tokens = crate::catalog::tokens::list(&*api.catalog)
        .map_err(status)?
        .into_iter()
        .map(crate::api::access::token_proto)
        .collect();
    Ok(Response::new(ListTokensResponse { tokens }))
}
