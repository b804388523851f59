//! The dashboard's sessions (migration 0011): made at login with an API
//! key, found by the SHA-256 of the cookie's random token, ended by logout,
//! expiry, or the key's revocation.

use chrono::{DateTime, Utc};
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::keys::Principal;
use super::{Store, StoreError, sql};

/// How long a session lives after its login.
pub const SESSION_TTL: chrono::Duration = chrono::Duration::hours(12);
/// Live sessions one key may hold; a login past it ends the key's oldest.
pub const SESSIONS_PER_KEY: i64 = 20;

/// A new session: `token` goes in the cookie and is never stored.
#[derive(Clone)]
pub struct NewSession {
    pub token: String,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

/// Never the tokens.
impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSession")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A stored session as a request finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub principal: Principal,
    /// [`admin_key_digest`] of the bootstrap admin key it was made with
    /// (`key_id` is then `None`).
    pub admin_key_digest: Option<Vec<u8>>,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

/// 256 random bits, hex.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The SHA-256 of a session's token (how the store finds it).
pub fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// What a session of the bootstrap admin key keeps of that key: a SHA-256
/// keyed by the session's own token (which only the cookie holds), so no
/// two rows hold the same digest and a copy of the table gives nothing to
/// test guesses of the key against.
pub fn admin_key_digest(token: &str, admin_key: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(b"jobline dashboard admin key\0");
    h.update((token.len() as u64).to_be_bytes());
    h.update(token.as_bytes());
    h.update(admin_key.as_bytes());
    h.finalize().to_vec()
}

impl Store {
    /// Makes a session for `principal` (`admin_key`: the bootstrap key when
    /// that is the key it logged in with, else `None`; the session keeps
    /// only [`admin_key_digest`] of it).
    pub async fn create_session(
        &self,
        principal: &Principal,
        admin_key: Option<&str>,
    ) -> Result<NewSession, StoreError> {
        let token = random_token();
        let admin_key_digest = admin_key.map(|k| admin_key_digest(&token, k));
        let csrf_token = random_token();
        let now = self.now();
        let expires_at = now + SESSION_TTL;
        let client = self.client().await?;
        sql::DASHBOARD_SESSION_CREATE
            .query(
                client.on(),
                &[
                    &digest(&token),
                    &principal.tenant,
                    &principal.scopes,
                    &principal.key_id,
                    &admin_key_digest,
                    &csrf_token,
                    &now,
                    &expires_at,
                    &SESSIONS_PER_KEY,
                ],
            )
            .await?;
        Ok(NewSession {
            token,
            csrf_token,
            expires_at,
        })
    }

    /// The live session of a cookie's token; `None` when unknown, expired,
    /// or its key has been revoked (within the key cache's 5 s).
    pub async fn find_session(&self, token: &str) -> Result<Option<Session>, StoreError> {
        let row = {
            let client = self.client().await?;
            let rows = sql::DASHBOARD_SESSION_FIND
                .query(client.on(), &[&digest(token), &self.now()])
                .await?;
            let Some(row) = rows.into_iter().next() else {
                return Ok(None);
            };
            row
        };
        let err = |e| StoreError::from_db("dashboard_session_find", e);
        let key_id: Option<Uuid> = row.try_get("key_id").map_err(err)?;
        if let Some(id) = key_id
            && !self.key_is_live(id).await?
        {
            return Ok(None);
        }
        Ok(Some(Session {
            principal: Principal {
                tenant: row.try_get("tenant_id").map_err(err)?,
                scopes: row.try_get("scopes").map_err(err)?,
                key_id,
            },
            admin_key_digest: row.try_get("admin_key_digest").map_err(err)?,
            csrf_token: row.try_get("csrf_token").map_err(err)?,
            expires_at: row.try_get("expires_at").map_err(err)?,
        }))
    }

    /// Ends a session; `false` when there was none.
    pub async fn delete_session(&self, token: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let rows = sql::DASHBOARD_SESSION_DELETE
            .query(client.on(), &[&digest(token)])
            .await?;
        Ok(!rows.is_empty())
    }

    /// Deletes up to `limit` expired sessions; how many (the sweeper's
    /// retention step).
    pub async fn prune_sessions(&self, limit: u32) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let rows = sql::DASHBOARD_SESSION_PRUNE
            .query(client.on(), &[&self.now(), &i64::from(limit.max(1))])
            .await?;
        Ok(rows.len())
    }
}
