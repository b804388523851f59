//! Reading request bodies and parameters into checked values, with errors
//! that name the field.

use axum::body::Body;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::ApiError;

/// Reads at most `limit` bytes and parses them as a JSON object. An empty
/// body reads as `{}`.
pub async fn json_object(body: Body, limit: usize) -> Result<Map<String, Value>, ApiError> {
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::too_large(limit))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => match nul_at(&map, String::new()) {
            None => Ok(map),
            Some(path) => Err(ApiError::validation(
                &path,
                "must not contain the NUL character (\\u0000): Postgres cannot store it",
            )),
        },
        Ok(_) => Err(ApiError::validation("body", "must be a JSON object")),
        Err(e) => Err(ApiError::invalid_json(e)),
    }
}

/// Where in a JSON object a string (a value or a key) holds `\0`, as a
/// field path (`payload.scenes[2].title`); `None` when nowhere.
fn nul_at(map: &Map<String, Value>, prefix: String) -> Option<String> {
    fn walk(value: &Value, path: String) -> Option<String> {
        match value {
            Value::String(s) if s.contains('\0') => Some(path),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, v)| walk(v, format!("{path}[{i}]"))),
            Value::Object(map) => nul_at(map, format!("{path}.")),
            _ => None,
        }
    }
    map.iter().find_map(|(key, value)| {
        let path = format!("{prefix}{key}");
        if key.contains('\0') {
            Some(path)
        } else {
            walk(value, path)
        }
    })
}

/// A job id from the path; anything that is not a UUID is simply not found.
pub fn job_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(raw).map_err(|_| ApiError::not_found(format!("job {raw:?} not found")))
}

/// Field-by-field reading of a JSON object; `prefix` names it in errors
/// (e.g. `jobs[3].`).
#[derive(Debug)]
pub struct Fields<'a> {
    map: &'a Map<String, Value>,
    prefix: String,
}

impl<'a> Fields<'a> {
    pub fn new(map: &'a Map<String, Value>, prefix: impl Into<String>) -> Self {
        Self {
            map,
            prefix: prefix.into(),
        }
    }

    pub fn name(&self, field: &str) -> String {
        format!("{}{field}", self.prefix)
    }

    /// Refuses any field not in `known`.
    pub fn only(&self, known: &[&str]) -> Result<(), ApiError> {
        match self.map.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(ApiError::validation(
                &self.name(k),
                format!("unknown field (expected one of: {})", known.join(", ")),
            )),
            None => Ok(()),
        }
    }

    fn get(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    pub fn value(&self, field: &str) -> Option<&'a Value> {
        self.get(field)
    }

    pub fn string(&self, field: &str, max_len: usize) -> Result<Option<String>, ApiError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => {
                Err(ApiError::validation(&self.name(field), "must not be empty"))
            }
            Some(Value::String(s)) if s.chars().count() > max_len => Err(ApiError::validation(
                &self.name(field),
                format!("must be at most {max_len} characters"),
            )),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::validation(&self.name(field), "must be a string")),
        }
    }

    pub fn required_string(&self, field: &str, max_len: usize) -> Result<String, ApiError> {
        self.string(field, max_len)?
            .ok_or_else(|| ApiError::validation(&self.name(field), "is required"))
    }

    pub fn integer(&self, field: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => match v.as_i64() {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                Some(_) => Err(ApiError::validation(
                    &self.name(field),
                    format!("must be between {min} and {max}"),
                )),
                None => Err(ApiError::validation(&self.name(field), "must be a whole number")),
            },
        }
    }

    /// A priority: 0–3, or `"P0"`–`"P3"`.
    pub fn priority(&self, field: &str) -> Result<Option<crate::domain::Priority>, ApiError> {
        let refuse = || ApiError::validation(&self.name(field), "must be 0 to 3 or \"P0\" to \"P3\"");
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => crate::domain::Priority::parse_label(s)
                .map(Some)
                .ok_or_else(refuse),
            Some(v) => v
                .as_i64()
                .and_then(crate::domain::Priority::new)
                .map(Some)
                .ok_or_else(refuse),
        }
    }

    pub fn timestamp(&self, field: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| Some(t.to_utc()))
                .map_err(|_| ApiError::validation(&self.name(field), "must be an RFC 3339 timestamp")),
            Some(_) => Err(ApiError::validation(
                &self.name(field),
                "must be an RFC 3339 timestamp string",
            )),
        }
    }

    pub fn uuids(&self, field: &str, max: usize) -> Result<Option<Vec<Uuid>>, ApiError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Array(items)) if items.len() <= max => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_str().and_then(|s| Uuid::try_parse(s).ok()).ok_or_else(|| {
                        ApiError::validation(&format!("{}[{i}]", self.name(field)), "must be a UUID")
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(Value::Array(_)) => Err(ApiError::validation(
                &self.name(field),
                format!("at most {max} items"),
            )),
            Some(_) => Err(ApiError::validation(
                &self.name(field),
                "must be an array of UUIDs",
            )),
        }
    }
}
