//! The built-in `webhook` handler: POST a job's payload to a URL, signed.
//!
//! # What it sends
//!
//! `POST <url>` where `<url>` is the payload's `url`, or the handler's
//! configured URL (`JOBLINE_WEBHOOK_URL`) when the payload has none. The
//! request body is the payload's `body` as JSON, or the whole payload when it
//! has no `body` key. Headers:
//!
//! | header | value |
//! |---|---|
//! | `Content-Type` | `application/json` |
//! | `X-Jobline-Job-Id` | the job's id (stable across retries: receivers can deduplicate on it) |
//! | `X-Jobline-Timestamp` | unix seconds when this attempt was signed |
//! | `X-Jobline-Signature` | `t=<timestamp>,v2=<hex HMAC-SHA256>`; only when a secret is configured |
//!
//! # Verifying the signature (receivers)
//!
//! Every tenant has its own signing secret, derived from the deployment's
//! `JOBLINE_WEBHOOK_SECRET` and the tenant id ([`tenant_secret`]; the
//! operator prints it with `jobline webhook-secret --tenant <id>` and hands
//! it to that tenant's receivers). `v2` is the lowercase hex HMAC-SHA256,
//! keyed with the tenant's secret (its UTF-8 bytes), of the timestamp in
//! decimal, the job id, the URL the request was sent to (as sent: parsed and
//! normalised, e.g. a lower-case host and `/` for an empty path, not the
//! job's spelling), each followed by a `.`, then the request body **exactly as
//! received** (the raw bytes, not re-serialized JSON):
//!
//! ```text
//! v2 = hex(HMAC_SHA256(tenant_secret, "<t>" + "." + job_id + "." + url + "." + raw_body))
//! ```
//!
//! So a signature minted through one tenant verifies under no other
//! tenant's secret, and one for one URL or job verifies for no other. A
//! receiver parses `t` and `v2` from the header, recomputes the MAC,
//! compares in constant time, and rejects timestamps too far from its own
//! clock (five minutes is usual) to stop replays. [`verify_signature`] does
//! exactly that in Rust:
//!
//! ```
//! use jobline::handlers::webhook::{Signed, signature_header, tenant_secret, verify_signature};
//!
//! let secret = tenant_secret(b"master", "acme");
//! let body = br#"{"hello":"world"}"#;
//! let signed = Signed { job_id: "01a2315c-1f58-72d8-b2e5-836f151fe651", url: "https://hooks.example.com/in", body };
//! let header = signature_header(secret.as_bytes(), 1_700_000_000, &signed);
//! assert!(verify_signature(secret.as_bytes(), &header, &signed, 1_700_000_010, 300));
//! let other = tenant_secret(b"master", "globex");
//! assert!(!verify_signature(other.as_bytes(), &header, &signed, 1_700_000_010, 300));
//! ```
//!
//! # Outcomes
//!
//! - 2xx: completed, result `{"status": <code>, "body": <text>, "truncated": <bool>}`
//!   with at most the first 4 KiB of the response body (cut on a character
//!   boundary; `truncated` says whether anything was left out).
//! - 3xx: redirects are **never followed**; a 3xx is a permanent failure
//!   `HTTP_<code>` (point the job at the final URL instead).
//! - 4xx other than 408 and 429: permanent failure `HTTP_<code>`.
//! - 408, 429, 5xx: retryable `HTTP_<code>`; connection errors: retryable
//!   `NETWORK`; no answer within the timeout (`JOBLINE_WEBHOOK_TIMEOUT_SECONDS`):
//!   retryable `TIMEOUT`.
//! - A missing or unusable URL: permanent `BAD_PAYLOAD`.
//!
//! # SSRF guard
//!
//! A job's payload is user input, so the handler refuses (permanent failure
//! `SSRF_BLOCKED`, nothing sent) to call:
//!
//! - any scheme but `https`, unless the host is on the allow-list
//!   (`JOBLINE_WEBHOOK_ALLOW_HOSTS`, comma-separated `host` or `host:port`);
//!   schemes other than `http`/`https` are always refused;
//! - any address that is not public: unspecified, loopback, private (RFC
//!   1918), link-local (including cloud metadata at 169.254.169.254), CGNAT
//!   (100.64.0.0/10), multicast, broadcast and reserved ranges, IPv6 unique
//!   local (fc00::/7), link-local and site-local, and IPv6 forms that embed
//!   one of those IPv4 addresses (IPv4-mapped `::ffff:a.b.c.d`,
//!   IPv4-compatible, IPv4-translated `::ffff:0:a.b.c.d`, NAT64, 6to4), and
//!   Teredo tunnels (`2001::/32`) — unless `JOBLINE_WEBHOOK_ALLOW_PRIVATE=true`
//!   or the host is allow-listed.
//!
//! A host name is resolved once, **every** address it resolves to is
//! checked, and the request connects to exactly those checked addresses (the
//! client's resolver is pinned), so a DNS answer that changes between check
//! and connect (DNS rebinding) cannot reach an internal address. System
//! proxy variables are ignored for webhooks: a proxy would resolve the host
//! itself and bypass the check.

mod config;
mod delivery;
mod signature;
mod ssrf;

use std::time::Duration;

pub use config::{AllowedHost, Resolve, SystemResolver, WebhookConfig};
pub use delivery::WebhookHandler;
pub use signature::{Signed, signature_header, tenant_secret, verify_signature};
pub use ssrf::non_public;

/// The job type the production registry registers this handler under.
pub const JOB_TYPE: &str = "webhook";

/// How much of a 2xx response body the result keeps.
pub const MAX_RESULT_BODY_BYTES: usize = 4096;

/// How much of an error response body a failure message quotes.
pub(super) const MAX_ERROR_BODY_BYTES: usize = 512;

/// `JOBLINE_WEBHOOK_TIMEOUT_SECONDS` when unset.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

pub const HEADER_JOB_ID: &str = "x-jobline-job-id";
pub const HEADER_TIMESTAMP: &str = "x-jobline-timestamp";
pub const HEADER_SIGNATURE: &str = "x-jobline-signature";
