//! `GET /dashboard`: counts by status, the oldest pending job's wait, the
//! health verdict with its reasons, the dead letter's size, counts per job
//! type, and the charts of the last hour and day (`?type=` narrows the
//! charts to one type). Everything comes from `job_counts` and indexed
//! probes (the same statement as `/v1/stats`), never from a scan of `jobs`.

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use maud::html;

use super::DashboardError;
use super::charts::{self, Kind};
use super::layout::{Nav, ago};
use super::session::Viewer;
use crate::domain::JobStatus;
use crate::domain::health::Health;
use crate::http::AppState;

#[derive(Debug, serde::Deserialize)]
struct Query {
    #[serde(rename = "type")]
    job_type: Option<String>,
}

fn health_word(h: Health) -> &'static str {
    match h {
        Health::Healthy => "healthy",
        Health::Degraded => "degraded",
        Health::Unhealthy => "unhealthy",
    }
}

pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    RawQuery(query): RawQuery,
) -> Result<Response, DashboardError> {
    let q: Query = super::forms::query(query.as_deref())?;
    let chart_type = q.job_type.filter(|t| !t.is_empty());
    let tenant = viewer.tenant().to_owned();
    let now = state.store.now();
    // One after the other: a page holds one pooled connection at a time
    // (every open tab refreshes every 5 s; the API and the workers share
    // the pool).
    let stats = state.store.stats(Some(&tenant)).await?;
    let per_type = state.store.job_counts(Some(&tenant)).await?;
    let series = state
        .store
        .count_series(&tenant, charts::since(now), chart_type.as_deref())
        .await?;
    let (health, reasons) = crate::http::admin::verdict(&state.settings.health, &stats);
    let pending_now = match &chart_type {
        None => stats.by_status.get("pending").copied().unwrap_or(0),
        Some(t) => per_type
            .iter()
            .filter(|c| &c.job_type == t && c.status == "pending")
            .map(|c| c.n)
            .sum(),
    };
    let charts = charts::build(&series, now, pending_now);
    let mut types: BTreeMap<&str, BTreeMap<&str, i64>> = BTreeMap::new();
    for c in &per_type {
        types.entry(&c.job_type).or_default().insert(&c.status, c.n);
    }
    let word = health_word(health);
    let main = html! {
        section .grid {
            div .card.stat {
                span class=(format!("n health-{word}")) data-testid="health" { (word) }
                span .label { "health" }
            }
            @for s in JobStatus::ALL {
                div .card.stat {
                    span .n data-testid={"count-" (s.as_str())} { (stats.by_status.get(s.as_str()).copied().unwrap_or(0)) }
                    span .label { (s.as_str()) }
                }
            }
            div .card.stat {
                span .n data-testid="oldest-pending" data-seconds=(format!("{:.0}", stats.oldest_pending_age_seconds)) {
                    (ago(stats.oldest_pending_age_seconds))
                }
                span .label { "oldest pending wait" }
            }
            div .card.stat {
                a href="/dashboard/dead-letter" {
                    span .n data-testid="dead-letter-size" { (stats.dead_letter) }
                }
                span .label { "dead letter (" (stats.dead_letter_jobs) " jobs, " (stats.dead_letter_outbox) " outbox)" }
            }
        }
        @if !reasons.is_empty() {
            ul .card data-testid="health-reasons" {
                @for r in &reasons { li { (r) } }
            }
        }
        h2 {
            "Last hour and day"
            @if let Some(t) = &chart_type { " · type " code { (t) } " · " a href="/dashboard" { "all types" } }
        }
        div .charts {
            @for (window, w, unit, fmt) in [("hour", &charts.hour, "minute", "%H:%M"), ("day", &charts.day, "hour", "%d %H:00")] {
                @for (what, points, kind, color) in [
                    ("completions", &w.completions, Kind::Bars, "#1a7f37"),
                    ("failures", &w.failures, Kind::Bars, "#cf222e"),
                    ("depth", &w.depth, Kind::Line, "#0969da"),
                ] {
                    @let (title, label) = match kind {
                        Kind::Bars => (format!("{} per {unit}", capitalized(what)), format!("{what} per {unit}, last {window}")),
                        Kind::Line => (format!("Queue depth (pending), last {window}"), format!("pending jobs, last {window}")),
                    };
                    div .card.chart { h3 { (title) }
                        (charts::svg(&format!("chart-{what}-{window}"), &label, points, kind, color, fmt)) }
                }
            }
        }
        h2 { "By job type" }
        div .scroll {
            table data-testid="type-counts" {
                thead { tr { th { "type" } @for s in JobStatus::ALL { th { (s.as_str()) } } th { "charts" } } }
                tbody {
                    @for (t, counts) in &types {
                        tr data-job-type=(t) {
                            td { a href={"/dashboard/jobs?type=" (urlencode(t))} { code { (t) } } }
                            @for s in JobStatus::ALL { td { (counts.get(s.as_str()).copied().unwrap_or(0)) } }
                            td { a href={"/dashboard?type=" (urlencode(t))} { "charts" } }
                        }
                    }
                    @if types.is_empty() { tr { td colspan="7" { "No jobs yet." } } }
                }
            }
        }
    };
    Ok(viewer.page("Overview", Nav::Overview, html! {}, main))
}

/// "completions" → "Completions".
fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// A query-string value.
pub fn urlencode(v: &str) -> String {
    serde_urlencoded::to_string([("v", v)])
        .unwrap_or_default()
        .trim_start_matches("v=")
        .to_owned()
}
