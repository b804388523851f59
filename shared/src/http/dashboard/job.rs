//! `GET /dashboard/jobs/{id}`: one job (payload, result or error, attempts,
//! priority, run_after, its timeline), with cancel and retry where its
//! state allows them and the key has the admin scope;
//! `POST /dashboard/jobs/{id}/cancel|retry` do them (CSRF-checked).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{Markup, html};

use super::DashboardError;
use super::forms::{Flash, Form, check_csrf, redirect_with};
use super::layout::{Nav, at, form_fields};
use super::session::Viewer;
use crate::StoreError;
use crate::domain::Job;
use crate::http::AppState;

/// The most of a payload, a result or an event's detail a page shows: the
/// whole document is one API call away (`GET /v1/jobs/{id}`), and a page
/// must stay far below Lambda's 6 MB answer.
pub const SHOWN_BYTES: usize = 32 * 1024;
/// A timeline longer than these shows its first and last events and how
/// many between are left out (every retry adds a few; a replay starts over).
const TIMELINE_HEAD: usize = 50;
const TIMELINE_TAIL: usize = 150;
/// A failure reason is shown up to this many characters (a worker writing
/// through the SQL API is not held to the API's limit).
const FAILURE_REASON_CHARS: usize = 2_000;

/// `text` up to `max` characters, with an ellipsis when cut.
fn cut_text(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// A writer that takes up to `limit` bytes, then refuses.
struct Capped {
    out: Vec<u8>,
    limit: usize,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() + buf.len() > self.limit {
            return Err(std::io::Error::other("over the page's share"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A JSON document as a page shows it: indented when that fits in
/// [`SHOWN_BYTES`] (written into a capped buffer: a deeply nested document
/// never grows past it), else on one line, cut at `limit`; and the size of
/// the whole when it was cut.
pub fn shown(v: &serde_json::Value, limit: usize) -> (String, Option<usize>) {
    let mut pretty = Capped {
        out: Vec::new(),
        limit,
    };
    if serde_json::to_writer_pretty(&mut pretty, v).is_ok() {
        return (String::from_utf8(pretty.out).unwrap_or_default(), None);
    }
    let compact = v.to_string();
    if compact.len() <= limit {
        return (compact, None);
    }
    let mut end = limit;
    while !compact.is_char_boundary(end) {
        end -= 1;
    }
    (compact[..end].to_owned(), Some(compact.len()))
}

/// A `pre` of a JSON document, with a note when it was cut.
fn document(testid: &str, v: &serde_json::Value, id: uuid::Uuid) -> Markup {
    let (text, whole) = shown(v, SHOWN_BYTES);
    html! {
        pre data-testid=(testid) { (text) }
        @if let Some(n) = whole {
            p .hint data-testid={(testid) "-cut"} {
                "The first " (SHOWN_BYTES / 1024) " KiB of " (n) " bytes; the whole document: "
                code { "GET /v1/jobs/" (id) }
            }
        }
    }
}

/// A POST form with one button (`confirm`: the question a dialog asks first).
pub fn action_button(
    viewer: &Viewer,
    action: &str,
    testid: &str,
    label: &str,
    class: &str,
    confirm: Option<&str>,
) -> Markup {
    let onsubmit = confirm.map(|q| format!("return confirm({})", serde_json::Value::from(q)));
    html! {
        form .inline method="post" action=(action) onsubmit=[onsubmit] {
            (form_fields(viewer))
            button type="submit" class=(class) data-testid=(testid) { (label) }
        }
    }
}

fn parse_id(raw: &str) -> Option<uuid::Uuid> {
    uuid::Uuid::try_parse(raw).ok()
}

fn details(job: &Job) -> Markup {
    html! {
        dl .fields.card {
            dt { "id" } dd { code { (job.id) } }
            dt { "type" } dd { (job.job_type) }
            dt { "status" } dd { span data-testid="job-status" class=(format!("status status-{}", job.status)) { (job.status) } }
            dt { "attempts" } dd data-testid="job-attempts" { (job.attempts) " of " (job.max_attempts) }
            dt { "priority" } dd data-testid="job-priority" { "P" (job.priority) }
            dt { "run after" } dd data-testid="job-run-after" { (at(job.run_after)) }
            @if let Some(c) = &job.correlation_id { dt { "correlation id" } dd {
                a href={"/dashboard/jobs?correlation_id=" (super::overview::urlencode(c))} { (c) } } }
            @if let Some(s) = &job.stage { dt { "stage" } dd { (s) } }
            @if let Some(p) = job.progress { dt { "progress" } dd { progress max="100" value=(p) { (p) "%" } " " (format!("{p:.0}%")) } }
            @if let Some(w) = &job.locked_by { dt { "worker" } dd { code { (w) } } }
            dt { "created" } dd { (at(job.created_at)) }
            @if let Some(t) = job.started_at { dt { "started" } dd { (at(t)) } }
            @if let Some(t) = job.completed_at { dt { "finished" } dd { (at(t)) } }
            @if let Some(i) = &job.initiated_by { dt { "initiated by" } dd { (i) } }
        }
    }
}

pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(raw): Path<String>,
) -> Result<Response, DashboardError> {
    let Some(id) = parse_id(&raw) else {
        return Ok(viewer.not_found(Nav::Jobs, "That is not a job id."));
    };
    let tenant = viewer.tenant().to_owned();
    let job = state.store.get(&tenant, id).await?;
    let events = match job {
        Some(_) => state.store.timeline(Some(&tenant), id).await?,
        None => None,
    };
    let (Some(job), Some(events)) = (job, events) else {
        return Ok(viewer.not_found(Nav::Jobs, &format!("No job {id}.")));
    };
    let job = viewer.caller.view_job(job);
    let events = viewer.caller.view_events(events);
    let hidden = events.len().saturating_sub(TIMELINE_HEAD + TIMELINE_TAIL);
    let can_cancel = viewer.can_act() && job.status.can_cancel();
    let can_retry = viewer.can_act() && job.status.can_retry();
    let main = html! {
        (details(&job))
        @if can_cancel || can_retry {
            div .actions {
                @if can_cancel {
                    (action_button(&viewer, &format!("/dashboard/jobs/{id}/cancel"), "cancel-button", "Cancel", "danger",
                        Some("Cancel this job?")))
                }
                @if can_retry {
                    (action_button(&viewer, &format!("/dashboard/jobs/{id}/retry"), "retry-button", "Retry", "",
                        Some("Retry this job?")))
                }
            }
        }
        h2 { "Payload" }
        (document("job-payload", &job.payload, job.id))
        @if let Some(r) = &job.result {
            h2 { "Result" }
            (document("job-result", r, job.id))
        }
        @if let Some(uri) = &job.result_uri {
            p { "Result URI: " code { (uri) } }
        }
        @if job.error_code.is_some() || job.failure_reason.is_some() {
            h2 { "Error" }
            div .card data-testid="job-error" {
                @if let Some(c) = &job.error_code { p { code { (c) } } }
                @if let Some(m) = &job.failure_reason { p { (cut_text(m, FAILURE_REASON_CHARS)) } }
            }
        }
        h2 { "Timeline" }
        ol .timeline data-testid="timeline" {
            @for (i, e) in events.iter().enumerate().filter(|(i, _)| *i < TIMELINE_HEAD || *i >= TIMELINE_HEAD + hidden) {
                @if hidden > 0 && i == TIMELINE_HEAD + hidden {
                    li .hint data-testid="timeline-cut" {
                        (hidden) " events not shown; all of them: " code { "GET /v1/jobs/" (id) "/events" }
                    }
                }
                li data-event=(e.event) {
                    strong { (e.event) }
                    @if let (Some(f), Some(t)) = (e.from_status, e.to_status) { " " (f) " → " (t) }
                    @else if let Some(t) = e.to_status { " → " (t) }
                    div .meta {
                        time datetime=(e.at.to_rfc3339()) { (at(e.at)) }
                        " · " span .actor { (e.actor.as_deref().unwrap_or("—")) }
                        @if let Some(a) = e.attempt { " · attempt " (a) }
                    }
                    @if let Some(d) = &e.detail { @if !d.is_null() { code .detail { (shown(d, 2048).0) } } }
                }
            }
        }
    };
    Ok(viewer.page(&format!("Job {}", job.job_type), Nav::Jobs, html! {}, main))
}

/// What a refused action says on the page it came back to.
fn refusal(e: StoreError) -> Result<Flash, DashboardError> {
    match e {
        StoreError::InvalidTransition { status, action, .. } => Ok(Flash::Refused(format!(
            "The job is {status}: cannot {action} it."
        ))),
        other => Err(other.into()),
    }
}

/// The job's actions, `POST /dashboard/jobs/{id}/cancel|retry`: CSRF
/// first, then the admin scope, then the API's own calls for the viewer's
/// tenant (another tenant's job is not found).
pub async fn act(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((raw, action)): Path<(String, String)>,
    body: Body,
) -> Result<Response, DashboardError> {
    let form = Form::read(body).await?;
    check_csrf(&headers, &form, &viewer.csrf)?;
    viewer.require_admin()?;
    let Some(id) = parse_id(&raw) else {
        return Ok(viewer.not_found(Nav::Jobs, "That is not a job id."));
    };
    let tenant = viewer.tenant();
    let actor = viewer.caller.actor();
    let outcome = match action.as_str() {
        "cancel" => state
            .store
            .cancel(Some(tenant), id, &actor)
            .await
            .map(|_| "cancelled"),
        "retry" => state
            .enqueuer
            .retry(Some(tenant), id, &actor, None)
            .await
            .map(|_| "back in the queue"),
        _ => return Ok(viewer.not_found(Nav::Jobs, "No such action.")),
    };
    let flash = match outcome {
        Ok(done) => Flash::Done(format!("Job {id}: {done}.")),
        Err(StoreError::NotFound(_)) => {
            return Ok(viewer.not_found(Nav::Jobs, &format!("No job {id}.")));
        }
        Err(e) => refusal(e)?,
    };
    Ok(redirect_with(
        &form.back_or(&format!("/dashboard/jobs/{id}")),
        &flash,
    ))
}
