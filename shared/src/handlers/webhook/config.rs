//! The `webhook` handler's settings (`JOBLINE_WEBHOOK_*`) and its host
//! allow-list.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;

use super::DEFAULT_TIMEOUT;
use crate::config::{ConfigError, Env};

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

    pub(super) fn matches(&self, host: &str, port: u16) -> bool {
        self.host == host && self.port.is_none_or(|p| p == port)
    }
}

fn parse_port(entry: &str, p: &str) -> Result<u16, String> {
    p.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{entry:?}: bad port {p:?}"))
}

pub(super) fn normalize_host(host: &str) -> String {
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
    /// How host names are resolved (the system resolver; tests inject one
    /// that answers what a hostile DNS server would).
    pub resolver: Arc<dyn Resolve>,
}

/// Resolves a host name to the addresses the guard checks and the request
/// is pinned to.
pub trait Resolve: Send + Sync {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + 'a>>;
}

/// The system resolver (`getaddrinfo`, through tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }
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
            resolver: Arc::new(SystemResolver),
        }
    }

    /// Resolves host names with `resolver` instead of the system's.
    pub fn with_resolver(mut self, resolver: impl Resolve + 'static) -> Self {
        self.resolver = Arc::new(resolver);
        self
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

    /// From any variable lookup (tests pass a map); processes read it as
    /// part of [`crate::Config`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::read(&Env::new(&lookup))
    }

    /// Reads `JOBLINE_WEBHOOK_*` (as part of [`crate::Config`]).
    pub fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
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

    pub(super) fn is_allow_listed(&self, host: &str, port: u16) -> bool {
        self.allow_hosts.iter().any(|a| a.matches(host, port))
    }
}
#[cfg(test)]
mod tests {
    use super::*;

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
}
