//! The dashboard: server-rendered HTML pages (maud) at `/dashboard`, one
//! route of the route table ([`super::RouteId::Dashboard`]: served by
//! `jobline serve` and by the `dashboard` Lambda function), over the same
//! store and the same rules as the API: a session made by logging in with
//! an API key (`session`), the key's tenant and scopes, the operators'
//! tenant alone for workers. Every page is a few indexed queries; `#main`
//! reloads itself every 5 s with htmx (vendored, `assets`).
//!
//! One file per page: `overview`, `jobs` (list and go-to), `job` (one job,
//! cancel, retry), `running`, `dead_letter`, `workers`; and per concern:
//! `session` (login, logout, the `Viewer` of a request), `forms` (CSRF,
//! `back`, flash), `layout`, `charts`, `assets`, `error`.

mod assets;
mod charts;
mod dead_letter;
mod error;
mod forms;
mod job;
mod jobs;
mod layout;
mod overview;
mod running;
mod session;
mod workers;

use axum::Router;
use axum::routing::{get, post};

pub use assets::{HTMX_SHA256, HTMX_VERSION};
pub use error::DashboardError;
pub use job::{SHOWN_BYTES, shown};
pub use running::MAX_ROWS as RUNNING_ROWS;
pub use session::SESSION_COOKIE;

use super::AppState;

/// Every page and form of the dashboard, and a not-found page for any other
/// path under `/dashboard/`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(overview::page))
        .route("/dashboard/", get(|| async { forms::see_other("/dashboard") }))
        .route("/dashboard/login", get(session::login_form).post(session::login))
        .route("/dashboard/logout", post(session::logout))
        .route("/dashboard/assets/htmx.min.js", get(assets::htmx))
        .route("/dashboard/assets/dashboard.css", get(assets::css))
        .route("/dashboard/assets/dashboard.js", get(assets::js))
        .route("/dashboard/jobs", get(jobs::page))
        .route("/dashboard/jobs/go", get(jobs::go))
        .route("/dashboard/jobs/{id}", get(job::page))
        .route("/dashboard/jobs/{id}/{action}", post(job::act))
        .route("/dashboard/running", get(running::page))
        .route("/dashboard/dead-letter", get(dead_letter::page))
        .route("/dashboard/dead-letter/replay", post(dead_letter::replay))
        .route("/dashboard/workers", get(workers::page))
        .route("/dashboard/workers/{id}/{action}", post(workers::steer))
        .route("/dashboard/{*rest}", get(no_such_page).post(no_such_page))
        .layer(axum::middleware::map_response(protect))
        .layer(axum::middleware::from_fn(log_failures))
}

/// A page that failed (5xx) is logged with its method and path (the error
/// itself was logged where it happened; this says which page it broke).
async fn log_failures(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    if response.status().is_server_error() {
        tracing::warn!(%method, path, status = response.status().as_u16(), "dashboard page failed");
    }
    response
}

/// Any other path under `/dashboard/`: the login page first, like every page.
async fn no_such_page(viewer: session::Viewer) -> axum::response::Response {
    viewer.not_found(layout::Nav::Overview, "No such page.")
}

/// Every answer of the dashboard: never inside another site's frame (its
/// buttons cannot be clicked through a decoy), no MIME sniffing, and the
/// address (a job id, a filter) not sent to other sites.
async fn protect(mut response: axum::response::Response) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let h = response.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}
