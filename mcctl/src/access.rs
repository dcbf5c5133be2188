//! `mcctl user` and `mcctl token`: who may call the MC and how they prove it.

use clap::Subcommand;
use proto::v1::cluster_service_client::ClusterServiceClient;
use proto::v1::*;

use crate::Output;
use crate::client::{CliError, Mc, req};
use crate::render::{Table, time};

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    List,
    /// Creates or replaces a user (a person, or a service account for a DDL hook).
    Set {
        name: String,
        /// Roles, comma-separated: admin, operator, viewer, ddl-hook or a custom one.
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
    },
    Delete {
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// A new token for a user; the secret is printed once.
    Create {
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    List,
    Revoke {
        id: String,
    },
}

pub async fn user(mc: &mut Mc, out: Output, cmd: UserCmd) -> Result<(), CliError> {
    match cmd {
        UserCmd::List => {
            let r = mc
                .call(|c| async move {
                    ClusterServiceClient::new(c)
                        .list_users(req(ListUsersRequest {}))
                        .await
                })
                .await?;
            crate::render::print(out, r, "mc.v1.ListUsersResponse", |r| {
                let mut t = Table::new(&["NAME", "ROLES"]);
                for u in &r.users {
                    t.row(vec![u.name.clone(), u.roles.join(",")]);
                }
                t.print();
                Ok(())
            })
        }
        UserCmd::Set { name, roles } => {
            let user = User { name, roles };
            mc.call(|c| {
                let user = user.clone();
                async move {
                    ClusterServiceClient::new(c)
                        .set_user(req(SetUserRequest { user: Some(user) }))
                        .await
                }
            })
            .await?;
            println!("user {} set", user.name);
            Ok(())
        }
        UserCmd::Delete { name } => {
            mc.call(|c| {
                let name = name.clone();
                async move {
                    ClusterServiceClient::new(c)
                        .delete_user(req(DeleteUserRequest { name }))
                        .await
                }
            })
            .await?;
            println!("user {name} deleted, its tokens revoked");
            Ok(())
        }
    }
}

pub async fn token(mc: &mut Mc, out: Output, cmd: TokenCmd) -> Result<(), CliError> {
    match cmd {
        TokenCmd::Create { user, description } => {
            let r = mc
                .call(|c| {
                    let (user, description) = (user.clone(), description.clone());
                    async move {
                        ClusterServiceClient::new(c)
                            .create_token(req(CreateTokenRequest { user, description }))
                            .await
                    }
                })
                .await?;
            crate::render::print(out, r, "mc.v1.CreateTokenResponse", |r| {
                let id = r.token.map(|t| t.id).unwrap_or_default();
                println!("token {id} for user {user} (shown once; send it as MC_TOKEN):");
                println!("{}", r.secret);
                Ok(())
            })
        }
        TokenCmd::List => {
            let r = mc
                .call(|c| async move {
                    ClusterServiceClient::new(c)
                        .list_tokens(req(ListTokensRequest {}))
                        .await
                })
                .await?;
            crate::render::print(out, r, "mc.v1.ListTokensResponse", |r| {
                let mut t = Table::new(&["ID", "USER", "CREATED", "DESCRIPTION"]);
                for k in &r.tokens {
                    t.row(vec![
                        k.id.clone(),
                        k.user.clone(),
                        time(k.created_unix_ms),
                        k.description.clone(),
                    ]);
                }
                t.print();
                Ok(())
            })
        }
        TokenCmd::Revoke { id } => {
            mc.call(|c| {
                let id = id.clone();
                async move {
                    ClusterServiceClient::new(c)
                        .revoke_token(req(RevokeTokenRequest { id }))
                        .await
                }
            })
            .await?;
            println!("token {id} revoked");
            Ok(())
        }
    }
}
