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
//! | `X-Jobline-Signature` | `t=<timestamp>,v1=<hex HMAC-SHA256>`; only when a secret is configured |
//!
//! # Verifying the signature (receivers)
//!
//! `v1` is the lowercase hex HMAC-SHA256, keyed with the shared secret
//! (`JOBLINE_WEBHOOK_SECRET`, its UTF-8 bytes), of the timestamp in decimal,
//! a `.`, then the request body **exactly as received** (the raw bytes, not
//! re-serialized JSON):
//!
//! ```text
//! v1 = hex(HMAC_SHA256(secret, "<t>" + "." + raw_body))
//! ```
//!
//! A receiver parses `t` and `v1` from the header, recomputes the MAC over
//! the raw body, compares in constant time, and rejects timestamps too far
//! from its own clock (five minutes is usual) to stop replays.
//! [`verify_signature`] does exactly that in Rust:
//!
//! ```
//! use jobline::worker::webhook::{signature_header, verify_signature};
//!
//! let body = br#"{"hello":"world"}"#;
//! let header = signature_header(b"s3cret", 1_700_000_000, body);
//! assert!(verify_signature(b"s3cret", &header, body, 1_700_000_010, 300));
//! assert!(!verify_signature(b"s3cret", &header, b"{}", 1_700_000_010, 300));
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
//!   IPv4-compatible, NAT64, 6to4) — unless `JOBLINE_WEBHOOK_ALLOW_PRIVATE=true`
//!   or the host is allow-listed.
//!
//! A host name is resolved once, **every** address it resolves to is
//! checked, and the request connects to exactly those checked addresses (the
//! client's resolver is pinned), so a DNS answer that changes between check
//! and connect (DNS rebinding) cannot reach an internal address. System
//! proxy variables are ignored for webhooks: a proxy would resolve the host
//! itself and bypass the check.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, LOCATION};
use serde_json::{Value, json};
use sha2::Sha256;

use super::handler::{HandlerError, HandlerOutput, JobContext, JobHandler};
use crate::config::{ConfigError, Env};

/// The job type the production registry registers this handler under.
pub const JOB_TYPE: &str = "webhook";

/// How much of a 2xx response body the result keeps.
pub const MAX_RESULT_BODY_BYTES: usize = 4096;

/// How much of an error response body a failure message quotes.
const MAX_ERROR_BODY_BYTES: usize = 512;

/// `JOBLINE_WEBHOOK_TIMEOUT_SECONDS` when unset.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

pub const HEADER_JOB_ID: &str = "x-jobline-job-id";
pub const HEADER_TIMESTAMP: &str = "x-jobline-timestamp";
pub const HEADER_SIGNATURE: &str = "x-jobline-signature";

type HmacSha256 = Hmac<Sha256>;

/// An allow-list entry: a host, optionally limited to one port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    /// Lowercase host name, or an IP address in its canonical form (IPv6
    /// without brackets).
    pub host: String,
    /// `None`: any port.
    pub port: Option<u16>,
}

impl AllowedHost {
    pub fn new(host: &str, port: Option<u16>) -> Self {
        Self {
            host: normalize_host(host),
            port,
        }
    }

    /// Parses `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let entry = entry.trim();
        if entry.is_empty() {
            return Err("empty entry".into());
        }
        if let Some(rest) = entry.strip_prefix('[') {
            let (ip, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("{entry:?}: missing ']'"))?;
            let ip: Ipv6Addr = ip
                .parse()
                .map_err(|_| format!("{entry:?}: not an IPv6 address in brackets"))?;
            let port = match after {
                "" => None,
                p => Some(parse_port(entry, p.strip_prefix(':').unwrap_or(p))?),
            };
            return Ok(Self {
                host: ip.to_string(),
                port,
            });
        }
        if let Ok(ip) = entry.parse::<Ipv6Addr>() {
            return Ok(Self {
                host: ip.to_string(),
                port: None,
            });
        }
        let (host, port) = match entry.rsplit_once(':') {
            Some((h, p)) => (h, Some(parse_port(entry, p)?)),
            None => (entry, None),
        };
        if host.is_empty() || host.contains(['/', '@', ' ', '?', '#']) {
            return Err(format!("{entry:?}: not a host name"));
        }
        Ok(Self::new(host, port))
    }

    fn matches(&self, host: &str, port: u16) -> bool {
        self.host == host && self.port.is_none_or(|p| p == port)
    }
}

fn parse_port(entry: &str, p: &str) -> Result<u16, String> {
    p.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{entry:?}: bad port {p:?}"))
}

fn normalize_host(host: &str) -> String {
    let h = host.trim().trim_start_matches('[').trim_end_matches(']');
    match h.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => h.to_ascii_lowercase(),
    }
}

/// How the `webhook` handler is set up.
#[derive(Clone)]
pub struct WebhookConfig {
    /// `JOBLINE_WEBHOOK_URL` (default none): where to POST when the payload
    /// has no `url`.
    pub url: Option<Url>,
    /// `JOBLINE_WEBHOOK_SECRET` (default none): the HMAC key; without it no
    /// signature header is sent.
    pub secret: Option<String>,
    /// `JOBLINE_WEBHOOK_TIMEOUT_SECONDS` (default 10): for name resolution,
    /// and for connect + request + response.
    pub timeout: Duration,
    /// `JOBLINE_WEBHOOK_ALLOW_HOSTS` (default empty): hosts that may use
    /// plain `http` and private addresses.
    pub allow_hosts: Vec<AllowedHost>,
    /// `JOBLINE_WEBHOOK_ALLOW_PRIVATE` (default false): allow non-public
    /// addresses for every host (still `https` only).
    pub allow_private: bool,
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url.as_ref().map(Url::as_str))
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("allow_hosts", &self.allow_hosts)
            .field("allow_private", &self.allow_private)
            .finish()
    }
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl WebhookConfig {
    /// No URL, no secret, a 10 s timeout, the SSRF guard fully on.
    pub fn new() -> Self {
        Self {
            url: None,
            secret: None,
            timeout: DEFAULT_TIMEOUT,
            allow_hosts: Vec::new(),
            allow_private: false,
        }
    }

    pub fn with_url(mut self, url: Url) -> Self {
        self.url = Some(url);
        self
    }

    pub fn with_secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = Some(secret.into());
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Allow-lists `host` (any port when `port` is `None`).
    pub fn allow_host(mut self, host: &str, port: Option<u16>) -> Self {
        self.allow_hosts.push(AllowedHost::new(host, port));
        self
    }

    pub fn with_allow_private(mut self, allow: bool) -> Self {
        self.allow_private = allow;
        self
    }

    /// From the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// From any variable lookup (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(&lookup);
        let mut config = Self::new();
        if let Some(raw) = env.get("JOBLINE_WEBHOOK_URL") {
            let url =
                Url::parse(&raw).map_err(|e| ConfigError::new("JOBLINE_WEBHOOK_URL", &raw, e.to_string()))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(ConfigError::new(
                    "JOBLINE_WEBHOOK_URL",
                    &raw,
                    "must be an https:// (or allow-listed http://) URL",
                ));
            }
            config.url = Some(url);
        }
        config.secret = env.get("JOBLINE_WEBHOOK_SECRET");
        config.timeout =
            env.seconds_up_to("JOBLINE_WEBHOOK_TIMEOUT_SECONDS", config.timeout.as_secs(), 3600)?;
        if let Some(raw) = env.get("JOBLINE_WEBHOOK_ALLOW_HOSTS") {
            for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                let host = AllowedHost::parse(entry)
                    .map_err(|e| ConfigError::new("JOBLINE_WEBHOOK_ALLOW_HOSTS", &raw, e))?;
                config.allow_hosts.push(host);
            }
        }
        config.allow_private = env.flag("JOBLINE_WEBHOOK_ALLOW_PRIVATE", config.allow_private)?;
        Ok(config)
    }

    fn is_allow_listed(&self, host: &str, port: u16) -> bool {
        self.allow_hosts.iter().any(|a| a.matches(host, port))
    }
}

/// POSTs the job's payload to a URL; see the [module docs](self).
#[derive(Debug, Clone, Default)]
pub struct WebhookHandler {
    config: WebhookConfig,
}

impl WebhookHandler {
    pub fn new(config: WebhookConfig) -> Self {
        Self { config }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        WebhookConfig::from_env().map(Self::new)
    }

    pub fn config(&self) -> &WebhookConfig {
        &self.config
    }

    async fn deliver(&self, ctx: &JobContext) -> Result<HandlerOutput, HandlerError> {
        let payload = &ctx.job.payload;
        let url = match payload.get("url") {
            Some(Value::String(s)) => Url::parse(s).map_err(|e| {
                HandlerError::permanent("BAD_PAYLOAD", format!("payload.url is not a valid URL: {e}"))
            })?,
            Some(Value::Null) | None => self.config.url.clone().ok_or_else(|| {
                HandlerError::permanent(
                    "BAD_PAYLOAD",
                    "no URL: payload.url is missing and JOBLINE_WEBHOOK_URL is not configured",
                )
            })?,
            Some(_) => {
                return Err(HandlerError::permanent(
                    "BAD_PAYLOAD",
                    "payload.url must be a string",
                ));
            }
        };
        let body_value = match payload.get("body") {
            Some(b) => b,
            None => payload,
        };
        let body = serde_json::to_vec(body_value).map_err(|e| {
            HandlerError::permanent("BAD_PAYLOAD", format!("the body is not serializable: {e}"))
        })?;

        let pinned = self.guard(&url).await?;

        let client = self.client(pinned.as_ref())?;

        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let mut request = client
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(HEADER_JOB_ID, ctx.job.id.to_string())
            .header(HEADER_TIMESTAMP, timestamp.to_string());
        if let Some(secret) = &self.config.secret {
            request = request.header(
                HEADER_SIGNATURE,
                signature_header(secret.as_bytes(), timestamp, &body),
            );
        }
        ctx.report(Some("sending"), None);
        let mut response = request
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error(&e, &url, self.config.timeout))?;
        let status = response.status();
        let code = status.as_u16();

        if status.is_success() {
            let (bytes, more, read_error) = read_bounded(&mut response, MAX_RESULT_BODY_BYTES).await;
            let (text, cut) = text_prefix(&bytes, more, MAX_RESULT_BODY_BYTES);
            let mut result =
                json!({ "status": code, "body": text, "truncated": more || cut || read_error.is_some() });
            if let Some(e) = read_error {
                // The receiver accepted the request; only its reply body was
                // cut short. Delivering again would duplicate, so it counts.
                result["bodyError"] = json!(e);
            }
            ctx.report(Some("done"), Some(100.0));
            return Ok(HandlerOutput::json(result));
        }

        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let (bytes, more, _) = read_bounded(&mut response, MAX_ERROR_BODY_BYTES).await;
        let (snippet, cut) = text_prefix(&bytes, more, MAX_ERROR_BODY_BYTES);
        let snippet = if snippet.is_empty() {
            String::new()
        } else {
            format!(": {snippet}{}", if more || cut { "…" } else { "" })
        };
        let http_code = format!("HTTP_{code}");
        let host = url.host_str().unwrap_or_default();
        if status.is_redirection() {
            let to = location.map(|l| format!(" to {l}")).unwrap_or_default();
            Err(HandlerError::permanent(
                http_code,
                format!("{host} answered {status} (a redirect{to}); redirects are not followed{snippet}"),
            ))
        } else if code == 408 || code == 429 || !status.is_client_error() {
            Err(HandlerError::retryable(
                http_code,
                format!("{host} answered {status}{snippet}"),
            ))
        } else {
            Err(HandlerError::permanent(
                http_code,
                format!("{host} answered {status}{snippet}"),
            ))
        }
    }

    /// A client for one delivery: no redirects, no proxy, the timeout, and
    /// the host name (when checked) pinned to the addresses that passed.
    fn client(&self, pinned: Option<&(String, Vec<SocketAddr>)>) -> Result<reqwest::Client, HandlerError> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(self.config.timeout)
            .connect_timeout(self.config.timeout)
            .user_agent(concat!("jobline-webhook/", env!("CARGO_PKG_VERSION")));
        if let Some((domain, addrs)) = pinned {
            builder = builder.resolve_to_addrs(domain, addrs);
        }
        builder
            .build()
            .map_err(|e| HandlerError::retryable("NETWORK", format!("could not build an HTTP client: {e}")))
    }

    /// Applies the SSRF rules to `url`; for a host name that needs checking,
    /// returns the checked addresses to pin the connection to.
    async fn guard(&self, url: &Url) -> Result<Option<(String, Vec<SocketAddr>)>, HandlerError> {
        let scheme = url.scheme();
        if !matches!(scheme, "http" | "https") {
            return Err(blocked(format!(
                "refusing a URL with scheme {scheme:?}: only https URLs are allowed"
            )));
        }
        let Some(host) = url_host(url) else {
            return Err(HandlerError::permanent(
                "BAD_PAYLOAD",
                format!("the URL {url} has no host"),
            ));
        };
        let port = url.port_or_known_default().unwrap_or(443);
        let host_key = match &host {
            UrlHost::Domain(d) => normalize_host(d),
            UrlHost::Ip(ip) => ip.to_string(),
        };
        let allow_listed = self.config.is_allow_listed(&host_key, port);
        if scheme != "https" && !allow_listed {
            return Err(blocked(format!(
                "refusing {}: only https URLs are allowed unless the host is in JOBLINE_WEBHOOK_ALLOW_HOSTS",
                authority(url)
            )));
        }
        if allow_listed || self.config.allow_private {
            return Ok(None);
        }
        let hint = "(set JOBLINE_WEBHOOK_ALLOW_PRIVATE=true or add the host to JOBLINE_WEBHOOK_ALLOW_HOSTS to allow it)";
        match host {
            UrlHost::Ip(ip) => match non_public(ip) {
                Some(kind) => Err(blocked(format!(
                    "refusing {}: {ip} is {kind} {hint}",
                    authority(url)
                ))),
                None => Ok(None),
            },
            UrlHost::Domain(domain) => {
                let lookup = tokio::time::timeout(
                    self.config.timeout,
                    tokio::net::lookup_host((domain.as_str(), port)),
                );
                let addrs: Vec<SocketAddr> = match lookup.await {
                    Err(_) => {
                        return Err(HandlerError::retryable(
                            "TIMEOUT",
                            format!("resolving {domain} took longer than {:?}", self.config.timeout),
                        ));
                    }
                    Ok(Err(e)) => {
                        return Err(HandlerError::retryable(
                            "NETWORK",
                            format!("could not resolve {domain}: {e}"),
                        ));
                    }
                    Ok(Ok(addrs)) => addrs.collect(),
                };
                if addrs.is_empty() {
                    return Err(HandlerError::retryable(
                        "NETWORK",
                        format!("{domain} resolves to no address"),
                    ));
                }
                for addr in &addrs {
                    if let Some(kind) = non_public(addr.ip()) {
                        return Err(blocked(format!(
                            "refusing {}: {domain} resolves to {}, {kind} {hint}",
                            authority(url),
                            addr.ip()
                        )));
                    }
                }
                Ok(Some((domain, addrs)))
            }
        }
    }
}

enum UrlHost {
    Ip(IpAddr),
    Domain(String),
}

/// The URL's host. The URL parser already turned every numeric form of an
/// IPv4 address (`2130706433`, `0x7f.1`) into dotted decimal for http(s).
fn url_host(url: &Url) -> Option<UrlHost> {
    let host = url.host_str().filter(|h| !h.is_empty())?;
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner
            .parse::<Ipv6Addr>()
            .ok()
            .map(|ip| UrlHost::Ip(IpAddr::V6(ip)));
    }
    Some(match host.parse::<Ipv4Addr>() {
        Ok(ip) => UrlHost::Ip(IpAddr::V4(ip)),
        Err(_) => UrlHost::Domain(host.to_owned()),
    })
}

/// `scheme://host[:port]`: the part of a URL a refusal is about.
fn authority(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{}://{host}:{p}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

fn blocked(message: String) -> HandlerError {
    HandlerError::permanent("SSRF_BLOCKED", message)
}

/// Why `ip` is not a public unicast address, or `None` when it is.
pub fn non_public(ip: IpAddr) -> Option<String> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4).map(|k| {
            let article = if k.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            format!("{article} {k} address")
        }),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "unspecified (0.0.0.0/8)",
        (127, _, _) => "loopback",
        (10, _, _) => "private (10.0.0.0/8)",
        (172, 16..=31, _) => "private (172.16.0.0/12)",
        (192, 168, _) => "private (192.168.0.0/16)",
        (169, 254, _) => "link-local",
        (100, 64..=127, _) => "shared CGNAT (100.64.0.0/10)",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved (240.0.0.0/4, broadcast)",
        (192, 0, 0) => "reserved (192.0.0.0/24)",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18..=19, _) => "benchmarking (198.18.0.0/15)",
        _ => return None,
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<String> {
    let s = ip.segments();
    let embedded =
        |v4: Ipv4Addr, form: &str| non_public_v4(v4).map(|k| format!("an {form} {k} address ({v4})"));
    if ip.is_unspecified() {
        return Some("the unspecified address".into());
    }
    if ip.is_loopback() {
        return Some("the loopback address".into());
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return embedded(v4, "IPv4-mapped");
    }
    let low_v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..6] == [0; 6] {
        // IPv4-compatible (deprecated, ::a.b.c.d).
        return embedded(low_v4, "IPv4-compatible").or(Some("a reserved IPv6 address (::/96)".into()));
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return embedded(low_v4, "NAT64");
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        return Some("a local-use NAT64 address (64:ff9b:1::/48)".into());
    }
    if s[0] == 0x2002 {
        let v4 = Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
        return embedded(v4, "6to4");
    }
    let kind = match s[0] {
        x if x & 0xfe00 == 0xfc00 => "a unique local (fc00::/7, private)",
        x if x & 0xffc0 == 0xfe80 => "a link-local (fe80::/10)",
        x if x & 0xffc0 == 0xfec0 => "a site-local (fec0::/10)",
        x if x & 0xff00 == 0xff00 => "a multicast",
        0x2001 if s[1] == 0x0db8 => "a documentation (2001:db8::/32)",
        0x0100 if s[1..4] == [0, 0, 0] => "a discard-only (100::/64)",
        _ => return None,
    };
    Some(format!("{kind} address"))
}

fn transport_error(e: &reqwest::Error, url: &Url, timeout: Duration) -> HandlerError {
    let host = url.host_str().unwrap_or_default();
    if e.is_timeout() {
        HandlerError::retryable("TIMEOUT", format!("{host} did not answer within {timeout:?}"))
    } else {
        HandlerError::retryable("NETWORK", format!("POST to {host} failed: {}", error_chain(e)))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// Reads at most `limit` bytes of the body; says whether there was more and
/// whether reading stopped on an error.
async fn read_bounded(response: &mut reqwest::Response, limit: usize) -> (Vec<u8>, bool, Option<String>) {
    let mut buf = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit - buf.len();
                if chunk.len() > room {
                    buf.extend_from_slice(&chunk[..room]);
                    return (buf, true, None);
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => return (buf, false, None),
            Err(e) => return (buf, false, Some(error_chain(&e))),
        }
    }
}

/// The bytes as text of at most `limit` bytes: a character cut in two by
/// the byte limit is dropped whole, invalid UTF-8 becomes U+FFFD. The flag
/// says whether the text lost anything to the limit.
fn text_prefix(bytes: &[u8], cut_off: bool, limit: usize) -> (String, bool) {
    let mut slice = bytes;
    if cut_off {
        // Drop a trailing incomplete sequence (the rest of it was not read).
        for i in (slice.len().saturating_sub(3)..slice.len()).rev() {
            let b = slice[i];
            if b < 0x80 {
                break;
            }
            if b >= 0xC0 {
                let width = match b {
                    0xF0.. => 4,
                    0xE0.. => 3,
                    _ => 2,
                };
                if i + width > slice.len() {
                    slice = &slice[..i];
                }
                break;
            }
        }
    }
    let mut text = String::from_utf8_lossy(slice).into_owned();
    let mut lost = false;
    if text.len() > limit {
        text.truncate(text.floor_char_boundary(limit));
        lost = true;
    }
    (text, lost)
}

/// `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
pub fn signature_header(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

fn mac(secret: &[u8], timestamp: u64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Checks an `X-Jobline-Signature` header against the raw body received, in
/// constant time, and that its timestamp is within `tolerance_secs` of `now`
/// (unix seconds). Any `v1` entry that matches is accepted (room for key
/// rotation).
pub fn verify_signature(secret: &[u8], header: &str, body: &[u8], now: u64, tolerance_secs: u64) -> bool {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<u64>().ok(),
            Some(("v1", v)) => candidates.extend(hex::decode(v).ok()),
            _ => {}
        }
    }
    let Some(t) = timestamp else { return false };
    if t.abs_diff(now) > tolerance_secs {
        return false;
    }
    candidates
        .iter()
        .any(|sig| mac(secret, t, body).verify_slice(sig).is_ok())
}

#[async_trait]
impl JobHandler for WebhookHandler {
    async fn run(&self, ctx: JobContext) -> Result<HandlerOutput, HandlerError> {
        tokio::select! {
            outcome = self.deliver(&ctx) => outcome,
            () = ctx.cancelled() => Err(HandlerError::retryable("CANCELLED", "stopped before the webhook answered")),
        }
    }

    /// Resolution and the request each get the configured timeout; the
    /// attempt as a whole a little more than both.
    fn timeout(&self) -> Duration {
        self.config.timeout.saturating_mul(2) + Duration::from_secs(5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        IpAddr::V4(s.parse().expect("ip"))
    }

    fn v6(s: &str) -> IpAddr {
        IpAddr::V6(s.parse().expect("ip"))
    }

    #[test]
    fn non_public_addresses_are_named() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "127.9.9.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
        ] {
            assert!(non_public(v4(ip)).is_some(), "{ip} should be refused");
        }
        for ip in [
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::10.0.0.1",
            "2002:7f00:1::",
            "fd00::1",
            "fc12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
        ] {
            assert!(non_public(v6(ip)).is_some(), "{ip} should be refused");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "93.184.216.34"] {
            assert_eq!(non_public(v4(ip)), None, "{ip} is public");
        }
        for ip in [
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::",
        ] {
            assert_eq!(non_public(v6(ip)), None, "{ip} is public");
        }
        assert!(
            non_public(v6("::ffff:127.0.0.1"))
                .expect("refused")
                .contains("IPv4-mapped")
        );
    }

    #[test]
    fn allow_list_entries_parse() {
        assert_eq!(
            AllowedHost::parse("Hooks.Example.com").expect("ok"),
            AllowedHost::new("hooks.example.com", None)
        );
        assert_eq!(
            AllowedHost::parse(" 127.0.0.1:8080 ").expect("ok"),
            AllowedHost::new("127.0.0.1", Some(8080))
        );
        assert_eq!(
            AllowedHost::parse("[::1]:9000").expect("ok"),
            AllowedHost::new("::1", Some(9000))
        );
        assert_eq!(
            AllowedHost::parse("[::1]").expect("ok"),
            AllowedHost::new("::1", None)
        );
        assert_eq!(
            AllowedHost::parse("fd00::1").expect("ok"),
            AllowedHost::new("fd00::1", None)
        );
        for bad in [
            "",
            "host:",
            "host:0",
            "host:99999",
            "[::1",
            "[nope]:1",
            "a/b",
            "user@host",
        ] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad:?} should not parse");
        }
        let entry = AllowedHost::new("localhost", Some(8080));
        assert!(entry.matches("localhost", 8080));
        assert!(!entry.matches("localhost", 8081));
        assert!(AllowedHost::new("localhost", None).matches("localhost", 1));
    }

    #[test]
    fn config_reads_and_checks_its_variables() {
        let vars = [
            ("JOBLINE_WEBHOOK_URL", "https://hooks.example.com/in"),
            ("JOBLINE_WEBHOOK_SECRET", "s3cret"),
            ("JOBLINE_WEBHOOK_TIMEOUT_SECONDS", "3"),
            ("JOBLINE_WEBHOOK_ALLOW_HOSTS", "localhost, 10.0.0.5:8443,"),
            ("JOBLINE_WEBHOOK_ALLOW_PRIVATE", "true"),
        ];
        let c =
            WebhookConfig::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned()))
                .expect("valid");
        assert_eq!(
            c.url.as_ref().map(Url::as_str),
            Some("https://hooks.example.com/in")
        );
        assert_eq!(c.secret.as_deref(), Some("s3cret"));
        assert_eq!(c.timeout, Duration::from_secs(3));
        assert_eq!(c.allow_hosts.len(), 2);
        assert!(c.allow_private);
        assert!(!format!("{c:?}").contains("s3cret"), "Debug redacts the secret");

        let d = WebhookConfig::from_lookup(|_| None).expect("defaults");
        assert_eq!(
            (d.timeout, d.allow_private, d.secret.is_none(), d.url.is_none()),
            (DEFAULT_TIMEOUT, false, true, true)
        );

        for (var, value) in [
            ("JOBLINE_WEBHOOK_URL", "ftp://x/"),
            ("JOBLINE_WEBHOOK_URL", "not a url"),
            ("JOBLINE_WEBHOOK_TIMEOUT_SECONDS", "0"),
            ("JOBLINE_WEBHOOK_TIMEOUT_SECONDS", "ten"),
            ("JOBLINE_WEBHOOK_ALLOW_HOSTS", "a:b"),
            ("JOBLINE_WEBHOOK_ALLOW_PRIVATE", "maybe"),
        ] {
            let err = WebhookConfig::from_lookup(|k| (k == var).then(|| value.to_owned())).expect_err(value);
            assert_eq!(err.var, var);
        }
    }

    #[test]
    fn signatures_verify_and_reject_tampering() {
        let body = br#"{"a":1}"#;
        let header = signature_header(b"k", 100, body);
        let expected = {
            let mut m = <HmacSha256 as Mac>::new_from_slice(b"k").expect("key");
            m.update(b"100.{\"a\":1}");
            hex::encode(m.finalize().into_bytes())
        };
        assert_eq!(header, format!("t=100,v1={expected}"));
        assert!(verify_signature(b"k", &header, body, 100, 300));
        assert!(verify_signature(b"k", &header, body, 399, 300));
        assert!(!verify_signature(b"k", &header, body, 401, 300), "too old");
        assert!(!verify_signature(b"other", &header, body, 100, 300), "wrong key");
        assert!(
            !verify_signature(b"k", &header, br#"{"a":2}"#, 100, 300),
            "tampered body"
        );
        assert!(
            !verify_signature(b"k", &header.replace("t=100", "t=101"), body, 100, 300),
            "tampered time"
        );
        assert!(!verify_signature(b"k", "v1=00", body, 100, 300), "no timestamp");
    }

    /// The client connects to the pinned addresses, never asking DNS again:
    /// a name that cannot resolve (`.invalid`) still reaches the server.
    #[tokio::test]
    async fn the_client_connects_to_the_pinned_address() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut buf = vec![0u8; 4096];
            let n = socket.read(&mut buf).await.expect("read");
            socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await
                .expect("write");
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        let handler = WebhookHandler::new(WebhookConfig::new().with_timeout(Duration::from_secs(5)));
        let pinned = ("hooks.jobline.invalid".to_owned(), vec![addr]);
        let client = handler.client(Some(&pinned)).expect("client");
        let url = format!("http://hooks.jobline.invalid:{}/in", addr.port());
        let response = client.post(url).body("{}").send().await.expect("sent");
        assert_eq!(response.status(), 200);
        let request = server.await.expect("server");
        assert!(request.starts_with("POST /in HTTP/1.1"), "{request}");
        assert!(
            request
                .to_ascii_lowercase()
                .contains("host: hooks.jobline.invalid"),
            "the Host header keeps the name: {request}"
        );
    }

    #[test]
    fn text_prefixes_cut_on_character_boundaries() {
        assert_eq!(text_prefix(b"hello", false, 10), ("hello".into(), false));
        // "é" is two bytes: a limit that splits it drops it whole.
        let bytes = "aé".as_bytes();
        assert_eq!(text_prefix(&bytes[..2], true, 2), ("a".into(), false));
        // A four-byte character cut after three bytes.
        let crab = "x🦀".as_bytes();
        assert_eq!(text_prefix(&crab[..4], true, 4), ("x".into(), false));
        // Invalid bytes become U+FFFD (3 bytes), and the text still fits.
        let (t, lost) = text_prefix(&[0xff, 0xff], false, 4);
        assert_eq!((t.as_str(), lost), ("\u{fffd}", true));
    }
}
