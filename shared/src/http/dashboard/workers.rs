//! `GET /dashboard/workers` (the operators' tenant only, as the API's
//! workers routes; another tenant gets the not-found page): each worker's
//! state, last beat and jobs in flight; `POST
//! /dashboard/workers/{id}/pause|resume|drain` steer one (admin scope).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::html;

use super::DashboardError;
use super::forms::{Flash, Form, check_csrf, redirect_with};
use super::job::action_button;
use super::layout::{Nav, ago, at};
use super::session::Viewer;
use crate::http::AppState;
use crate::store::workers::WorkerCommand;

pub async fn page(State(state): State<AppState>, viewer: Viewer) -> Result<Response, DashboardError> {
    if !viewer.is_operator() {
        return Ok(viewer.not_found(Nav::Workers, "No such page."));
    }
    let workers = state.store.workers(crate::store::WORKER_GONE_AFTER).await?;
    let act = viewer.can_act();
    let main = html! {
        div .scroll {
            table {
                thead { tr { th { "worker" } th { "state" } th { "asked" } th { "last seen" } th { "in flight" } th .wide { "done / failed" } th .wide { "started" } th {} } }
                tbody {
                    @for w in &workers {
                        @let id = &w.worker.id;
                        @let path = format!("/dashboard/workers/{}", super::overview::urlencode(id));
                        tr data-testid="worker-row" data-worker-id=(id) {
                            td { code { (id) } br; span .hint { (w.worker.host) " · " (w.worker.version) } }
                            td data-testid="worker-state" { (w.worker.state) }
                            td { (w.desired_state) }
                            td { (ago(w.last_seen_seconds_ago)) " ago" }
                            td data-testid="worker-in-flight" { (w.worker.in_flight) "/" (w.worker.concurrency) }
                            td .wide { (w.worker.processed) " / " (w.worker.failed) }
                            td .wide { (at(w.worker.started_at)) }
                            td { @if act && w.worker.state != "stopped" {
                                (action_button(&viewer, &format!("{path}/pause"), "pause-button", "Pause", "quiet", None))
                                " "
                                (action_button(&viewer, &format!("{path}/resume"), "resume-button", "Resume", "quiet", None))
                                " "
                                (action_button(&viewer, &format!("{path}/drain"), "drain-button", "Drain", "danger",
                                    Some("Drain this worker? It finishes its jobs, then exits.")))
                            } }
                        }
                    }
                    @if workers.is_empty() { tr { td colspan="8" { "No worker has registered." } } }
                }
            }
        }
    };
    Ok(viewer.page("Workers", Nav::Workers, html! {}, main))
}

pub async fn steer(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Body,
) -> Result<Response, DashboardError> {
    let form = Form::read(body).await?;
    check_csrf(&headers, &form, &viewer.csrf)?;
    if !viewer.is_operator() {
        return Ok(viewer.not_found(Nav::Workers, "No such page."));
    }
    viewer.require_admin()?;
    let command = match action.as_str() {
        "pause" => WorkerCommand::Paused,
        "resume" => WorkerCommand::Running,
        "drain" => WorkerCommand::Draining,
        _ => return Ok(viewer.not_found(Nav::Workers, "No such action.")),
    };
    let flash = if state.store.steer_worker(&id, command).await? {
        tracing::info!(worker = %id, command = command.as_str(), actor = %viewer.caller.actor(), "worker steered from the dashboard");
        Flash::Done(format!("Worker {id}: asked to be {}.", command.as_str()))
    } else {
        Flash::Refused(format!("No worker {id}."))
    };
    Ok(redirect_with(&form.back_or("/dashboard/workers"), &flash))
}
