//! The job routes: create (one or a batch), read, list, timeline, cancel,
//! retry.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::body::{Fields, job_id, json_object};
use super::{ApiError, AppState, Caller};
use crate::domain::job::Schedule;
use crate::domain::{Job, JobStatus, JobType, NewJob};
use crate::store::{JobFilter, PageCursor};

pub const MAX_BATCH: usize = 100;
const CREATE_FIELDS: &[&str] = &[
    "type",
    "payload",
    "priority",
    "run_after",
    "delay_seconds",
    "max_attempts",
    "correlation_id",
    "idempotency_key",
];

/// A created job as the API shows it.
#[derive(Debug, Serialize)]
struct CreatedBody<'a> {
    #[serde(flatten)]
    job: &'a Job,
    already_existed: bool,
}

/// Reads one create body (`prefix` names it inside a batch).
pub fn parse_new_job(
    map: &Map<String, Value>,
    prefix: &str,
    header_key: Option<&str>,
) -> Result<NewJob, ApiError> {
    let f = Fields::new(map, prefix);
    f.only(CREATE_FIELDS)?;
    let job_type = f.required_string("type", JobType::MAX_LEN)?;
    if JobType::parse(&job_type).is_err() {
        return Err(ApiError::validation(&f.name("type"), JobType::RULE));
    }
    let payload = f.value("payload").cloned().unwrap_or_else(|| json!({}));
    let mut new = NewJob::new(job_type, payload);
    if let Some(p) = f.priority("priority")? {
        new.priority = p;
    }
    let run_after = f.timestamp("run_after")?;
    let delay = f.integer("delay_seconds", 0, 365 * 24 * 3600)?;
    new.schedule = match (run_after, delay) {
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(
                &f.name("delay_seconds"),
                "give run_after or delay_seconds, not both",
            ));
        }
        (Some(at), None) => Schedule::At(at),
        (None, Some(s)) => Schedule::AfterSeconds(s as u32),
        (None, None) => Schedule::Now,
    };
    new.max_attempts = f.integer("max_attempts", 1, 100)?.map(|n| n as i32);
    new.correlation_id = f.string("correlation_id", 256)?;
    let body_key = f.string("idempotency_key", 256)?;
    new.idempotency_key = match (body_key, header_key) {
        (Some(b), Some(h)) if b != h => {
            return Err(ApiError::validation(
                &f.name("idempotency_key"),
                "differs from the Idempotency-Key header",
            ));
        }
        (Some(b), _) => Some(b),
        (None, Some(h)) => Some(h.to_owned()),
        (None, None) => None,
    };
    Ok(new)
}

fn header_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => {
            let v = v
                .to_str()
                .map_err(|_| ApiError::validation("Idempotency-Key", "must be printable ASCII"))?;
            if v.is_empty() || v.len() > 256 {
                return Err(ApiError::validation(
                    "Idempotency-Key",
                    "must be 1 to 256 characters",
                ));
            }
            Ok(Some(v.to_owned()))
        }
    }
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let tenant = caller.require("jobs:write")?;
    let map = json_object(body, state.settings.max_body_bytes).await?;
    let key = header_key(&headers)?;
    let mut new = parse_new_job(&map, "", key.as_deref())?;
    let actor = caller.actor();
    new.initiated_by = Some(actor.clone());
    let created = state
        .enqueuer
        .enqueue(tenant, &actor, new)
        .await
        .map_err(|e| ApiError::from_enqueue(e, |_| "type".into()))?;
    let status = if created.already_existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let job = caller.view_job(created.job);
    let body = CreatedBody {
        job: &job,
        already_existed: created.already_existed,
    };
    Ok((status, Json(body)).into_response())
}

pub async fn create_batch(
    State(state): State<AppState>,
    caller: Caller,
    body: Body,
) -> Result<Response, ApiError> {
    let tenant = caller.require("jobs:write")?;
    let map = json_object(body, state.settings.max_body_bytes).await?;
    let f = Fields::new(&map, "");
    f.only(&["jobs"])?;
    let items = match f.value("jobs") {
        Some(Value::Array(items)) => items,
        Some(_) => return Err(ApiError::validation("jobs", "must be an array of jobs")),
        None => return Err(ApiError::validation("jobs", "is required")),
    };
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(ApiError::validation(
            "jobs",
            format!("must hold 1 to {MAX_BATCH} jobs"),
        ));
    }
    let mut news = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let prefix = format!("jobs[{i}].");
        let Value::Object(obj) = item else {
            return Err(ApiError::validation(
                &format!("jobs[{i}]"),
                "must be a JSON object",
            ));
        };
        let mut new = parse_new_job(obj, &prefix, None)?;
        new.initiated_by = Some(caller.actor());
        news.push(new);
    }
    let created = state
        .enqueuer
        .enqueue_many(tenant, &caller.actor(), news)
        .await
        .map_err(|e| ApiError::from_enqueue(e, |i| format!("jobs[{i}].type")))?;
    let status = if created.iter().any(|c| !c.already_existed) {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let shown: Vec<(Job, bool)> = created
        .into_iter()
        .map(|c| (caller.view_job(c.job), c.already_existed))
        .collect();
    let jobs: Vec<CreatedBody<'_>> = shown
        .iter()
        .map(|(job, already_existed)| CreatedBody {
            job,
            already_existed: *already_existed,
        })
        .collect();
    Ok((status, Json(json!({ "jobs": jobs }))).into_response())
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Job>, ApiError> {
    let tenant = caller.require("jobs:read")?;
    let id = job_id(&id)?;
    match state.store.get(tenant, id).await? {
        Some(job) => Ok(Json(caller.view_job(job))),
        None => Err(ApiError::not_found(format!("job {id} not found"))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    #[serde(rename = "type")]
    job_type: Option<String>,
    correlation_id: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller.require("jobs:read")?;
    let q: ListQuery = serde_urlencoded::from_str(query.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::validation("query", e))?;
    let status = q
        .status
        .map(|s| s.parse::<JobStatus>())
        .transpose()
        .map_err(|e| ApiError::validation("status", e))?;
    let limit = match q.limit {
        None => 50,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| ApiError::validation("limit", "must be a whole number from 1 to 500"))?,
    };
    let cursor = q
        .cursor
        .map(|c| {
            PageCursor::decode(&c).ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_cursor",
                    "cursor is not one we issued",
                )
            })
        })
        .transpose()?;
    let filter = JobFilter {
        status,
        job_type: q.job_type,
        correlation_id: q.correlation_id,
    };
    let page = state.store.list(tenant, &filter, limit, cursor).await?;
    Ok(Json(json!({
        "jobs": caller.view_jobs(page.jobs),
        "next_cursor": page.next_cursor.map(|c| c.encode()),
    })))
}

pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller.require("jobs:read")?;
    let id = job_id(&id)?;
    match state.store.timeline(Some(tenant), id).await? {
        Some(events) => Ok(Json(json!({ "events": caller.view_events(events) }))),
        None => Err(ApiError::not_found(format!("job {id} not found"))),
    }
}

pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Job>, ApiError> {
    let tenant = caller.require("admin")?;
    let id = job_id(&id)?;
    let job = state.store.cancel(Some(tenant), id, &caller.actor()).await?;
    Ok(Json(caller.view_job(job)))
}

pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Job>, ApiError> {
    let tenant = caller.require("admin")?;
    let id = job_id(&id)?;
    let map = json_object(body, state.settings.max_body_bytes).await?;
    let f = Fields::new(&map, "");
    f.only(&["max_attempts"])?;
    let extra = f.integer("max_attempts", 1, 100)?.map(|n| n as i32);
    let job = state
        .enqueuer
        .retry(Some(tenant), id, &caller.actor(), extra)
        .await?;
    Ok(Json(caller.view_job(job)))
}
