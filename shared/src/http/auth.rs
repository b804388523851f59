//! Who is calling: `Authorization: Bearer <key>` or `X-Api-Key: <key>`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::{ApiError, AppState};
use crate::store::keys::{Principal, secrets_match};

/// The authenticated caller of a route.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl Caller {
    /// The caller's tenant, if the key has `scope` (`admin` has them all).
    pub fn require(&self, scope: &str) -> Result<&str, ApiError> {
        if self.0.has_scope(scope) {
            Ok(&self.0.tenant)
        } else {
            Err(ApiError::forbidden(scope))
        }
    }

    pub fn actor(&self) -> String {
        match self.0.key_id {
            Some(id) => format!("key:{}", id.simple()),
            None => "key:admin".to_owned(),
        }
    }
}

fn presented_key(parts: &Parts) -> Option<&str> {
    if let Some(value) = parts.headers.get(http::header::AUTHORIZATION) {
        let value = value.to_str().ok()?.trim();
        let (scheme, key) = value.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| key.trim());
    }
    parts.headers.get("x-api-key")?.to_str().ok().map(str::trim)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let key = presented_key(parts)
            .filter(|k| !k.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        if let Some(admin) = &state.settings.admin_key
            && secrets_match(key, admin)
        {
            return Ok(Caller(Principal {
                tenant: "default".into(),
                scopes: vec!["admin".into(), "jobs:read".into(), "jobs:write".into()],
                key_id: None,
            }));
        }
        match state.store.authenticate(key).await? {
            Some(principal) => Ok(Caller(principal)),
            None => Err(ApiError::unauthorized()),
        }
    }
}
