//! Handlers by job type.

use std::collections::HashMap;
use std::sync::Arc;

use super::builtin::{Fail, Noop, Sleep};
use super::handler::JobHandler;
use super::story::{self, StoryScriptHandler};
use super::webhook::{self, WebhookHandler};
use crate::config::ConfigError;

#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<String, Arc<dyn JobHandler>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut types: Vec<&String> = self.handlers.keys().collect();
        types.sort();
        f.debug_struct("Registry").field("types", &types).finish()
    }
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// `noop`, `sleep` and `fail`.
    pub fn with_builtins() -> Self {
        let mut r = Self::new();
        r.register("noop", Noop);
        r.register("sleep", Sleep);
        r.register("fail", Fail);
        r
    }

    /// The built-ins plus `webhook` ([`WebhookHandler`]) and `story_script`
    /// ([`StoryScriptHandler`]), both configured from the environment.
    ///
    /// # Panics
    ///
    /// When a handler variable holds an invalid value; the message names the
    /// variable. [`Registry::try_with_production_handlers`] returns the error.
    pub fn with_production_handlers() -> Self {
        Self::try_with_production_handlers().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Registry::with_production_handlers`], or the configuration error.
    pub fn try_with_production_handlers() -> Result<Self, ConfigError> {
        let mut r = Self::with_builtins();
        r.register(webhook::JOB_TYPE, WebhookHandler::from_env()?);
        r.register(story::JOB_TYPE, StoryScriptHandler::from_env()?);
        Ok(r)
    }

    pub fn register(&mut self, job_type: impl Into<String>, handler: impl JobHandler) -> &mut Self {
        self.handlers.insert(job_type.into(), Arc::new(handler));
        self
    }

    pub fn get(&self, job_type: &str) -> Option<Arc<dyn JobHandler>> {
        self.handlers.get(job_type).cloned()
    }

    /// The registered types, sorted.
    pub fn types(&self) -> Vec<String> {
        let mut t: Vec<String> = self.handlers.keys().cloned().collect();
        t.sort();
        t
    }
}
