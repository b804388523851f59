//! The job handlers jobline ships, apart from the engine that runs them
//! ([`crate::worker`] knows only the [`JobHandler`](crate::worker::JobHandler)
//! trait and the [`Registry`]):
//!
//! - [`builtin`]: `noop`, `sleep`, `fail` (drills, benchmarks, tests);
//! - [`webhook`]: POST a payload to a URL, signed, behind an SSRF guard;
//! - [`story`]: the seed use case, a story script from a chat model.
//!
//! Each handler's settings are a section of [`crate::Config`], read once at
//! start with the rest.

pub mod builtin;
pub mod story;
pub mod webhook;

use crate::Config;
use crate::worker::Registry;

/// `noop`, `sleep` and `fail`.
pub fn builtins() -> Registry {
    let mut r = Registry::new();
    r.register("noop", builtin::Noop);
    r.register("sleep", builtin::Sleep);
    r.register("fail", builtin::Fail);
    r
}

/// What a deployment runs: the built-ins plus `webhook` and `story_script`,
/// configured from `config`'s sections.
pub fn production(config: &Config) -> Registry {
    let mut r = builtins();
    r.register(
        webhook::JOB_TYPE,
        webhook::WebhookHandler::new(config.webhook.clone()),
    );
    r.register(
        story::JOB_TYPE,
        story::StoryScriptHandler::new(config.story.clone()),
    );
    r
}
