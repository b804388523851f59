//! Signing webhook requests, and verifying them (the receivers' side).

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
