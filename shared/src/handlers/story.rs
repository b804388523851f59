//! The built-in `story_script` handler: the seed use case, an AI text
//! generation job.
//!
//! Payload: `{"theme": "...", "tone": "...", "ageRange": "...", "storyId": "..."}`
//! (`theme` required; `tone` and `ageRange` optional; `storyId` is carried
//! into the result). The handler calls an OpenAI-compatible chat
//! completions endpoint, `POST {OPENAI_BASE_URL}/chat/completions` with
//! `Authorization: Bearer {OPENAI_API_KEY}`, a system message that sets the
//! task and a user message with the theme, tone and age range, and completes
//! with
//!
//! ```json
//! {"storyId": "...", "script": "<choices[0].message.content>", "model": "<the model that answered>",
//!  "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}, "finishReason": "stop"}
//! ```
//!
//! (`usage` and `finishReason` are `null` when the reply has none). Stages:
//! `prompting`, `generating`, `done`.
//!
//! Failures:
//!
//! | what | code | kind |
//! |---|---|---|
//! | no `OPENAI_API_KEY` | `NOT_CONFIGURED` | permanent |
//! | no `theme` (or a field of the wrong type or too long) | `BAD_PAYLOAD` | permanent |
//! | 429 | `RATE_LIMITED` | retryable |
//! | 5xx, 408, 409 | `HTTP_<code>` | retryable |
//! | other 4xx (400, 401, 403, 404, 422, ...) | `HTTP_<code>` | permanent |
//! | connection errors / no answer within the timeout | `NETWORK` / `TIMEOUT` | retryable |
//! | a reply that is not JSON, has no choices or no content | `BAD_REPLY` | retryable |
//! | the model refused (`message.refusal`) | `REFUSED` | permanent |

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use serde_json::{Value, json};

use crate::config::{ConfigError, Env};
use crate::worker::{HandlerError, HandlerOutput, JobContext, JobHandler};

/// The job type the production registry registers this handler under.
pub const JOB_TYPE: &str = "story_script";

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";
pub const DEFAULT_MAX_TOKENS: u32 = 1500;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Longest payload fields accepted (the API route enforces the same or less).
const MAX_THEME_CHARS: usize = 500;
const MAX_TONE_CHARS: usize = 100;
const MAX_AGE_RANGE_CHARS: usize = 50;

const SYSTEM_PROMPT: &str = "You are a children's story writer. Write an original story script meant to be \
read aloud: a title line, then short paragraphs, with vocabulary, themes and length suited to the \
listener's age range. Keep it kind and safe for that age: no graphic violence, no frightening \
detail beyond what the age range can handle, no brand names. Reply with the script only.";

/// How the `story_script` handler reaches its model.
#[derive(Clone)]
pub struct StoryConfig {
    /// `OPENAI_API_KEY` (default none: every job fails `NOT_CONFIGURED`).
    pub api_key: Option<String>,
    /// `OPENAI_BASE_URL` (default `https://api.openai.com/v1`), without the
    /// trailing `/chat/completions`.
    pub base_url: String,
    /// `JOBLINE_STORY_MODEL` (default `gpt-4o-mini`).
    pub model: String,
    /// `JOBLINE_STORY_MAX_TOKENS` (default 1500): the reply's `max_tokens`.
    pub max_tokens: u32,
    /// `JOBLINE_STORY_TIMEOUT_SECONDS` (default 120): for one request.
    pub timeout: Duration,
}

impl fmt::Debug for StoryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoryConfig")
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("max_tokens", &self.max_tokens)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Default for StoryConfig {
    fn default() -> Self {
        Self::new(DEFAULT_BASE_URL, None)
    }
}

impl StoryConfig {
    /// An endpoint and key, every other setting at its default.
    pub fn new(base_url: impl Into<String>, api_key: Option<String>) -> Self {
        Self {
            api_key,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            model: DEFAULT_MODEL.to_owned(),
            max_tokens: DEFAULT_MAX_TOKENS,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }

    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = max_tokens;
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// From any variable lookup (tests pass a map); processes read it as
    /// part of [`crate::Config`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::read(&Env::new(&lookup))
    }

    /// Reads `OPENAI_*` and `JOBLINE_STORY_*` (as part of [`crate::Config`]).
    pub fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let base_url = match env.get("OPENAI_BASE_URL") {
            Some(raw) => {
                let url = reqwest::Url::parse(&raw)
                    .map_err(|e| ConfigError::new("OPENAI_BASE_URL", &raw, e.to_string()))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(ConfigError::new(
                        "OPENAI_BASE_URL",
                        &raw,
                        "must be an http(s) URL",
                    ));
                }
                raw
            }
            None => DEFAULT_BASE_URL.to_owned(),
        };
        let mut config = Self::new(base_url, env.get("OPENAI_API_KEY"));
        if let Some(model) = env.get("JOBLINE_STORY_MODEL") {
            config.model = model;
        }
        config.max_tokens = env.number("JOBLINE_STORY_MAX_TOKENS", config.max_tokens, 1, 1_000_000)?;
        config.timeout =
            env.seconds_up_to("JOBLINE_STORY_TIMEOUT_SECONDS", config.timeout.as_secs(), 3600)?;
        Ok(config)
    }

    fn endpoint(&self) -> String {
        format!("{}/chat/completions", self.base_url)
    }
}

/// Writes a story script with a chat-completions model; see the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct StoryScriptHandler {
    config: StoryConfig,
    http: reqwest::Client,
}

impl StoryScriptHandler {
    pub fn new(config: StoryConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("jobline/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self { config, http }
    }

    pub fn config(&self) -> &StoryConfig {
        &self.config
    }

    async fn generate(&self, ctx: &JobContext) -> Result<HandlerOutput, HandlerError> {
        ctx.report(Some("prompting"), Some(0.0));
        let Some(api_key) = self.config.api_key.as_deref() else {
            return Err(HandlerError::permanent(
                "NOT_CONFIGURED",
                "OPENAI_API_KEY is not set: the story_script handler cannot call a model",
            ));
        };
        let prompt = StoryPrompt::from_payload(&ctx.job.payload)?;
        let request = json!({
            "model": self.config.model,
            "messages": [
                { "role": "system", "content": SYSTEM_PROMPT },
                { "role": "user", "content": prompt.user_message() },
            ],
            "max_tokens": self.config.max_tokens,
        });

        ctx.report(Some("generating"), Some(10.0));
        let response = self
            .http
            .post(self.config.endpoint())
            .bearer_auth(api_key)
            .json(&request)
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.map_err(|e| self.transport_error(&e))?;
        if !status.is_success() {
            return Err(status_error(status, &text, retry_after.as_deref()));
        }
        let reply: Value = serde_json::from_str(&text).map_err(|e| {
            HandlerError::retryable(
                "BAD_REPLY",
                format!("the reply is not JSON ({e}): {}", clip(&text, 300)),
            )
        })?;
        let choice = reply["choices"]
            .as_array()
            .and_then(|c| c.first())
            .ok_or_else(|| HandlerError::retryable("BAD_REPLY", "the reply has no choices"))?;
        let message = &choice["message"];
        let script = match message["content"].as_str().map(str::trim) {
            Some(s) if !s.is_empty() => s.to_owned(),
            _ => {
                if let Some(refusal) = message["refusal"].as_str() {
                    return Err(HandlerError::permanent(
                        "REFUSED",
                        format!("the model refused: {}", clip(refusal, 500)),
                    ));
                }
                return Err(HandlerError::retryable(
                    "BAD_REPLY",
                    "the reply's first choice has no message content",
                ));
            }
        };
        let model = reply["model"]
            .as_str()
            .unwrap_or(self.config.model.as_str())
            .to_owned();
        ctx.report(Some("done"), Some(100.0));
        Ok(HandlerOutput::json(json!({
            "storyId": ctx.job.payload.get("storyId").cloned().unwrap_or(Value::Null),
            "script": script,
            "model": model,
            "usage": reply.get("usage").cloned().unwrap_or(Value::Null),
            "finishReason": choice.get("finish_reason").cloned().unwrap_or(Value::Null),
        })))
    }

    fn transport_error(&self, e: &reqwest::Error) -> HandlerError {
        if e.is_timeout() {
            HandlerError::retryable(
                "TIMEOUT",
                format!("the model did not answer within {:?}", self.config.timeout),
            )
        } else {
            HandlerError::retryable(
                "NETWORK",
                format!(
                    "calling {} failed: {}",
                    self.config.endpoint(),
                    crate::telemetry::error_chain(e)
                ),
            )
        }
    }
}

/// What the payload asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StoryPrompt {
    theme: String,
    tone: Option<String>,
    age_range: Option<String>,
}

impl StoryPrompt {
    fn from_payload(payload: &Value) -> Result<Self, HandlerError> {
        let theme = text_field(payload, "theme", MAX_THEME_CHARS)?
            .ok_or_else(|| HandlerError::permanent("BAD_PAYLOAD", "payload.theme is required"))?;
        Ok(Self {
            theme,
            tone: text_field(payload, "tone", MAX_TONE_CHARS)?,
            age_range: text_field(payload, "ageRange", MAX_AGE_RANGE_CHARS)?,
        })
    }

    fn user_message(&self) -> String {
        format!(
            "Write a story script.\nTheme: {}\nTone: {}\nAge range: {}",
            self.theme,
            self.tone.as_deref().unwrap_or("warm and gentle"),
            self.age_range.as_deref().unwrap_or("4-8 years"),
        )
    }
}

/// A non-empty string field (numbers are accepted for `ageRange`-like
/// fields and written out); `None` when absent, null or blank.
fn text_field(payload: &Value, name: &str, max_chars: usize) -> Result<Option<String>, HandlerError> {
    let text = match payload.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => {
            return Err(HandlerError::permanent(
                "BAD_PAYLOAD",
                format!("payload.{name} must be a string"),
            ));
        }
    };
    if text.chars().count() > max_chars {
        return Err(HandlerError::permanent(
            "BAD_PAYLOAD",
            format!("payload.{name} is longer than {max_chars} characters"),
        ));
    }
    Ok((!text.is_empty()).then_some(text))
}

fn status_error(status: StatusCode, body: &str, retry_after: Option<&str>) -> HandlerError {
    let code = status.as_u16();
    // OpenAI-style errors: {"error": {"message": "...", "type": "...", "code": "..."}}.
    let detail = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.to_owned());
    let detail = clip(detail.trim(), 500);
    let message = if detail.is_empty() {
        format!("the model endpoint answered {status}")
    } else {
        format!("the model endpoint answered {status}: {detail}")
    };
    match code {
        429 => HandlerError::retryable(
            "RATE_LIMITED",
            match retry_after {
                Some(after) => format!("{message} (retry after {after})"),
                None => message,
            },
        ),
        408 | 409 => HandlerError::retryable(format!("HTTP_{code}"), message),
        400..=499 => HandlerError::permanent(format!("HTTP_{code}"), message),
        _ => HandlerError::retryable(format!("HTTP_{code}"), message),
    }
}

fn clip(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[async_trait]
impl JobHandler for StoryScriptHandler {
    async fn run(&self, ctx: JobContext) -> Result<HandlerOutput, HandlerError> {
        tokio::select! {
            outcome = self.generate(&ctx) => outcome,
            () = ctx.cancelled() => Err(HandlerError::retryable("CANCELLED", "stopped while the model was writing")),
        }
    }

    /// The request's own timeout, plus room to read the reply.
    fn timeout(&self) -> Duration {
        self.config.timeout + Duration::from_secs(30)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_reads_and_checks_its_variables() {
        let d = StoryConfig::from_lookup(|_| None).expect("defaults");
        assert_eq!(d.base_url, DEFAULT_BASE_URL);
        assert_eq!(d.model, DEFAULT_MODEL);
        assert_eq!(d.max_tokens, DEFAULT_MAX_TOKENS);
        assert_eq!(d.timeout, DEFAULT_TIMEOUT);
        assert!(d.api_key.is_none());

        let vars = [
            ("OPENAI_API_KEY", "sk-test"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:9999/v1/"),
            ("JOBLINE_STORY_MODEL", "llama3"),
            ("JOBLINE_STORY_MAX_TOKENS", "800"),
            ("JOBLINE_STORY_TIMEOUT_SECONDS", "30"),
        ];
        let c =
            StoryConfig::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned()))
                .expect("valid");
        assert_eq!(c.endpoint(), "http://127.0.0.1:9999/v1/chat/completions");
        assert_eq!(
            (c.model.as_str(), c.max_tokens, c.timeout),
            ("llama3", 800, Duration::from_secs(30))
        );
        assert!(!format!("{c:?}").contains("sk-test"), "Debug redacts the key");

        for (var, value) in [
            ("OPENAI_BASE_URL", "nope"),
            ("OPENAI_BASE_URL", "ftp://x/v1"),
            ("JOBLINE_STORY_MAX_TOKENS", "0"),
            ("JOBLINE_STORY_TIMEOUT_SECONDS", "x"),
        ] {
            let err = StoryConfig::from_lookup(|k| (k == var).then(|| value.to_owned())).expect_err(value);
            assert_eq!(err.var, var);
        }
    }

    #[test]
    fn the_prompt_comes_from_the_payload() {
        let p = StoryPrompt::from_payload(&json!({"theme": " dragons ", "tone": "funny", "ageRange": "3-5"}))
            .expect("valid");
        assert_eq!(
            p.user_message(),
            "Write a story script.\nTheme: dragons\nTone: funny\nAge range: 3-5"
        );
        assert!(
            StoryPrompt::from_payload(&json!({"theme": "x"}))
                .expect("valid")
                .user_message()
                .contains("Tone: warm and gentle")
        );
        for bad in [
            json!({}),
            json!({"theme": "  "}),
            json!({"theme": 3, "tone": []}),
            json!({"theme": "x".repeat(501)}),
        ] {
            let err = StoryPrompt::from_payload(&bad).expect_err("bad payload");
            assert!(matches!(err, HandlerError::Permanent { ref code, .. } if code == "BAD_PAYLOAD"));
        }
    }

    #[test]
    fn statuses_map_to_retryable_or_permanent() {
        let code = |s: u16| match status_error(StatusCode::from_u16(s).expect("status"), "", None) {
            HandlerError::Retryable { code, .. } => format!("retry {code}"),
            HandlerError::Permanent { code, .. } => format!("stop {code}"),
        };
        assert_eq!(code(429), "retry RATE_LIMITED");
        assert_eq!(code(500), "retry HTTP_500");
        assert_eq!(code(503), "retry HTTP_503");
        assert_eq!(code(408), "retry HTTP_408");
        for s in [400, 401, 403, 404, 422] {
            assert_eq!(code(s), format!("stop HTTP_{s}"));
        }
        let err = status_error(
            StatusCode::BAD_REQUEST,
            r#"{"error":{"message":"max_tokens is too large","type":"invalid_request_error"}}"#,
            None,
        );
        assert!(err.to_string().contains("max_tokens is too large"), "{err}");
    }
}
