//! `GET /dashboard/dead-letter`: failed jobs (each with a retry) and
//! dead-lettered outbox rows, and a replay of them all;
//! `POST /dashboard/dead-letter/replay` replays with the form's token (made
//! when the page was drawn), so a double submit replays once.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use maud::html;

use super::DashboardError;
use super::forms::{Flash, Form, check_csrf, redirect_with};
use super::job::action_button;
use super::layout::{Nav, at, form_fields, short_id};
use super::session::Viewer;
use crate::domain::JobStatus;
use crate::http::AppState;
use crate::store::JobFilter;

/// Rows of each kind shown at most.
pub const MAX_ROWS: u32 = 100;

pub async fn page(State(state): State<AppState>, viewer: Viewer) -> Result<Response, DashboardError> {
    let tenant = viewer.tenant().to_owned();
    let failed = JobFilter {
        status: Some(JobStatus::Failed),
        ..JobFilter::default()
    };
    // One after the other: a page holds one pooled connection at a time.
    let jobs = state
        .store
        .dashboard_jobs(&tenant, &failed, MAX_ROWS, None)
        .await?
        .jobs;
    let outbox = state.store.dead_letter_outbox(&tenant, MAX_ROWS).await?;
    let stats = state.store.stats(Some(&tenant)).await?;
    let act = viewer.can_act();
    // What "Replay all" replays: every failed job (up to the replay's own
    // limit per press) and every dead-lettered outbox row, not only the
    // rows shown below.
    let failed_total = stats.dead_letter_jobs;
    let outbox_total = stats.dead_letter_outbox;
    let per_press = crate::store::outbox::REPLAY_LIMIT;
    let scope = if failed_total > per_press {
        format!(
            "{failed_total} failed jobs ({per_press} per press, the oldest first) and {outbox_total} outbox rows"
        )
    } else {
        format!("{failed_total} failed jobs and {outbox_total} outbox rows")
    };
    let confirm = format!("Replay {scope} of this tenant?");
    let token = uuid::Uuid::new_v4().simple().to_string();
    let main = html! {
        @if act && (!jobs.is_empty() || !outbox.is_empty()) {
            form method="post" action="/dashboard/dead-letter/replay" data-testid="replay-form"
                onsubmit=(format!("return confirm({})", serde_json::Value::from(confirm))) {
                (form_fields(&viewer))
                input type="hidden" name="token" value=(token);
                button type="submit" .danger { "Replay all" }
                span .hint data-testid="replay-scope" { " " (scope) }
            }
        }
        h2 { "Failed jobs" }
        div .scroll {
            table {
                thead { tr { th { "job" } th { "type" } th { "error" } th .wide { "attempts" } th .wide { "failed at" } th {} } }
                tbody {
                    @for j in &jobs {
                        tr data-testid="dead-job-row" data-job-id=(j.id) {
                            td { a href={"/dashboard/jobs/" (j.id)} { code { (short_id(j.id)) } } }
                            td { (j.job_type) }
                            td { @if let Some(c) = &j.error_code { code { (c) } " " } (j.failure_reason.as_deref().unwrap_or("")) }
                            td .wide { (j.attempts) "/" (j.max_attempts) }
                            td .wide { (at(j.completed_at.unwrap_or(j.updated_at))) }
                            td { @if act {
                                (action_button(&viewer, &format!("/dashboard/jobs/{}/retry", j.id), "retry-button", "Retry", "",
                                    Some("Retry this failed job?")))
                            } }
                        }
                    }
                    @if jobs.is_empty() { tr { td colspan="6" { "No failed jobs." } } }
                }
            }
        }
        h2 { "Dead-lettered outbox rows" }
        p .hint { "Messages the relay could not publish after every attempt; a replay publishes them again." }
        div .scroll {
            table {
                thead { tr { th { "row" } th { "job" } th { "attempts" } th { "last error" } th .wide { "at" } } }
                tbody {
                    @for o in &outbox {
                        tr data-testid="dead-outbox-row" data-outbox-id=(o.id) data-job-id=(o.job_id) {
                            td { (o.id) }
                            td { a href={"/dashboard/jobs/" (o.job_id)} { code { (short_id(o.job_id)) } } }
                            td { (o.attempts) }
                            // The broker's own words (queue addresses, account
                            // ids) are the operators' business, as the
                            // workers' names are.
                            td { @if viewer.is_operator() { (o.last_error.as_deref().unwrap_or("")) }
                                 @else { "the publish failed (the operators see why)" } }
                            td .wide { (at(o.updated_at)) }
                        }
                    }
                    @if outbox.is_empty() { tr { td colspan="5" { "No dead-lettered outbox rows." } } }
                }
            }
        }
    };
    Ok(viewer.page("Dead letter", Nav::DeadLetter, html! {}, main))
}

pub async fn replay(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, DashboardError> {
    let form = Form::read(body).await?;
    check_csrf(&headers, &form, &viewer.csrf)?;
    viewer.require_admin()?;
    let token = form
        .get("token")
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 128)
        .ok_or_else(|| DashboardError::BadRequest("the replay form lacks its token".into()))?;
    let report = state
        .store
        .replay_dead_letter(viewer.tenant(), token, &viewer.caller.actor(), None, None)
        .await?;
    tracing::info!(
        token,
        jobs = report.jobs_replayed,
        outbox = report.outbox_replayed,
        "dead letter replayed from the dashboard"
    );
    let flash = Flash::Replayed {
        jobs: report.jobs_replayed,
        outbox: report.outbox_replayed,
        already_used: report.already_used,
    };
    Ok(redirect_with(&form.back_or("/dashboard/dead-letter"), &flash))
}
