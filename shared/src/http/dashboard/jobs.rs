//! `GET /dashboard/jobs`: the tenant's jobs, newest first, filtered by
//! status, type and correlation id, in keyset pages
//! ([`crate::store::Store::dashboard_jobs`]: a type filter reads a bounded
//! number of rows per page, and a short page says so), and
//! `GET /dashboard/jobs/go?id=`: straight to one job.

use axum::extract::{RawQuery, State};
use axum::response::Response;
use maud::{Markup, html};

use super::DashboardError;
use super::forms::see_other;
use super::layout::{Nav, at, short_id};
use super::overview::urlencode;
use super::session::Viewer;
use crate::domain::JobStatus;
use crate::http::AppState;
use crate::store::dashboard::TYPE_SCAN_ROWS;
use crate::store::{JobFilter, PageCursor};

pub const PAGE_SIZE: u32 = 50;

#[derive(Debug, Default, serde::Deserialize)]
pub struct Query {
    pub status: Option<String>,
    #[serde(rename = "type")]
    pub job_type: Option<String>,
    pub correlation_id: Option<String>,
    pub cursor: Option<String>,
}

fn nonempty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// The filter form (outside the refreshed region: typing is not lost).
fn filter_form(status: Option<JobStatus>, job_type: Option<&str>, correlation: Option<&str>) -> Markup {
    html! {
        div .tools {
            form method="get" action="/dashboard/jobs" data-testid="job-filter" {
                div { label for="f-status" { "status" }
                    select #f-status name="status" {
                        option value="" selected[status.is_none()] { "any" }
                        @for s in JobStatus::ALL {
                            option value=(s.as_str()) selected[status == Some(s)] { (s.as_str()) }
                        }
                    }
                }
                div { label for="f-type" { "type" }
                    input #f-type name="type" value=[job_type] placeholder="any"; }
                div { label for="f-corr" { "correlation id" }
                    input #f-corr name="correlation_id" value=[correlation] placeholder="any"; }
                button type="submit" { "Filter" }
            }
            form method="get" action="/dashboard/jobs/go" data-testid="goto-job" {
                div { label for="goto" { "job id" }
                    input #goto name="id" required placeholder="01234567-…" size="38"; }
                button type="submit" .quiet { "Go" }
            }
        }
    }
}

pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    RawQuery(query): RawQuery,
) -> Result<Response, DashboardError> {
    let q: Query = super::forms::query(query.as_deref())?;
    let status = match nonempty(q.status) {
        None => None,
        Some(s) => Some(
            s.parse::<JobStatus>()
                .map_err(|_| DashboardError::BadRequest(format!("unknown status \"{s}\"")))?,
        ),
    };
    let job_type = nonempty(q.job_type);
    let correlation_id = nonempty(q.correlation_id);
    let cursor = match nonempty(q.cursor) {
        None => None,
        Some(c) => Some(
            PageCursor::decode(&c)
                .ok_or_else(|| DashboardError::BadRequest("that page link is not one we made".into()))?,
        ),
    };
    let filter = JobFilter {
        status,
        job_type: job_type.clone(),
        correlation_id: correlation_id.clone(),
    };
    let page = state
        .store
        .dashboard_jobs(viewer.tenant(), &filter, PAGE_SIZE, cursor)
        .await?;
    let jobs = page.jobs;
    let next = page.next_cursor.map(|c| {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if let Some(s) = status {
            pairs.push(("status", s.as_str().to_owned()));
        }
        if let Some(t) = &job_type {
            pairs.push(("type", t.clone()));
        }
        if let Some(c) = &correlation_id {
            pairs.push(("correlation_id", c.clone()));
        }
        pairs.push(("cursor", c.encode()));
        format!(
            "/dashboard/jobs?{}",
            serde_urlencoded::to_string(&pairs).unwrap_or_default()
        )
    });
    let main = html! {
        div .scroll {
            table {
                thead { tr { th { "job" } th { "type" } th { "status" } th .wide { "attempts" } th .wide { "priority" } th { "created" } th .wide { "correlation" } } }
                tbody {
                    @for j in &jobs {
                        tr data-testid="job-row" data-job-id=(j.id) {
                            td { a href={"/dashboard/jobs/" (j.id)} { code { (short_id(j.id)) } } }
                            td { a href={"/dashboard/jobs?type=" (urlencode(&j.job_type))} { (j.job_type) } }
                            td { span class=(format!("status status-{}", j.status)) { (j.status) } }
                            td .wide { (j.attempts) "/" (j.max_attempts) }
                            td .wide { "P" (j.priority) }
                            td { (at(j.created_at)) }
                            td .wide { @if let Some(c) = &j.correlation_id {
                                a href={"/dashboard/jobs?correlation_id=" (urlencode(c))} { (c) } } }
                        }
                    }
                    @if jobs.is_empty() { tr { td colspan="7" data-testid="no-jobs" { "No jobs match." } } }
                }
            }
        }
        @if let Some(n) = &next {
            @if page.cut {
                p .hint data-testid="search-cut" {
                    "A type filter (or a correlation id of many jobs) reads up to " (TYPE_SCAN_ROWS)
                    " jobs of each status per page, newest first; "
                    "older jobs may match too."
                }
                p .more { a href=(n) data-testid="next-page" { "Search older jobs →" } }
            } @else {
                p .more { a href=(n) data-testid="next-page" { "Older jobs →" } }
            }
        }
        @if cursor.is_some() { p .more { a href="/dashboard/jobs" { "← Newest" } } }
    };
    Ok(viewer.page(
        "Jobs",
        Nav::Jobs,
        filter_form(status, job_type.as_deref(), correlation_id.as_deref()),
        main,
    ))
}

#[derive(Debug, serde::Deserialize)]
pub struct Go {
    id: Option<String>,
}

/// `GET /dashboard/jobs/go?id=`: 303 to the job when the tenant has it,
/// else the not-found page.
pub async fn go(
    State(state): State<AppState>,
    viewer: Viewer,
    RawQuery(query): RawQuery,
) -> Result<Response, DashboardError> {
    let q: Go = super::forms::query(query.as_deref())?;
    let raw = q.id.unwrap_or_default();
    let Ok(id) = uuid::Uuid::try_parse(raw.trim()) else {
        return Ok(viewer.not_found(Nav::Jobs, "That is not a job id."));
    };
    match state.store.get(viewer.tenant(), id).await? {
        Some(_) => Ok(see_other(&format!("/dashboard/jobs/{id}"))),
        None => Ok(viewer.not_found(Nav::Jobs, &format!("No job {id}."))),
    }
}
