//! Who is calling: `Authorization: Bearer <key>` or `X-Api-Key: <key>`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::{ApiError, AppState};
use crate::domain::{Job, JobEvent};
use crate::store::keys::{Principal, secrets_match};

/// A stable, opaque stand-in for a process name (`worker-<12 hex>`): the
/// same worker always maps to the same id, and nothing of its host shows.
pub fn opaque_worker(name: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(name.as_bytes());
    format!("worker-{}", &hex::encode(digest)[..12])
}

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

    /// The operators' tenant (`default`): the only one that sees the
    /// deployment's own names (worker hosts, Lambda log streams).
    pub fn is_operator(&self) -> bool {
        self.0.tenant == super::workers::OPERATOR_TENANT
    }

    /// A job as this caller may see it: for tenants other than the
    /// operators', the worker holding it is an opaque id.
    pub fn view_job(&self, mut job: Job) -> Job {
        if !self.is_operator() {
            job.locked_by = job.locked_by.as_deref().map(opaque_worker);
        }
        job
    }

    pub fn view_jobs(&self, jobs: Vec<Job>) -> Vec<Job> {
        jobs.into_iter().map(|j| self.view_job(j)).collect()
    }

    /// A timeline as this caller may see it: worker names (the actors and
    /// the `worker` detail of claims, completions, failures, releases) are
    /// opaque ids for tenants other than the operators'. Keys (`key:…`)
    /// stay as they are: they are the tenant's own.
    pub fn view_events(&self, mut events: Vec<JobEvent>) -> Vec<JobEvent> {
        if self.is_operator() {
            return events;
        }
        for e in &mut events {
            if let Some(actor) = &e.actor
                && !actor.starts_with("key:")
            {
                e.actor = Some(opaque_worker(actor));
            }
            if let Some(serde_json::Value::Object(detail)) = &mut e.detail
                && let Some(serde_json::Value::String(w)) = detail.get("worker")
            {
                let hidden = opaque_worker(w);
                detail.insert("worker".into(), serde_json::Value::String(hidden));
            }
        }
        events
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

/// Who an API key is: the bootstrap key `JOBLINE_ADMIN_KEY` (compared in
/// constant time; tenant `default`, every scope; `true` beside it), else a
/// stored, unrevoked key (found by its hash, compared in constant time);
/// `None` for anything else. The API's bearer check and the dashboard's
/// login both ask this.
pub(crate) async fn principal_of(
    state: &AppState,
    key: &str,
) -> Result<Option<(Principal, bool)>, crate::StoreError> {
    if let Some(admin) = &state.settings.admin_key
        && secrets_match(key, admin)
    {
        let bootstrap = Principal {
            tenant: super::workers::OPERATOR_TENANT.into(),
            scopes: vec!["admin".into(), "jobs:read".into(), "jobs:write".into()],
            key_id: None,
        };
        return Ok(Some((bootstrap, true)));
    }
    Ok(state.store.authenticate(key).await?.map(|p| (p, false)))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let key = presented_key(parts)
            .filter(|k| !k.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        match principal_of(state, key).await? {
            Some((principal, _)) => Ok(Caller(principal)),
            None => Err(ApiError::unauthorized()),
        }
    }
}
