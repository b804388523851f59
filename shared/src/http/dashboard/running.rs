//! `GET /dashboard/running`: the tenant's running jobs (the 200 created
//! first, and how many there are) with their stage,
//! progress, running time and heartbeat age; a heartbeat older than the
//! configured timeout (`JOBLINE_HEARTBEAT_TIMEOUT_SECONDS`) is marked
//! stale: the sweeper will release that claim.

use axum::extract::State;
use axum::response::Response;
use maud::html;

use super::DashboardError;
use super::layout::{Nav, ago, short_id};
use super::session::Viewer;
use crate::http::AppState;
use crate::http::auth::opaque_worker;

/// Rows shown at most (the oldest running jobs).
pub const MAX_ROWS: u32 = 200;

pub async fn page(State(state): State<AppState>, viewer: Viewer) -> Result<Response, DashboardError> {
    let mut jobs = state.store.running_for(viewer.tenant(), MAX_ROWS).await?;
    let total: i64 = state
        .store
        .job_counts(Some(viewer.tenant()))
        .await?
        .iter()
        .filter(|c| c.status == "processing")
        .map(|c| c.n)
        .sum();
    // Longest running first.
    jobs.sort_by(|a, b| b.running_seconds.total_cmp(&a.running_seconds));
    let timeout = state.settings.heartbeat_timeout.as_secs_f64();
    let operator = viewer.is_operator();
    let main = html! {
        @if total > jobs.len() as i64 {
            p .hint data-testid="running-shown" {
                "The " (jobs.len()) " oldest of " (total) " running jobs."
            }
        }
        p .hint { "Stale: no heartbeat for more than " (ago(timeout)) " (the heartbeat timeout); the sweeper releases such claims." }
        div .scroll {
            table {
                thead { tr { th { "job" } th { "type" } th { "stage" } th { "progress" } th { "running" } th { "heartbeat" } th .wide { "worker" } } }
                tbody {
                    @for j in &jobs {
                        @let stale = j.heartbeat_age_seconds > timeout;
                        tr data-testid="running-row" data-job-id=(j.id) data-stale=(stale) {
                            td { a href={"/dashboard/jobs/" (j.id)} { code { (short_id(j.id)) } } }
                            td { (j.job_type) }
                            td { (j.stage.as_deref().unwrap_or("—")) }
                            td {
                                progress max="100" value=(j.progress.unwrap_or(0.0)) { (j.progress.unwrap_or(0.0)) "%" }
                                " " (format!("{:.0}%", j.progress.unwrap_or(0.0)))
                            }
                            td { (ago(j.running_seconds)) }
                            td {
                                (ago(j.heartbeat_age_seconds)) " ago"
                                @if stale { " " span .stale data-testid="stale" { "stale" } }
                            }
                            td .wide { @if let Some(w) = &j.locked_by {
                                code { @if operator { (w) } @else { (opaque_worker(w)) } } } }
                        }
                    }
                    @if jobs.is_empty() { tr { td colspan="7" { "Nothing is running." } } }
                }
            }
        }
    };
    Ok(viewer.page("Running", Nav::Running, html! {}, main))
}
