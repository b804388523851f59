//! Logging: one subscriber per process, JSON by default (CloudWatch-friendly),
//! `pretty` for people; with `SENTRY_DSN`, errors to Sentry too
//! ([`sentry`](self::sentry)).

pub mod sentry;

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::{Config, LogFormat};

pub use self::sentry::REPORT;

/// What a process keeps while it runs: dropping it sends what Sentry still
/// has queued (for up to two seconds).
#[must_use = "keep it for the life of the process: dropping it stops error reporting"]
pub struct Telemetry {
    sentry: Option<::sentry::ClientInitGuard>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("sentry", &self.sentry.is_some())
            .finish()
    }
}

impl Telemetry {
    /// Sends what is queued for Sentry, waiting at most `timeout`; `true`
    /// when everything went (or nothing is configured).
    pub fn flush(&self, timeout: std::time::Duration) -> bool {
        self.sentry.as_ref().is_none_or(|g| g.flush(Some(timeout)))
    }
}

/// How long a Lambda invocation waits at its end for Sentry to take what it
/// queued ([`flush`]): the environment may freeze, or be reclaimed, after.
pub const LAMBDA_FLUSH: std::time::Duration = std::time::Duration::from_millis(500);

/// Sends what this process queued for Sentry, waiting at most `timeout`
/// (nothing to wait for without `SENTRY_DSN`, and a round trip through an
/// empty queue costs microseconds). A Lambda function calls it at the end of
/// each invocation.
pub fn flush(timeout: std::time::Duration) -> bool {
    ::sentry::Hub::current()
        .client()
        .is_none_or(|c| c.flush(Some(timeout)))
}

/// Installs the global subscriber (a second call installs nothing) and, with
/// `SENTRY_DSN`, the Sentry client and its panic hook.
pub fn init(config: &Config) -> Telemetry {
    let filter = EnvFilter::try_new(&config.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .compact()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
    };
    let guard = config
        .sentry_dsn
        .as_deref()
        .map(|dsn| self::sentry::init(dsn, config.sentry_environment.as_deref()));
    // Each with a filter of its own, so the debug events of dependencies
    // stay disabled at their call sites.
    let (errors, breadcrumbs) = match guard {
        None => (None, None),
        Some(_) => (
            Some(
                ::sentry::integrations::tracing::ErrorLayer::new()
                    .with_filter(tracing_subscriber::filter::filter_fn(self::sentry::reported)),
            ),
            Some(
                ::sentry::integrations::tracing::BreadcrumbLayer::new()
                    .with_filter(tracing_subscriber::filter::filter_fn(self::sentry::breadcrumb)),
            ),
        ),
    };
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(errors)
        .with(breadcrumbs)
        .try_init();
    Telemetry { sentry: guard }
}

/// An error with its causes, `"outer: inner: innermost"`, skipping a cause
/// whose text the message already holds (many libraries repeat it). The one
/// copy of this walk: reqwest, deadpool and tokio-postgres leave causes out
/// of their own messages.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
