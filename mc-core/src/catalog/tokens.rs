//! Bearer tokens for users without a client certificate (DDL hooks' service accounts, SREs
//! behind a proxy). A token is `mct_<id>_<secret>`: the id finds the record, the secret is
//! proved by its SHA-256, the only form the catalog keeps — a copy of the catalog (a backup,
//! a follower's disk) lets nobody call as anyone.

use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};

use super::{CatalogStore, WriteBatch};
use crate::error::{McError, Result};

const PREFIX: &str = "mct_";

/// Tokens one user may hold: bounds what a compromised admin script can make the catalog keep.
pub const MAX_PER_USER: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// 16 hex digits.
    pub id: String,
    pub user: String,
    pub description: String,
    /// SHA-256 of the secret, hex.
    pub secret_sha256: String,
    pub created_ms: u64,
}

pub(super) fn key(id: &str) -> Vec<u8> {
    format!("token/{id}").into_bytes()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(secret: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, secret.as_bytes()).as_ref())
}

fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the OS random source");
    hex(&bytes)
}

/// Makes a token for `user` (which must exist) and stores its hash; returns the record and
/// the whole token, which nothing keeps.
pub async fn create(
    catalog: &impl CatalogStore,
    user: &str,
    description: &str,
    now_ms: u64,
) -> Result<(TokenRecord, String)> {
    if super::users::get(catalog, user)?.is_none() {
        return Err(McError::not_found("user", crate::error::short(user)));
    }
    if description.len() > 256 {
        return Err(McError::invalid("description", "at most 256 bytes"));
    }
    if list(catalog)?.iter().filter(|t| t.user == user).count() >= MAX_PER_USER {
        return Err(McError::FailedPrecondition {
            subject: format!("user/{user}"),
            state: format!("holds {MAX_PER_USER} tokens"),
            required: "revoke one first".into(),
        });
    }
    let id = random_hex(8);
    let secret = random_hex(32);
    let record = TokenRecord {
        id: id.clone(),
        user: user.to_string(),
        description: description.to_string(),
        secret_sha256: sha256(&secret),
        created_ms: now_ms,
    };
    let mut batch = WriteBatch::default();
    batch.put(
        key(&id),
        serde_json::to_vec(&record).map_err(McError::internal)?,
    );
    catalog.write(batch).await?;
    Ok((record, format!("{PREFIX}{id}_{secret}")))
}

/// Deletes a user and revokes its tokens, in one write.
pub async fn delete_user(catalog: &impl CatalogStore, name: &str) -> Result<()> {
    let mut batch = super::users::delete_batch(catalog, name)?;
    for token in list(catalog)?.into_iter().filter(|t| t.user == name) {
        batch.delete(key(&token.id));
    }
    catalog.write(batch).await
}
pub fn list(catalog: &impl CatalogStore) -> Result<Vec<TokenRecord>> {
    catalog
        .scan(b"token/")?
        .into_iter()
        .map(|(k, v)| {
            serde_json::from_slice(&v).map_err(|e| McError::corrupt(String::from_utf8_lossy(&k), e))
        })
        .collect()
}

pub async fn revoke(catalog: &impl CatalogStore, id: &str) -> Result<()> {
    if id.len() != 16 || catalog.get(&key(id))?.is_none() {
        return Err(McError::not_found("token", crate::error::short(id)));
    }
    let mut batch = WriteBatch::default();
    batch.delete(key(id));
    catalog.write(batch).await
}

/// The user a token proves, or Unauthenticated saying why (never which part was wrong
/// beyond "unknown or revoked", so a guesser learns nothing).
pub fn verify(catalog: &impl CatalogStore, token: &str) -> Result<String> {
    let unknown = || McError::unauthenticated("the bearer token is unknown or revoked");
    let rest = token.strip_prefix(PREFIX).ok_or_else(|| {
        McError::unauthenticated(
            "a bearer token starts with mct_ (make one with `mcctl token create`)",
        )
    })?;
    let (id, secret) = rest.split_once('_').ok_or_else(unknown)?;
    if id.len() != 16 || secret.len() != 64 {
        return Err(unknown());
    }
    let record: TokenRecord = match catalog.get(&key(id))? {
        Some(v) => {
            serde_json::from_slice(&v).map_err(|e| McError::corrupt(format!("token {id}"), e))?
        }
        None => return Err(unknown()),
    };
    let (a, b) = (sha256(secret), record.secret_sha256);
    // Compare in constant time: the hash of a guess must not leak how much of it matched.
    let differ = a.len() != b.len()
        || a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            != 0;
    if differ {
        return Err(unknown());
    }
    Ok(record.user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::memory::MemoryStore;
    use crate::catalog::users::{self, User};

    #[tokio::test]
    async fn a_token_proves_its_user_until_revoked_and_only_its_hash_is_kept() {
        let store = MemoryStore::default();
        users::put(
            &store,
            &User {
                name: "hook".into(),
                roles: vec!["ddl-hook".into()],
            },
        )
        .await
        .unwrap();
        let (record, token) = create(&store, "hook", "pg ddl", 1).await.unwrap();
        assert_eq!(verify(&store, &token).unwrap(), "hook");
        let raw = store.get(&key(&record.id)).unwrap().unwrap();
        let secret = token.rsplit('_').next().unwrap();
        assert!(
            !String::from_utf8_lossy(&raw).contains(secret),
            "the secret is not stored"
        );
        let mut forged = token.clone();
        forged.pop();
        forged.push(if token.ends_with('0') { '1' } else { '0' });
        assert!(matches!(
            verify(&store, &forged),
            Err(McError::Unauthenticated(_))
        ));
        assert!(matches!(
            verify(&store, "Bearer x"),
            Err(McError::Unauthenticated(_))
        ));
        assert!(matches!(
            create(&store, "nobody", "", 1).await,
            Err(McError::NotFound { .. })
        ));
        revoke(&store, &record.id).await.unwrap();
        assert!(matches!(
            verify(&store, &token),
            Err(McError::Unauthenticated(_))
        ));
        // Deleting a user revokes its tokens.
        let (_, token) = create(&store, "hook", "", 2).await.unwrap();
        users::put(
            &store,
            &User {
                name: "root".into(),
                roles: vec!["admin".into()],
            },
        )
        .await
        .unwrap();
        delete_user(&store, "hook").await.unwrap();
        assert!(verify(&store, &token).is_err());
        assert!(list(&store).unwrap().is_empty());
    }
}
