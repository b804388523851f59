//! One delivery: build the request, send it through a pinned client, read
//! a bounded reply and turn the status into an outcome.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, LOCATION};
use serde_json::{Value, json};

use super::config::WebhookConfig;
use super::signature::{Signed, signature_header, tenant_secret};
use super::ssrf::{Pinned, guard};
use super::{HEADER_JOB_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, MAX_ERROR_BODY_BYTES, MAX_RESULT_BODY_BYTES};
use crate::worker::{HandlerError, HandlerOutput, JobContext, JobHandler};

/// POSTs the job's payload to a URL; see the [module docs](self).
#[derive(Debug, Clone, Default)]
pub struct WebhookHandler {
    config: WebhookConfig,
}

impl WebhookHandler {
    pub fn new(config: WebhookConfig) -> Self {
        Self { config }
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

        let pinned = guard(&self.config, &url).await?;

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
        if let Some(master) = &self.config.secret {
            // The job's tenant's own secret, over what the receiver binds.
            let secret = tenant_secret(master.as_bytes(), &ctx.job.tenant_id);
            let job_id = ctx.job.id.to_string();
            let signed = Signed {
                job_id: &job_id,
                url: url.as_str(),
                body: &body,
            };
            request = request.header(
                HEADER_SIGNATURE,
                signature_header(secret.as_bytes(), timestamp, &signed),
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
    fn client(&self, pinned: Option<&Pinned>) -> Result<reqwest::Client, HandlerError> {
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
}

fn transport_error(e: &reqwest::Error, url: &Url, timeout: Duration) -> HandlerError {
    let host = url.host_str().unwrap_or_default();
    if e.is_timeout() {
        HandlerError::retryable("TIMEOUT", format!("{host} did not answer within {timeout:?}"))
    } else {
        HandlerError::retryable(
            "NETWORK",
            format!("POST to {host} failed: {}", crate::telemetry::error_chain(e)),
        )
    }
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
            Err(e) => return (buf, false, Some(crate::telemetry::error_chain(&e))),
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
