//! What every POST of the dashboard goes through: the form read with a
//! size limit, the CSRF checks (the session's token in a hidden `csrf`
//! field, compared in constant time, and the browser's own `Sec-Fetch-Site`
//! / `Origin`), the `back` address (only a dashboard page), and the flash
//! message the page after the redirect shows.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq as _;

use super::DashboardError;

/// A dashboard form is a few short fields.
const MAX_FORM_BYTES: usize = 16 * 1024;
/// The cookie that carries a flash message to the next page.
pub const FLASH_COOKIE: &str = "jobline_flash";
const FLASH_MAX_CHARS: usize = 300;

/// A submitted `application/x-www-form-urlencoded` form.
#[derive(Debug, Default)]
pub struct Form(Vec<(String, String)>);

impl Form {
    pub async fn read(body: Body) -> Result<Self, DashboardError> {
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| DashboardError::BadRequest("the form is too large".into()))?;
        let pairs = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
            .map_err(|_| DashboardError::BadRequest("the form could not be read".into()))?;
        Ok(Self(pairs))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// `back`: where to go after the action, if it is a dashboard page;
    /// else `fallback`.
    pub fn back_or(&self, fallback: &str) -> String {
        self.get("back")
            .filter(|b| is_dashboard_path(b))
            .unwrap_or(fallback)
            .to_owned()
    }
}

/// A page's query string read into `T`; a query the dashboard did not
/// make is a 400.
pub fn query<T: serde::de::DeserializeOwned>(raw: Option<&str>) -> Result<T, DashboardError> {
    serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|_| DashboardError::BadRequest("unknown query".into()))
}

/// A path of this dashboard (never another host: no `//`, no backslash,
/// no control characters).
pub fn is_dashboard_path(p: &str) -> bool {
    let inside = p == "/dashboard" || p.starts_with("/dashboard/") || p.starts_with("/dashboard?");
    inside && !p.contains("//") && !p.contains('\\') && p.len() <= 2048 && !p.chars().any(|c| c.is_control())
}

/// The request came from a page of this site. A browser that sends
/// `Sec-Fetch-Site` (every current one; a page cannot set or change it) is
/// believed: `same-origin` or not, whatever a proxy did to `Host`. An older
/// browser's `Origin` (when sent) must name the host the request was sent
/// to (`X-Forwarded-Host` first, behind a proxy). The CSRF token is checked
/// besides, always.
pub fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return site.as_bytes() == b"same-origin";
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let Some(authority) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return false; // "null" and the like
    };
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(header::HOST))
        .and_then(|h| h.to_str().ok());
    host.is_some_and(|h| h.eq_ignore_ascii_case(authority))
}

/// The CSRF checks of a POST made in a session whose token is `expected`.
pub fn check_csrf(headers: &HeaderMap, form: &Form, expected: &str) -> Result<(), DashboardError> {
    if !same_origin(headers) {
        return Err(DashboardError::Forbidden(
            "this form was not sent from a page of this dashboard",
        ));
    }
    let given = form.get("csrf").unwrap_or("");
    let matches: bool = given.as_bytes().ct_eq(expected.as_bytes()).into();
    if given.is_empty() || !matches {
        return Err(DashboardError::Forbidden(
            "this form is stale or was not made by this dashboard (CSRF check failed); reload the page",
        ));
    }
    Ok(())
}

/// What a flash message says: how an action went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flash {
    Done(String),
    Refused(String),
    /// A dead-letter replay: the rows it replayed.
    Replayed {
        jobs: i64,
        outbox: i64,
        already_used: bool,
    },
}

impl Flash {
    fn encode(&self) -> String {
        let raw = match self {
            Flash::Done(t) => format!("ok|{t}"),
            Flash::Refused(t) => format!("err|{t}"),
            Flash::Replayed {
                jobs,
                outbox,
                already_used,
            } => format!("replay|{jobs}|{outbox}|{already_used}"),
        };
        let short: String = raw.chars().take(FLASH_MAX_CHARS).collect();
        serde_urlencoded::to_string([("f", short)])
            .unwrap_or_default()
            .trim_start_matches("f=")
            .to_owned()
    }

    pub fn decode(cookie: &str) -> Option<Self> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&format!("f={cookie}")).ok()?;
        let (_, raw) = pairs.into_iter().next()?;
        let (kind, rest) = raw.split_once('|')?;
        match kind {
            "ok" => Some(Flash::Done(rest.chars().take(FLASH_MAX_CHARS).collect())),
            "err" => Some(Flash::Refused(rest.chars().take(FLASH_MAX_CHARS).collect())),
            "replay" => {
                let mut it = rest.split('|');
                Some(Flash::Replayed {
                    jobs: it.next()?.parse().ok()?,
                    outbox: it.next()?.parse().ok()?,
                    already_used: it.next()? == "true",
                })
            }
            _ => None,
        }
    }
}

/// 303 to `back`, with `flash` for the page there.
pub fn redirect_with(back: &str, flash: &Flash) -> Response {
    let cookie = format!(
        "{FLASH_COOKIE}={}; Path=/dashboard; Max-Age=60; HttpOnly; Secure; SameSite=Strict",
        flash.encode()
    );
    let mut response = see_other(back);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// The cookie that ends a shown flash message.
pub fn clear_flash() -> HeaderValue {
    HeaderValue::from_static("jobline_flash=; Path=/dashboard; Max-Age=0; HttpOnly; Secure; SameSite=Strict")
}

/// 303 See Other to `to` (a dashboard path).
pub fn see_other(to: &str) -> Response {
    let location = HeaderValue::from_str(to).unwrap_or_else(|_| HeaderValue::from_static("/dashboard"));
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

/// One cookie's value from the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dashboard_paths_are_places_to_go_back_to() {
        for ok in ["/dashboard", "/dashboard/jobs?status=failed", "/dashboard?type=x"] {
            assert!(is_dashboard_path(ok), "{ok}");
        }
        for bad in [
            "https://evil.example/dashboard",
            "//evil.example",
            "/dashboard//evil.example",
            "/dashboardx",
            "/v1/jobs",
            "/dashboard/\\evil",
            "/dashboard/\r\nSet-Cookie: x",
        ] {
            assert!(!is_dashboard_path(bad), "{bad}");
        }
    }

    #[test]
    fn a_flash_survives_its_cookie() {
        for f in [
            Flash::Done("job 1 cancelled; ok|yes".into()),
            Flash::Refused("the job is completed: cannot cancel it".into()),
            Flash::Replayed {
                jobs: 3,
                outbox: 1,
                already_used: false,
            },
        ] {
            assert_eq!(Flash::decode(&f.encode()), Some(f));
        }
        assert_eq!(Flash::decode("garbage"), None);
    }

    #[test]
    fn cross_site_posts_are_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&h), "no browser headers: the CSRF token decides");
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(same_origin(&h));
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://jobs.example.com"),
        );
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(
            same_origin(&h),
            "a proxy rewrote Host: the browser's own word decides"
        );
        h.insert("sec-fetch-site", HeaderValue::from_static("same-site"));
        assert!(!same_origin(&h), "a sibling subdomain is not this site");
        h.remove("sec-fetch-site");
        h.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://jobs.example.com"),
        );
        h.insert("x-forwarded-host", HeaderValue::from_static("jobs.example.com"));
        assert!(same_origin(&h), "an older browser behind a proxy that says so");
    }
}
