//! Login with an API key, the session cookie, logout.
//!
//! The cookie (`jobline_session`, `HttpOnly; Secure; SameSite=Strict`,
//! path `/dashboard`) holds a random token; the store keeps its SHA-256, the
//! key's tenant, scopes and id, a CSRF token and the expiry (12 h). Every
//! request finds the session again and checks that its key is still live
//! (the 5 s key cache): a revoked key's sessions stop with it. The key
//! itself is never stored and never put in a cookie.

use axum::body::Body;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::html;
use subtle::ConstantTimeEq as _;

use super::forms::{Flash, Form, cookie, same_origin, see_other};
use super::{DashboardError, layout};
use crate::http::{AppState, Caller};
use crate::store::sessions::{SESSION_TTL, admin_key_digest};

pub const SESSION_COOKIE: &str = "jobline_session";
pub const LOGIN_PATH: &str = "/dashboard/login";

/// Who is looking at a page: the session's key, as the API would see it.
#[derive(Clone)]
pub struct Viewer {
    pub caller: Caller,
    pub csrf: String,
    token: String,
    /// The path and query of this request (the page's own address).
    pub here: String,
    /// The message the previous action left for this page.
    pub flash: Option<Flash>,
}

/// Never the session's token or its CSRF token.
impl std::fmt::Debug for Viewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Viewer")
            .field("caller", &self.caller)
            .field("here", &self.here)
            .finish_non_exhaustive()
    }
}

impl Viewer {
    pub fn tenant(&self) -> &str {
        &self.caller.0.tenant
    }

    /// May this key change things (cancel, retry, replay, steer)?
    pub fn can_act(&self) -> bool {
        self.caller.0.has_scope("admin")
    }

    /// The operators' tenant (workers are theirs alone).
    pub fn is_operator(&self) -> bool {
        self.caller.is_operator()
    }

    /// The actions' precondition: the admin scope.
    pub fn require_admin(&self) -> Result<(), DashboardError> {
        if self.can_act() {
            Ok(())
        } else {
            Err(DashboardError::Forbidden(
                "this key may look but not act (it lacks the admin scope)",
            ))
        }
    }
}

/// Where an unauthenticated request goes: a 303 to the login page, or for
/// htmx's polling an `HX-Redirect` (htmx then loads the login page whole).
fn to_login(headers: &HeaderMap) -> Response {
    if headers.contains_key("hx-request") {
        return (StatusCode::OK, [("hx-redirect", LOGIN_PATH)]).into_response();
    }
    see_other(LOGIN_PATH)
}

fn well_formed_token(t: &str) -> bool {
    t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit())
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE).filter(|t| well_formed_token(t)) else {
            return Err(to_login(&parts.headers));
        };
        let session = match state.store.find_session(token).await {
            Ok(Some(s)) => s,
            Ok(None) => return Err(to_login(&parts.headers)),
            Err(e) => return Err(DashboardError::from(e).into_response()),
        };
        // A session of the bootstrap key lives while that key does.
        if let Some(made_with) = &session.admin_key_digest {
            let current = state
                .settings
                .admin_key
                .as_deref()
                .map(|k| admin_key_digest(token, k));
            let same = current.is_some_and(|c| bool::from(c.ct_eq(made_with)));
            if !same {
                return Err(to_login(&parts.headers));
            }
        }
        let here = parts
            .uri
            .path_and_query()
            .map(|pq| pq.as_str().to_owned())
            .unwrap_or_else(|| parts.uri.path().to_owned());
        let flash = cookie(&parts.headers, super::forms::FLASH_COOKIE).and_then(Flash::decode);
        Ok(Viewer {
            caller: Caller(session.principal),
            csrf: session.csrf_token,
            token: token.to_owned(),
            here,
            flash,
        })
    }
}

/// `GET /dashboard/login`.
pub async fn login_form(headers: HeaderMap) -> Response {
    (StatusCode::OK, login_page(None, &headers)).into_response()
}

/// The page came over plain http to a host that is not this machine: a
/// browser drops the `Secure` session cookie there, and the login would
/// only come back to this page. (`X-Forwarded-Proto: https` from a TLS
/// proxy, API Gateway's or a load balancer's, or `Forwarded: proto=https`,
/// counts as https.)
fn cookie_would_be_dropped(headers: &HeaderMap) -> bool {
    let forwarded_https = headers
        .get("x-forwarded-proto")
        .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"https"))
        || headers
            .get_all(header::FORWARDED)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains("proto=https"));
    if forwarded_https {
        return false;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    !(name.eq_ignore_ascii_case("localhost")
        || name.ends_with(".localhost")
        || name.starts_with("127.")
        || name == "::1"
        || name.is_empty())
}

fn login_page(error: Option<&str>, headers: &HeaderMap) -> axum::response::Html<String> {
    let insecure = cookie_would_be_dropped(headers);
    layout::bare(
        "Log in",
        html! {
            main #main .login {
                h1 { "jobline" }
                form method="post" action=(LOGIN_PATH) .card {
                    label for="api_key" { "API key" }
                    input #api_key type="password" name="api_key" autocomplete="current-password"
                        required autofocus;
                    @if insecure {
                        p .flash.refused data-testid="login-insecure" role="alert" {
                            "This page came over plain http to another machine: your browser will not keep "
                            "the session cookie (it is Secure), and logging in will bring you back here. "
                            "Open the dashboard over https, or on this machine as http://localhost."
                        }
                    }
                    @if let Some(e) = error {
                        p .flash.refused data-testid="login-error" role="alert" { (e) }
                    }
                    button type="submit" data-testid="login-submit" { "Log in" }
                }
                p .hint { "Log in with an API key of your tenant (" code { "jobline keys create" } "). "
                    "The key is checked once and never stored in your browser." }
            }
        },
    )
}

/// A refused login: logged (who tried from where is the operators'
/// business; the key is not logged), and the same answer whatever the
/// reason.
fn refused(headers: &HeaderMap, why: &'static str) -> Response {
    // What the client or its proxies claim: a hint, not an address to trust.
    let claimed = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none");
    tracing::warn!(reason = why, x_forwarded_for = claimed, "dashboard login refused");
    (
        StatusCode::UNAUTHORIZED,
        login_page(Some("That API key was not accepted."), headers),
    )
        .into_response()
}

/// `POST /dashboard/login`: a valid key with `jobs:read` gets a session.
pub async fn login(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    if !same_origin(&headers) {
        return DashboardError::Forbidden("log in from the dashboard's own login page").into_response();
    }
    let form = match Form::read(body).await {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let key = form.get("api_key").unwrap_or("").trim();
    if key.is_empty() {
        return refused(&headers, "empty key");
    }
    // The same checks as the API's: the bootstrap key in constant time,
    // else the stored key by its hash (constant-time too).
    let (principal, admin_key) = match crate::http::auth::principal_of(&state, key).await {
        Ok(Some((p, bootstrap))) => (p, state.settings.admin_key.as_deref().filter(|_| bootstrap)),
        Ok(None) => return refused(&headers, "unknown or revoked key"),
        Err(e) => return DashboardError::from(e).into_response(),
    };
    if !principal.has_scope("jobs:read") {
        return refused(&headers, "the key lacks jobs:read");
    }
    // Logging in again ends the session this browser had.
    if let Some(old) = cookie(&headers, SESSION_COOKIE).filter(|t| well_formed_token(t))
        && let Err(e) = state.store.delete_session(old).await
    {
        return DashboardError::from(e).into_response();
    }
    let session = match state.store.create_session(&principal, admin_key).await {
        Ok(s) => s,
        Err(e) => return DashboardError::from(e).into_response(),
    };
    tracing::info!(tenant = %principal.tenant, key = %principal.key_id.map_or_else(|| "admin".to_owned(), |k| k.simple().to_string()), "dashboard login");
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/dashboard; Max-Age={}; HttpOnly; Secure; SameSite=Strict",
        session.token,
        SESSION_TTL.num_seconds()
    );
    let mut response = see_other("/dashboard");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// `POST /dashboard/logout`: the session row is deleted and the cookie
/// cleared.
pub async fn logout(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, DashboardError> {
    let form = Form::read(body).await?;
    super::forms::check_csrf(&headers, &form, &viewer.csrf)?;
    state.store.delete_session(&viewer.token).await?;
    let mut response = see_other(LOGIN_PATH);
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "jobline_session=; Path=/dashboard; Max-Age=0; HttpOnly; Secure; SameSite=Strict",
        ),
    );
    Ok(response)
}
