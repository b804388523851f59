//! Signing webhook requests, and verifying them (the receivers' side).
//!
//! Each tenant signs with its own secret, derived from the deployment's
//! master secret (`JOBLINE_WEBHOOK_SECRET`) and the tenant id
//! ([`tenant_secret`]; `jobline webhook-secret --tenant T` prints it for that
//! tenant's receivers). The MAC binds what a receiver must trust: the time,
//! the job, the URL the request was sent to and the body, so a signature
//! minted through one tenant verifies under no other tenant's secret, and one
//! minted for one URL verifies for no other.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// What a signature covers, besides its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signed<'a> {
    /// The job's id (the `X-Jobline-Job-Id` header).
    pub job_id: &'a str,
    /// The URL the request was sent to, as sent: parsed and normalised (a
    /// lower-case host, `/` for an empty path, percent-encoding), which is
    /// what the receiver sees as its own URL, not the job's spelling.
    pub url: &'a str,
    /// The raw request body.
    pub body: &'a [u8],
}

/// The signing secret of `tenant`: lowercase hex of
/// `HMAC_SHA256(master, "jobline-webhook-v2:" + tenant)`.
pub fn tenant_secret(master: &[u8], tenant: &str) -> String {
    let mut mac = keyed(master);
    mac.update(b"jobline-webhook-v2:");
    mac.update(tenant.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// `t=<timestamp>,v2=<hex HMAC-SHA256 of "<t>.<job id>.<url>.<body>">`,
/// keyed with a tenant's secret (its UTF-8 bytes).
pub fn signature_header(secret: &[u8], timestamp: u64, signed: &Signed<'_>) -> String {
    format!(
        "t={timestamp},v2={}",
        hex::encode(mac(secret, timestamp, signed).finalize().into_bytes())
    )
}

fn keyed(secret: &[u8]) -> HmacSha256 {
    <HmacSha256 as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
}

fn mac(secret: &[u8], timestamp: u64, signed: &Signed<'_>) -> HmacSha256 {
    let mut mac = keyed(secret);
    for part in [
        timestamp.to_string().as_bytes(),
        signed.job_id.as_bytes(),
        signed.url.as_bytes(),
    ] {
        mac.update(part);
        mac.update(b".");
    }
    mac.update(signed.body);
    mac
}

/// Checks an `X-Jobline-Signature` header against what was received, in
/// constant time, and that its timestamp is within `tolerance_secs` of `now`
/// (unix seconds). Any `v2` entry that matches is accepted (room for key
/// rotation).
pub fn verify_signature(
    secret: &[u8],
    header: &str,
    signed: &Signed<'_>,
    now: u64,
    tolerance_secs: u64,
) -> bool {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<u64>().ok(),
            Some(("v2", v)) => candidates.extend(hex::decode(v).ok()),
            _ => {}
        }
    }
    let Some(t) = timestamp else { return false };
    if t.abs_diff(now) > tolerance_secs {
        return false;
    }
    candidates
        .iter()
        .any(|sig| mac(secret, t, signed).verify_slice(sig).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOB: &str = "01a2315c-1f58-72d8-b2e5-836f151fe651";
    const URL: &str = "https://hooks.example.com/in";

    fn signed(body: &[u8]) -> Signed<'_> {
        Signed {
            job_id: JOB,
            url: URL,
            body,
        }
    }

    #[test]
    fn signatures_verify_and_reject_tampering() {
        let body = br#"{"a":1}"#;
        let header = signature_header(b"k", 100, &signed(body));
        let expected = {
            let mut m = <HmacSha256 as Mac>::new_from_slice(b"k").expect("key");
            m.update(format!("100.{JOB}.{URL}.{{\"a\":1}}").as_bytes());
            hex::encode(m.finalize().into_bytes())
        };
        assert_eq!(header, format!("t=100,v2={expected}"));
        assert!(verify_signature(b"k", &header, &signed(body), 100, 300));
        assert!(verify_signature(b"k", &header, &signed(body), 399, 300));
        assert!(
            !verify_signature(b"k", &header, &signed(body), 401, 300),
            "too old"
        );
        assert!(
            !verify_signature(b"other", &header, &signed(body), 100, 300),
            "wrong key"
        );
        assert!(
            !verify_signature(b"k", &header, &signed(br#"{"a":2}"#), 100, 300),
            "tampered body"
        );
        assert!(
            !verify_signature(b"k", &header.replace("t=100", "t=101"), &signed(body), 100, 300),
            "tampered time"
        );
        assert!(
            !verify_signature(b"k", "v2=00", &signed(body), 100, 300),
            "no timestamp"
        );
    }

    #[test]
    fn a_signature_binds_the_tenant_the_url_and_the_job() {
        let master = b"the deployment's master secret";
        let acme = tenant_secret(master, "acme");
        let globex = tenant_secret(master, "globex");
        assert_ne!(acme, globex);
        assert_eq!(acme, tenant_secret(master, "acme"), "stable");
        let body = br#"{"pay":100}"#;
        let header = signature_header(acme.as_bytes(), 100, &signed(body));
        assert!(verify_signature(
            acme.as_bytes(),
            &header,
            &signed(body),
            100,
            300
        ));
        assert!(
            !verify_signature(globex.as_bytes(), &header, &signed(body), 100, 300),
            "minted through acme, not valid for globex's receivers"
        );
        assert!(
            !verify_signature(master, &header, &signed(body), 100, 300),
            "nor under the master secret"
        );
        let elsewhere = Signed {
            url: "https://billing.example.com/in",
            ..signed(body)
        };
        assert!(
            !verify_signature(acme.as_bytes(), &header, &elsewhere, 100, 300),
            "another URL"
        );
        let other_job = Signed {
            job_id: "01a2315c-0000-0000-0000-000000000000",
            ..signed(body)
        };
        assert!(
            !verify_signature(acme.as_bytes(), &header, &other_job, 100, 300),
            "another job"
        );
    }
}
