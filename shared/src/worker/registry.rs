//! Handlers by job type (the handlers themselves live in
//! [`crate::handlers`]).

use std::collections::HashMap;
use std::sync::Arc;

use super::handler::JobHandler;

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
