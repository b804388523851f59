//! The SSRF guard: which URLs a job's payload may make the handler call
//! (see the [module docs](super) for the rules).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;

use super::config::{WebhookConfig, normalize_host};
use crate::worker::HandlerError;

/// A host name and the checked addresses its connection is pinned to.
pub(super) type Pinned = (String, Vec<SocketAddr>);

/// Applies the SSRF rules to `url`; for a host name that needs checking,
/// returns the checked addresses to pin the connection to.
pub(super) async fn guard(config: &WebhookConfig, url: &Url) -> Result<Option<Pinned>, HandlerError> {
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
    let allow_listed = config.is_allow_listed(&host_key, port);
    if scheme != "https" && !allow_listed {
        return Err(blocked(format!(
            "refusing {}: only https URLs are allowed unless the host is in JOBLINE_WEBHOOK_ALLOW_HOSTS",
            authority(url)
        )));
    }
    if allow_listed || config.allow_private {
        return Ok(None);
    }
    let hint =
        "(set JOBLINE_WEBHOOK_ALLOW_PRIVATE=true or add the host to JOBLINE_WEBHOOK_ALLOW_HOSTS to allow it)";
    match host {
        UrlHost::Ip(ip) => match non_public(ip) {
            Some(kind) => Err(blocked(format!(
                "refusing {}: {ip} is {kind} {hint}",
                authority(url)
            ))),
            None => Ok(None),
        },
        UrlHost::Domain(domain) => {
            let lookup = tokio::time::timeout(config.timeout, config.resolver.resolve(&domain, port));
            let addrs: Vec<SocketAddr> = match lookup.await {
                Err(_) => {
                    return Err(HandlerError::retryable(
                        "TIMEOUT",
                        format!("resolving {domain} took longer than {:?}", config.timeout),
                    ));
                }
                Ok(Err(e)) => {
                    return Err(HandlerError::retryable(
                        "NETWORK",
                        format!("could not resolve {domain}: {e}"),
                    ));
                }
                Ok(Ok(addrs)) => addrs,
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
    if s[..6] == [0, 0, 0, 0, 0xffff, 0] {
        // IPv4-translated (::ffff:0:a.b.c.d, RFC 2765).
        return embedded(low_v4, "IPv4-translated")
            .or(Some("an IPv4-translated address (::ffff:0:0/96)".into()));
    }
    if s[0] == 0x2001 && s[1] == 0 {
        // Teredo tunnels to an IPv4 host anywhere; the client address is the
        // last 32 bits, inverted.
        return Some("a Teredo tunnel (2001::/32) address".into());
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
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "::ffff:0:7f00:1",
            "::ffff:0:a00:1",
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
}
