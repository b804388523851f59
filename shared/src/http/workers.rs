//! `GET /v1/workers` and `POST /v1/workers/{id}/pause|resume|drain`: the
//! deployment's workers. They serve every tenant, so only the operators'
//! tenant (`default`, the tenant of `JOBLINE_ADMIN_KEY`) with the admin scope
//! may see or steer them.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::{ApiError, AppState, Caller};
use crate::store::workers::WorkerCommand;

/// The operators' tenant: the only one that may see and steer workers.
pub const OPERATOR_TENANT: &str = "default";

fn require_operator(caller: &Caller) -> Result<(), ApiError> {
    if caller.require("admin")? != OPERATOR_TENANT {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "forbidden",
            "workers are shared by every tenant: only an admin key of tenant 'default' may see or steer them",
        ));
    }
    Ok(())
}

pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    require_operator(&caller)?;
    let workers = state.store.workers(crate::store::WORKER_GONE_AFTER).await?;
    Ok(Json(json!({ "workers": workers })))
}

async fn steer(
    state: &AppState,
    caller: &Caller,
    id: &str,
    command: WorkerCommand,
) -> Result<Json<Value>, ApiError> {
    // Steering is as strict as listing: a worker serves every tenant.
    require_operator(caller)?;
    if !state.store.steer_worker(id, command).await? {
        return Err(ApiError::not_found(format!("worker {id:?} not found")));
    }
    tracing::info!(worker = id, command = command.as_str(), actor = %caller.actor(), "worker steered");
    Ok(Json(json!({ "id": id, "desired_state": command.as_str() })))
}

pub async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    steer(&state, &caller, &id, WorkerCommand::Paused).await
}

pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    steer(&state, &caller, &id, WorkerCommand::Running).await
}

pub async fn drain(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    steer(&state, &caller, &id, WorkerCommand::Draining).await
}
