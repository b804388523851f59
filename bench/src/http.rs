//! `jobline-bench http`: a closed-loop HTTP/1.1 load generator. Each of
//! `--connections` slots owns one `reqwest::Client` holding at most one
//! keep-alive connection (`pool_max_idle_per_host(1)`, `http1_only()`) and
//! sends its next request as soon as the previous answer (head and body) is
//! in, so N slots are N connections with one request in flight on each.
//! Requests during `--warmup` are sent but not counted; then `--duration` is
//! measured.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use reqwest::header::{AUTHORIZATION, CONNECTION, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::json;

use crate::stats::percentile;

/// Transport failures in a row on one slot before the run gives up.
const MAX_CONSECUTIVE_ERRORS: u32 = 50;

#[derive(Debug, clap::Args)]
pub struct HttpArgs {
    /// Target, e.g. http://127.0.0.1:3000/v1/jobs.
    #[arg(long)]
    url: String,
    /// API key (sent as `Authorization: Bearer`).
    #[arg(long, env = "JOBLINE_BENCH_KEY")]
    key: String,
    /// Concurrent keep-alive connections (one request in flight on each).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Measured time, e.g. 10s or 500ms.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Time before measuring starts (requests sent but not counted).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Jobs per request: 1 sends one job object; more sends `{"jobs": [...]}`
    /// (point --url at /v1/jobs/batch).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    #[arg(long = "type", default_value = "noop")]
    job_type: String,
}

#[derive(Debug, Default)]
struct SlotStats {
    latencies_us: Vec<u32>,
    statuses: BTreeMap<u16, u64>,
    last_done: Option<Instant>,
    /// Connections the server closed (`Connection: close`) or that failed
    /// under a request (the request is sent again on a new one).
    reconnects: u64,
    /// Every answered request, the warm-up included.
    answered: u64,
}

pub async fn run(args: HttpArgs) -> anyhow::Result<()> {
    if args.connections == 0 || args.batch == 0 {
        bail!("--connections and --batch must be at least 1");
    }
    let url = reqwest::Url::parse(&args.url).with_context(|| format!("--url {:?}", args.url))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("--url must start with http:// or https://");
    }
    let one = json!({ "type": args.job_type, "payload": {} });
    let body = if args.batch == 1 {
        one.to_string()
    } else {
        json!({ "jobs": vec![one; args.batch] }).to_string()
    };
    let mut headers = HeaderMap::new();
    let mut auth =
        HeaderValue::try_from(format!("Bearer {}", args.key)).context("--key is not a valid header value")?;
    auth.set_sensitive(true);
    headers.insert(AUTHORIZATION, auth);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));

    // Built before the clock starts; each connects on its first request.
    let mut slots = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let client = slot_client()?;
        let request = client
            .post(url.clone())
            .headers(headers.clone())
            .body(body.clone())
            .build()
            .context("building the request")?;
        slots.push((client, request));
    }

    let begin = Instant::now();
    let measure_from = begin + args.warmup;
    let end = measure_from + args.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for (client, request) in slots {
        tasks.spawn(slot_loop(client, request, measure_from, end));
    }
    let mut all = SlotStats::default();
    let mut errors: Vec<String> = Vec::new();
    while let Some(r) = tasks.join_next().await {
        match r? {
            Ok(s) => {
                all.latencies_us.extend(s.latencies_us);
                for (k, v) in s.statuses {
                    *all.statuses.entry(k).or_default() += v;
                }
                all.last_done = all.last_done.max(s.last_done);
                all.reconnects += s.reconnects;
                all.answered += s.answered;
            }
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    if let Some(first) = errors.first() {
        bail!("{} connection(s) failed; first: {first}", errors.len());
    }
    let window = all
        .last_done
        .map_or(args.duration, |t| t.saturating_duration_since(measure_from))
        .as_secs_f64()
        .max(1e-9);
    let mut lat: Vec<f64> = all.latencies_us.iter().map(|&u| f64::from(u) / 1000.0).collect();
    lat.sort_by(f64::total_cmp);
    let requests = lat.len() as u64;
    let ok: u64 = all
        .statuses
        .iter()
        .filter(|(k, _)| (200..300).contains(*k))
        .map(|(_, v)| v)
        .sum();
    let statuses: serde_json::Map<String, serde_json::Value> = all
        .statuses
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    println!(
        "{}",
        json!({
            "url": args.url,
            "connections": args.connections,
            "batch": args.batch,
            "seconds": window,
            "requests": requests,
            "requests_with_warmup": all.answered,
            "ok": ok,
            "non_2xx": requests - ok,
            "statuses": statuses,
            "reconnects": all.reconnects,
            "requests_per_s": requests as f64 / window,
            "jobs_per_s": (ok * args.batch as u64) as f64 / window,
            "p50_ms": percentile(&lat, 0.50),
            "p90_ms": percentile(&lat, 0.90),
            "p99_ms": percentile(&lat, 0.99),
            "max_ms": lat.last().copied().unwrap_or(0.0),
        })
    );
    Ok(())
}

/// One slot's client: HTTP/1.1 only, at most one pooled keep-alive
/// connection, straight to the target (no proxy from the environment).
fn slot_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .no_proxy()
        .build()
        .context("building the HTTP client")
}

/// Sends `request` again and again until `end`; counts the answers that
/// started at or after `measure_from`.
async fn slot_loop(
    client: reqwest::Client,
    request: reqwest::Request,
    measure_from: Instant,
    end: Instant,
) -> anyhow::Result<SlotStats> {
    let mut stats = SlotStats::default();
    let mut consecutive_errors = 0u32;
    loop {
        // The body is one buffer: cloning the request only shares it.
        let next = request
            .try_clone()
            .context("the request body cannot be sent twice")?;
        let t0 = Instant::now();
        if t0 >= end {
            return Ok(stats);
        }
        let answer = match client.execute(next).await {
            // The whole body is read, so the connection can carry the next request.
            Ok(response) => {
                let status = response.status().as_u16();
                let closes = response
                    .headers()
                    .get(CONNECTION)
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
                response.bytes().await.map(|_| (status, closes))
            }
            Err(e) => Err(e),
        };
        let (status, closes) = match answer {
            Ok(a) => a,
            Err(e) if e.is_connect() => {
                return Err(e).with_context(|| format!("connecting to {}", request.url()));
            }
            Err(e) => {
                // The connection failed under the request: the next send opens
                // another one.
                consecutive_errors += 1;
                if consecutive_errors >= MAX_CONSECUTIVE_ERRORS {
                    return Err(e).context(format!("{consecutive_errors} requests in a row failed"));
                }
                stats.reconnects += 1;
                continue;
            }
        };
        let done = Instant::now();
        consecutive_errors = 0;
        stats.answered += 1;
        if t0 >= measure_from {
            let us = (done - t0).as_micros().min(u128::from(u32::MAX)) as u32;
            stats.latencies_us.push(us);
            *stats.statuses.entry(status).or_default() += 1;
            stats.last_done = Some(done);
        }
        if closes {
            stats.reconnects += 1;
        }
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num.trim().parse().map_err(|_| format!("not a duration: {s:?}"))?;
    Duration::try_from_secs_f64(v * scale).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("soon").is_err());
    }
}
