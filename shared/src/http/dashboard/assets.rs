//! The dashboard's static files, embedded in the binary: htmx (vendored
//! from the npm package `htmx.org`, its licence beside it in `assets/`) and
//! the stylesheet and the dashboard's own small script. Served with a long cache header; the version is in
//! [`HTMX_VERSION`] and the file's SHA-256 in [`HTMX_SHA256`] (a test checks
//! it). To update htmx: `scripts/update-htmx <version>`.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

pub const HTMX_VERSION: &str = "2.0.11";
/// `sha256sum` of `assets/htmx.min.js` as `npm pack htmx.org@2.0.11` ships it.
pub const HTMX_SHA256: &str = "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717";

static HTMX: &[u8] = include_bytes!("assets/htmx.min.js");
static CSS: &str = include_str!("assets/dashboard.css");
static JS: &str = include_str!("assets/dashboard.js");

pub const HTMX_PATH: &str = "/dashboard/assets/htmx.min.js";
/// Versioned by hand: change the `v` when the stylesheet changes (it is
/// cached for a day).
pub const CSS_PATH: &str = "/dashboard/assets/dashboard.css?v=2";
/// The dashboard's own script (the refresh notice), versioned as the CSS.
pub const JS_PATH: &str = "/dashboard/assets/dashboard.js?v=1";

fn asset(body: &'static [u8], content_type: &'static str, max_age: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static(max_age)),
        ],
        body,
    )
        .into_response()
}

/// `GET /dashboard/assets/htmx.min.js`: a year, immutable (the file of a
/// version never changes).
pub async fn htmx() -> Response {
    asset(
        HTMX,
        "text/javascript; charset=utf-8",
        "public, max-age=31536000, immutable",
    )
}

/// `GET /dashboard/assets/dashboard.js`.
pub async fn js() -> Response {
    asset(
        JS.as_bytes(),
        "text/javascript; charset=utf-8",
        "public, max-age=86400",
    )
}

/// `GET /dashboard/assets/dashboard.css`.
pub async fn css() -> Response {
    asset(CSS.as_bytes(), "text/css; charset=utf-8", "public, max-age=86400")
}

#[cfg(test)]
mod tests {
    use sha2::Digest as _;

    use super::*;

    #[test]
    fn the_embedded_htmx_is_the_recorded_release() {
        assert_eq!(hex::encode(sha2::Sha256::digest(HTMX)), HTMX_SHA256);
        let head = String::from_utf8_lossy(HTMX);
        assert!(
            head.contains(&format!("version:\"{HTMX_VERSION}\"")),
            "the file says it is htmx {HTMX_VERSION}"
        );
        let licence = include_str!("assets/LICENSE");
        assert!(
            licence.contains("Zero-Clause BSD"),
            "its licence is kept beside it"
        );
    }
}
