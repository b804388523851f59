//! Error tracking: with `SENTRY_DSN` set, errors reach Sentry through the
//! `sentry` crate's tracing integration. What is reported:
//!
//! - every `ERROR` event of jobline (a 500's logged detail, a completion that
//!   could not be recorded, ...);
//! - events of the [`REPORT`] target: a handler's failed attempt (its code,
//!   kind, job type and ids; never its message, which may quote the job's
//!   payload, nor the payload) and a 503;
//! - panics, from a panic hook (a handler's panic is also a failed attempt).
//!
//! Other `WARN` events of jobline become breadcrumbs (not `INFO`: the log's
//! "attempt failed" line carries the handler's message). The
//! envelope goes out on a thread of its own through the reqwest client
//! jobline already has (no second HTTP stack); `send_default_pii` stays off,
//! and no request bodies, headers or payloads are attached.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sentry::{ClientInitGuard, Envelope, Transport, TransportFactory, TransportOptions};
use tracing::{Level, Metadata};

/// The tracing target of events that are reported although not errors.
pub const REPORT: &str = "jobline::report";

/// Envelopes waiting to go out at most; beyond, new ones are dropped.
const QUEUE: usize = 100;
/// Envelopes a process sends per minute at most (an outage fails every
/// attempt: Sentry needs the first ones, not thousands); the rest are
/// dropped and counted, one line on stderr per minute says how many.
const PER_MINUTE: u32 = 60;
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts the client for `dsn` (checked when the configuration was read)
/// and the panic hook.
pub(super) fn init(dsn: &str, environment: Option<&str>) -> ClientInitGuard {
    let mut options = sentry::ClientOptions::default();
    options.dsn = dsn.parse().ok();
    options.release = Some(concat!("jobline@", env!("CARGO_PKG_VERSION")).into());
    options.environment = environment.map(|e| e.to_owned().into());
    options.send_default_pii = false;
    options.transport = Some(Arc::new(Factory));
    let guard = sentry::init(options);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_owned());
        sentry::capture_message(&format!("panicked{location}: {message}"), sentry::Level::Fatal);
        previous(info);
    }));
    guard
}

/// Which tracing events become Sentry events (the rest of jobline's, at
/// `INFO` and above, become breadcrumbs).
pub(super) fn reported(md: &Metadata<'_>) -> bool {
    // jobline's own only: an error a dependency logs on the transport
    // thread while sending must not become an event to send.
    md.target().starts_with("jobline") && (*md.level() == Level::ERROR || md.target() == REPORT)
}

/// Which tracing events become breadcrumbs on the next event: jobline's
/// warnings. Not `INFO`: "attempt failed" carries the handler's message,
/// which may quote the payload.
pub(super) fn breadcrumb(md: &Metadata<'_>) -> bool {
    md.target().starts_with("jobline") && *md.level() == Level::WARN && !reported(md)
}

struct Factory;

impl TransportFactory for Factory {
    fn create_transport_with_options(&self, options: TransportOptions) -> Arc<dyn Transport> {
        let (queue, jobs) = std::sync::mpsc::sync_channel(QUEUE);
        let url = options.dsn.envelope_api_url().to_string();
        let auth = options.dsn.to_auth(Some(&options.user_agent)).to_string();
        let paused_until = Arc::new(AtomicU64::new(0));
        let pause = paused_until.clone();
        let spawned = std::thread::Builder::new()
            .name("jobline-sentry".into())
            .spawn(move || send_all(&jobs, &url, &auth, &pause));
        if let Err(e) = spawned {
            eprintln!("jobline: sentry transport thread did not start: {e}");
        }
        Arc::new(Http {
            queue,
            paused_until,
            minute: Mutex::new(Minute {
                started: Instant::now(),
                sent: 0,
                dropped: 0,
            }),
        })
    }
}

enum Job {
    Send(Box<Envelope>),
    Flush(SyncSender<()>),
}

struct Http {
    queue: SyncSender<Job>,
    /// Seconds since the epoch until which Sentry asked us to wait (429).
    paused_until: Arc<AtomicU64>,
    minute: Mutex<Minute>,
}

/// What this minute sent and dropped.
struct Minute {
    started: Instant,
    sent: u32,
    dropped: u32,
}

fn epoch_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Transport for Http {
    fn send_envelope(&self, envelope: Envelope) {
        let Ok(mut minute) = self.minute.lock() else {
            return;
        };
        if minute.started.elapsed() >= Duration::from_secs(60) {
            if minute.dropped > 0 {
                eprintln!(
                    "jobline: {} sentry event(s) dropped in the last minute (at most {PER_MINUTE} a minute, or sentry asked to wait)",
                    minute.dropped
                );
            }
            *minute = Minute {
                started: Instant::now(),
                sent: 0,
                dropped: 0,
            };
        }
        let paused = epoch_seconds() < self.paused_until.load(Ordering::Relaxed);
        if paused || minute.sent >= PER_MINUTE || self.queue.try_send(Job::Send(Box::new(envelope))).is_err()
        {
            minute.dropped += 1;
        } else {
            minute.sent += 1;
        }
    }

    fn flush(&self, timeout: Duration) -> bool {
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        self.queue.try_send(Job::Flush(done)).is_ok() && wait.recv_timeout(timeout).is_ok()
    }
}

/// The transport thread: its own small runtime and client, one envelope at
/// a time, in order (a flush answers once what came before it is sent).
/// Failures go to stderr, never to tracing (which would report them again).
fn send_all(jobs: &Receiver<Job>, url: &str, auth: &str, paused_until: &AtomicU64) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return eprintln!("jobline: sentry transport runtime did not start: {e}"),
    };
    // The client's connector needs the runtime's reactor while it is built.
    let _inside = runtime.enter();
    let http = match reqwest::Client::builder().timeout(SEND_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => return eprintln!("jobline: sentry transport client did not start: {e}"),
    };
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Flush(done) => {
                let _ = done.try_send(());
            }
            Job::Send(envelope) => {
                let mut body = Vec::new();
                if envelope.to_writer(&mut body).is_err() {
                    continue;
                }
                let sent = runtime.block_on(
                    http.post(url)
                        .header("X-Sentry-Auth", auth)
                        .header("Content-Type", "application/x-sentry-envelope")
                        .body(body)
                        .send(),
                );
                match sent {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) if r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS => {
                        // Sentry's rate limit: send nothing until it says.
                        let wait = r
                            .headers()
                            .get(reqwest::header::RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.trim().parse::<u64>().ok())
                            .unwrap_or(60)
                            .min(3600);
                        paused_until.store(epoch_seconds() + wait, Ordering::Relaxed);
                    }
                    Ok(r) => eprintln!("jobline: sentry refused an event: {}", r.status()),
                    Err(e) => eprintln!("jobline: could not send an event to sentry: {}", e.without_url()),
                }
            }
        }
    }
}
