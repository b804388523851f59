//! The frame of every page: the head (embedded CSS and htmx), the nav, the
//! flash message, and `#main`, the region htmx reloads every 5 s from the
//! page's own address (query string kept), so a refresh never moves the
//! user: filters and forms that take typing live outside it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::forms::{Flash, clear_flash};
use super::session::Viewer;

/// Which nav entry a page is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Jobs,
    Running,
    DeadLetter,
    Workers,
}

/// A whole HTML document around `body`.
pub fn bare(title: &str, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    meta name="referrer" content="same-origin";
                    title { (title) " · jobline" }
                    link rel="stylesheet" href=(super::assets::CSS_PATH);
                    script src=(super::assets::HTMX_PATH) defer {}
                    script src=(super::assets::JS_PATH) defer {}
                }
                body { (body) }
            }
        }
        .into_string(),
    )
}

fn flash(f: &Flash) -> Markup {
    html! {
        @match f {
            Flash::Done(text) => {
                p .flash.done data-testid="flash" role="status" { (text) }
            },
            Flash::Refused(text) => {
                p .flash.refused data-testid="flash" role="alert" { (text) }
            },
            Flash::Replayed { jobs, outbox, already_used } => {
                div .flash.done data-testid="flash" role="status" {
                p data-testid="replay-result" {
                    "Replayed " strong data-count=(jobs + outbox) { (jobs + outbox) } " item(s): "
                    (jobs) " failed job(s), " (outbox) " outbox row(s)."
                    @if *already_used { " (This replay had already run: nothing changed.)" }
                }
                }
            },
        }
    }
}

/// A hidden CSRF field and the page to come back to, for a POST form.
pub fn form_fields(viewer: &Viewer) -> Markup {
    html! {
        input type="hidden" name="csrf" value=(viewer.csrf);
        input type="hidden" name="back" value=(viewer.here);
    }
}

impl Viewer {
    /// The page: nav, `tools` (outside the refreshed region), `main`.
    pub fn page(&self, title: &str, nav: Nav, tools: Markup, main: Markup) -> Response {
        self.page_with_status(StatusCode::OK, title, nav, tools, main)
    }

    pub fn page_with_status(
        &self,
        status: StatusCode,
        title: &str,
        nav: Nav,
        tools: Markup,
        main: Markup,
    ) -> Response {
        let link = |to: Nav, href: &str, testid: &str, label: &str| {
            html! {
                a href=(href) data-testid=(testid) aria-current=[(to == nav).then_some("page")] { (label) }
            }
        };
        let body = html! {
            header .top {
                a .brand href="/dashboard" { "jobline" }
                nav {
                    (link(Nav::Overview, "/dashboard", "nav-overview", "Overview"))
                    (link(Nav::Jobs, "/dashboard/jobs", "nav-jobs", "Jobs"))
                    (link(Nav::Running, "/dashboard/running", "nav-running", "Running"))
                    (link(Nav::DeadLetter, "/dashboard/dead-letter", "nav-dead-letter", "Dead letter"))
                    @if self.is_operator() {
                        (link(Nav::Workers, "/dashboard/workers", "nav-workers", "Workers"))
                    }
                }
                form .logout method="post" action="/dashboard/logout" data-testid="logout" {
                    input type="hidden" name="csrf" value=(self.csrf);
                    span .who { (self.tenant()) }
                    button type="submit" { "Log out" }
                }
            }
            @if let Some(f) = &self.flash { (flash(f)) }
            p #refresh-status .refresh-status role="status" data-testid="refresh-status" hidden {}
            (tools)
            @let rendered = at(chrono::Utc::now());
            main #main hx-get=(self.here) hx-trigger="every 5s" hx-select="#main" hx-swap="outerHTML"
                data-rendered=(rendered) {
                h1 { (title) }
                (main)
                p .rendered data-testid="rendered" { "Updated " (rendered) "; refreshes every 5 s." }
            }
        };
        let mut response = (status, bare(title, body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.flash.is_some() {
            headers.append(header::SET_COOKIE, clear_flash());
        }
        response
    }

    /// The 404 page (a bad id, an unknown job, another tenant's).
    pub fn not_found(&self, nav: Nav, what: &str) -> Response {
        self.page_with_status(
            StatusCode::NOT_FOUND,
            "Not found",
            nav,
            html! {},
            html! { p data-testid="not-found" { (what) } },
        )
    }
}

/// A duration in seconds, short ("3m 12s").
pub fn ago(secs: f64) -> String {
    let s = secs.max(0.0).round() as i64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86400, (s % 86400) / 3600),
    }
}

/// A time as the pages show it (UTC, to the second).
pub fn at(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The first 12 hex digits of an id (the full one is in the link).
pub fn short_id(id: uuid::Uuid) -> String {
    let mut s = id.simple().to_string();
    s.truncate(12);
    s.push('…');
    s
}
