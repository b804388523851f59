//! `POST /api/generation/story-script`: the AI story use case, a domain
//! route built on the same core. One `story_script` job per call, grouped
//! under a new story id.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use serde_json::{Value, json};
use uuid::Uuid;

use super::body::{Fields, json_object};
use super::{ApiError, AppState, Caller};
use crate::NewJob;

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let tenant = caller.require("jobs:write")?;
    let map = json_object(body, state.settings.max_body_bytes).await?;
    let f = Fields::new(&map, "");
    f.only(&["theme", "tone", "ageRange", "initiatedBy"])?;
    let theme = f.required_string("theme", 500)?;
    let tone = f.string("tone", 100)?;
    let age_range = f.string("ageRange", 50)?;
    let initiated_by = f.string("initiatedBy", 200)?;
    let story_id = Uuid::new_v4();
    let mut new = NewJob::new(
        crate::handlers::story::JOB_TYPE,
        json!({ "theme": theme, "tone": tone, "ageRange": age_range, "storyId": story_id }),
    )
    .correlation_id(story_id.to_string());
    let actor = caller.actor();
    // `initiatedBy` is data (who the application says asked); the timeline's
    // actor is always the caller's key.
    new.initiated_by = Some(initiated_by.unwrap_or_else(|| actor.clone()));
    let created = state
        .enqueuer
        .enqueue(tenant, &actor, new)
        .await
        // The body has no type field: the refusal names the job type.
        .map_err(|e| ApiError::from_enqueue(e, |_| "story_script".into()))?;
    Ok(Json(json!({
        "ok": true,
        "storyId": story_id,
        "jobIds": [created.job.id],
    })))
}
