//! API keys: random, shown once, stored as a hash, checked in constant time.
//!
//! A key reads `jl_<id>_<secret>`: `id` (a UUID, 32 hex digits) finds the
//! row, `secret` (256 random bits, 64 hex digits) is compared by its SHA-256
//! with `subtle`'s constant-time equality. A process trusts a key row it
//! read for [`KEY_CACHE_TTL`] (5 s): a revoked key stops working within that
//! everywhere, and at once in the process that revoked it (but for a request
//! that read the row just before the revocation committed and cached it
//! just after: that one is trusted for the rest of its 5 s too).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rand::RngCore as _;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;
use uuid::Uuid;

use super::{Store, StoreError, sql};

pub const SCOPES: [&str; 3] = ["jobs:read", "jobs:write", "admin"];

/// Who a request is: a tenant and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: String,
    pub scopes: Vec<String>,
    /// The key's id, for logs (never the secret).
    pub key_id: Option<Uuid>,
}

impl Principal {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope || s == "admin")
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiKeyInfo {
    pub id: Uuid,
    pub tenant_id: String,
    pub name: Option<String>,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A freshly made key: `key` is shown once and never stored.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: Uuid,
    pub key: String,
}

fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Splits `jl_<id>_<secret>`; `None` for anything else.
fn parse(key: &str) -> Option<(Uuid, &str)> {
    let rest = key.strip_prefix("jl_")?;
    let (id, secret) = rest.split_once('_')?;
    if secret.len() != 64 {
        return None;
    }
    Some((Uuid::try_parse(id).ok()?, secret))
}

/// Constant-time comparison of two secrets of any length (by their hashes).
pub fn secrets_match(a: &str, b: &str) -> bool {
    hash(a).ct_eq(&hash(b)).into()
}

impl Store {
    /// Makes a key for `tenant` with `scopes` (each one of [`SCOPES`]).
    pub async fn create_api_key(
        &self,
        tenant: &str,
        scopes: &[String],
        name: Option<&str>,
    ) -> Result<NewApiKey, StoreError> {
        if let Some(bad) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
            return Err(StoreError::Rejected(format!(
                "unknown scope {bad:?} (expected {})",
                SCOPES.join(", ")
            )));
        }
        if scopes.is_empty() {
            return Err(StoreError::Rejected("a key needs at least one scope".into()));
        }
        let id = Uuid::new_v4();
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let secret = hex::encode(bytes);
        let client = self.client().await?;
        sql::API_KEY_CREATE
            .query(
                client.on(),
                &[
                    &id,
                    &tenant.to_owned(),
                    &name.map(str::to_owned),
                    &hash(&secret),
                    &scopes.to_vec(),
                    &self.now(),
                ],
            )
            .await?;
        Ok(NewApiKey {
            id,
            key: format!("jl_{}_{secret}", id.simple()),
        })
    }

    /// The principal a presented key stands for; `None` for an unknown,
    /// malformed, wrong or revoked key.
    pub async fn authenticate(&self, key: &str) -> Result<Option<Principal>, StoreError> {
        let Some((id, secret)) = parse(key) else {
            return Ok(None);
        };
        let Some(row) = self.key_row(id).await? else {
            return Ok(None);
        };
        let matches: bool = hash(secret).ct_eq(&row.secret_hash).into();
        if !matches || row.revoked {
            return Ok(None);
        }
        self.touch_key_later(id);
        Ok(Some(Principal {
            tenant: row.tenant_id.clone(),
            scopes: row.scopes.clone(),
            key_id: Some(id),
        }))
    }

    /// Whether key `id` exists and is not revoked (from the same 5 s cache
    /// as [`Store::authenticate`]: the dashboard's sessions check it on
    /// every request).
    pub async fn key_is_live(&self, id: Uuid) -> Result<bool, StoreError> {
        Ok(self.key_row(id).await?.is_some_and(|row| !row.revoked))
    }

    /// The stored key `id`, from this process's cache when it was read in
    /// the last [`KEY_CACHE_TTL`] (so a revocation by another process takes
    /// effect within that; one by this process at once). Unknown ids are
    /// not remembered.
    async fn key_row(&self, id: Uuid) -> Result<Option<Arc<KeyRow>>, StoreError> {
        let now = self.now();
        if let Some(row) = self.key_cache.get(id, now) {
            return Ok(Some(row));
        }
        let client = self.client().await?;
        let rows = sql::API_KEY_FIND.query(client.on(), &[&id]).await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let err = |e| StoreError::from_db("api_key_find", e);
        let revoked_at: Option<DateTime<Utc>> = row.try_get("revoked_at").map_err(err)?;
        let row = Arc::new(KeyRow {
            tenant_id: row.try_get("tenant_id").map_err(err)?,
            secret_hash: row.try_get("secret_hash").map_err(err)?,
            scopes: row.try_get("scopes").map_err(err)?,
            revoked: revoked_at.is_some(),
        });
        self.key_cache.put(id, now, row.clone());
        Ok(Some(row))
    }

    /// Writes the key's `last_used_at` off the request's path (a task of
    /// its own), at most once per [`KEY_TOUCH_EVERY`] per key and process.
    fn touch_key_later(&self, id: Uuid) {
        let now = self.now();
        if !self.key_touches.due(id, now) {
            return;
        }
        let store = self.clone();
        tokio::spawn(async move {
            let written = match store.client().await {
                Ok(client) => sql::API_KEY_TOUCH
                    .query(client.on(), &[&id, &now])
                    .await
                    .map(|_| ()),
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                tracing::debug!(error = %e, key = %id, "could not record the key's last use");
            }
        });
    }

    pub async fn list_api_keys(&self, tenant: Option<&str>) -> Result<Vec<ApiKeyInfo>, StoreError> {
        let client = self.client().await?;
        let rows = sql::API_KEY_LIST
            .query(client.on(), &[&tenant.map(str::to_owned)])
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ApiKeyInfo {
                    id: r.try_get("id")?,
                    tenant_id: r.try_get("tenant_id")?,
                    name: r.try_get("name")?,
                    scopes: r.try_get("scopes")?,
                    created_at: r.try_get("created_at")?,
                    revoked_at: r.try_get("revoked_at")?,
                })
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()
            .map_err(|e| StoreError::from_db("api_key_list", e))
    }

    /// Revokes a key; `false` when there is no such key.
    pub async fn revoke_api_key(&self, id: Uuid) -> Result<bool, StoreError> {
        self.key_cache.forget(id);
        let client = self.client().await?;
        let revoked = !sql::API_KEY_REVOKE
            .query(client.on(), &[&id, &self.now()])
            .await?
            .is_empty();
        // Again after the commit: a request that read the key before it
        // may have cached it meanwhile.
        self.key_cache.forget(id);
        Ok(revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_keys_parse() {
        let id = Uuid::new_v4();
        let secret = "a".repeat(64);
        assert_eq!(
            parse(&format!("jl_{}_{secret}", id.simple())),
            Some((id, secret.as_str()))
        );
        assert_eq!(parse(&format!("jl_{}_short", id.simple())), None);
        assert_eq!(parse("Bearer nonsense"), None);
        assert_eq!(parse(&format!("xx_{}_{secret}", id.simple())), None);
    }

    #[test]
    fn secrets_compare_by_value() {
        assert!(secrets_match("same-secret-value", "same-secret-value"));
        assert!(!secrets_match("same-secret-value", "same-secret-valuX"));
        assert!(!secrets_match("short", "a much longer secret"));
    }

    #[test]
    fn admin_implies_every_scope() {
        let p = Principal {
            tenant: "t".into(),
            scopes: vec!["admin".into()],
            key_id: None,
        };
        assert!(p.has_scope("jobs:write"));
        let r = Principal {
            scopes: vec!["jobs:read".into()],
            ..p
        };
        assert!(r.has_scope("jobs:read"));
        assert!(!r.has_scope("jobs:write"));
    }
}

/// How often a key's `last_used_at` is written at most (per process).
pub const KEY_TOUCH_EVERY: chrono::Duration = chrono::Duration::seconds(60);
/// Keys remembered at most; past it the memory starts over (a few early
/// writes, never unbounded growth).
const TOUCHES_TRACKED: usize = 10_000;

/// When this process last wrote each key's `last_used_at`.
#[derive(Debug, Default)]
pub(crate) struct Touches(std::sync::Mutex<std::collections::HashMap<Uuid, DateTime<Utc>>>);

impl Touches {
    /// Is a write due for `id` at `now`? Records it when it is.
    fn due(&self, id: Uuid, now: DateTime<Utc>) -> bool {
        let Ok(mut seen) = self.0.lock() else {
            return false;
        };
        if seen.get(&id).is_some_and(|at| now - *at < KEY_TOUCH_EVERY) {
            return false;
        }
        if seen.len() >= TOUCHES_TRACKED {
            seen.clear();
        }
        seen.insert(id, now);
        true
    }
}

/// How long a process trusts a key it read: a key revoked by another
/// process stops working within this (stated in the README).
pub const KEY_CACHE_TTL: chrono::Duration = chrono::Duration::seconds(5);
/// Keys cached at most; past it the cache starts over.
const KEYS_CACHED: usize = 10_000;

/// A stored key as authentication needs it.
#[derive(Debug)]
pub(crate) struct KeyRow {
    tenant_id: String,
    secret_hash: Vec<u8>,
    scopes: Vec<String>,
    revoked: bool,
}

/// A key as read, and when.
type CachedKey = (DateTime<Utc>, Arc<KeyRow>);

/// The keys this process read lately.
#[derive(Debug, Default)]
pub(crate) struct KeyCache(std::sync::Mutex<std::collections::HashMap<Uuid, CachedKey>>);

impl KeyCache {
    fn get(&self, id: Uuid, now: DateTime<Utc>) -> Option<Arc<KeyRow>> {
        let cache = self.0.lock().ok()?;
        let (read_at, row) = cache.get(&id)?;
        // A clock moved back counts as stale too.
        (now >= *read_at && now - *read_at < KEY_CACHE_TTL).then(|| row.clone())
    }

    fn put(&self, id: Uuid, now: DateTime<Utc>, row: Arc<KeyRow>) {
        if let Ok(mut cache) = self.0.lock() {
            if cache.len() >= KEYS_CACHED {
                cache.clear();
            }
            cache.insert(id, (now, row));
        }
    }

    fn forget(&self, id: Uuid) {
        if let Ok(mut cache) = self.0.lock() {
            cache.remove(&id);
        }
    }
}
