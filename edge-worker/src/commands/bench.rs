//! `jobline bench`: the small, precise helpers `scripts/bench` drives.
//!
//! - `enqueue`: the fast path for a backlog: `Store::create_many` in batches
//!   (one transaction each: jobs, outbox rows, `created` events), optionally
//!   published after commit through the configured queue exactly as the API
//!   publishes (brokers need the messages; the `postgres` adapter NOTIFYs).
//! - `latency`: jobs created one at a time at a fixed interval (created and
//!   published like the API does) while a worker runs; reports
//!   `started_at - created_at` of each job, read back from the table.
//! - `http`: a closed-loop HTTP/1.1 load generator: a fixed number of
//!   keep-alive connections, each sending the next request as soon as the
//!   previous answer is in; reports requests/s, jobs/s and latency
//!   percentiles.
//!
//! Every subcommand prints one JSON object on stdout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use jobline::queue::Publisher;
use jobline::{Config, NewJob};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use uuid::Uuid;

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Create N jobs with `Store::create_many` in batches (optionally published).
    Enqueue(EnqueueArgs),
    /// Enqueue-to-start latency: jobs created at a fixed interval while a worker runs.
    Latency(LatencyArgs),
    /// HTTP load generator: fixed connections, closed loop, for a duration.
    Http(HttpArgs),
}

#[derive(Debug, clap::Args)]
pub struct EnqueueArgs {
    /// How many jobs to create.
    #[arg(long, default_value_t = 20_000)]
    jobs: usize,
    /// Jobs per transaction.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Batches in flight at once.
    #[arg(long, default_value_t = 1)]
    parallel: usize,
    /// Publish each batch after its commit through the configured queue.
    #[arg(long)]
    publish: bool,
    #[arg(long = "type", default_value = "noop")]
    job_type: String,
    #[arg(long, default_value = "default")]
    tenant: String,
}

#[derive(Debug, clap::Args)]
pub struct LatencyArgs {
    /// How many jobs to create.
    #[arg(long, default_value_t = 200)]
    jobs: usize,
    /// Milliseconds between two creates.
    #[arg(long, default_value_t = 20)]
    interval_ms: u64,
    /// Seconds to wait for the last job to start.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    #[arg(long = "type", default_value = "noop")]
    job_type: String,
    #[arg(long, default_value = "default")]
    tenant: String,
}

#[derive(Debug, clap::Args)]
pub struct HttpArgs {
    /// Target, e.g. http://127.0.0.1:3000/v1/jobs (plain HTTP only).
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

pub async fn run(config: &Config, cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Enqueue(args) => enqueue(config, args).await,
        BenchCommand::Latency(args) => latency(config, args).await,
        BenchCommand::Http(args) => http(args).await,
    }
}

async fn enqueue(config: &Config, args: EnqueueArgs) -> anyhow::Result<()> {
    if args.batch == 0 || args.parallel == 0 {
        bail!("--batch and --parallel must be at least 1");
    }
    let store = jobline::connect(config)?;
    let publisher = if args.publish {
        let queue = jobline::app::queue(config, &store).await?;
        Some(Publisher::new(store.clone(), queue, "bench"))
    } else {
        None
    };
    let batches = args.jobs.div_ceil(args.batch);
    let next = Arc::new(AtomicUsize::new(0));
    let args = Arc::new(args);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.parallel.min(batches.max(1)) {
        let (store, publisher, next, args) = (store.clone(), publisher.clone(), next.clone(), args.clone());
        tasks.spawn(async move {
            let mut published = 0usize;
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches {
                    return anyhow::Ok(published);
                }
                let n = args.batch.min(args.jobs - b * args.batch);
                let news = (0..n)
                    .map(|_| NewJob::new(args.job_type.clone(), json!({})))
                    .collect();
                let created = store.create_many(&args.tenant, news).await?;
                if let Some(p) = &publisher {
                    let outcome = p.publish_created(&created).await;
                    if outcome.failed > 0 {
                        bail!("publishing failed for {} jobs", outcome.failed);
                    }
                    published += outcome.published;
                }
            }
        });
    }
    let mut published = 0;
    while let Some(r) = tasks.join_next().await {
        published += r??;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "jobs": args.jobs,
            "batch": args.batch,
            "parallel": args.parallel,
            "published": published,
            "seconds": secs,
            "jobs_per_s": args.jobs as f64 / secs,
        })
    );
    Ok(())
}

async fn latency(config: &Config, args: LatencyArgs) -> anyhow::Result<()> {
    let store = jobline::connect(config)?;
    let queue = jobline::app::queue(config, &store).await?;
    let publisher = Publisher::new(store.clone(), queue, "bench");
    // Open the pool's connection before the first timed create.
    store.ping().await?;
    let mut ids: Vec<Uuid> = Vec::with_capacity(args.jobs);
    let mut ticker = tokio::time::interval(Duration::from_millis(args.interval_ms.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for _ in 0..args.jobs {
        ticker.tick().await;
        let created = store
            .create(&args.tenant, NewJob::new(args.job_type.clone(), json!({})))
            .await?;
        publisher.publish_created(std::slice::from_ref(&created)).await;
        ids.push(created.job.id);
    }
    let deadline = Instant::now() + Duration::try_from_secs_f64(args.timeout)?;
    let mut latencies_ms = Vec::with_capacity(ids.len());
    for id in &ids {
        loop {
            let job = store.get_any(*id).await?.context("a created job vanished")?;
            if let Some(started) = job.started_at {
                let d = started - job.created_at;
                latencies_ms.push(d.num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0);
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "job {id} had not started after {} s: is a worker running?",
                    args.timeout
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    latencies_ms.sort_by(f64::total_cmp);
    let mean = latencies_ms.iter().sum::<f64>() / latencies_ms.len().max(1) as f64;
    println!(
        "{}",
        json!({
            "jobs": ids.len(),
            "interval_ms": args.interval_ms,
            "p50_ms": percentile(&latencies_ms, 0.50),
            "p95_ms": percentile(&latencies_ms, 0.95),
            "p99_ms": percentile(&latencies_ms, 0.99),
            "min_ms": latencies_ms.first().copied().unwrap_or(0.0),
            "max_ms": latencies_ms.last().copied().unwrap_or(0.0),
            "mean_ms": mean,
        })
    );
    Ok(())
}

/// Nearest-rank percentile of a sorted slice.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
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

/// `http://host:port/path` → (address, host header, path).
fn parse_url(url: &str) -> anyhow::Result<(SocketAddr, String, String)> {
    let rest = url
        .strip_prefix("http://")
        .context("--url must start with http:// (no TLS in the load generator)")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_owned()),
        None => (rest, "/".to_owned()),
    };
    let with_port = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&with_port)
        .with_context(|| format!("resolving {with_port}"))?
        .next()
        .with_context(|| format!("{with_port} resolved to nothing"))?;
    Ok((addr, authority.to_owned(), path))
}

#[derive(Debug, Default)]
struct ConnStats {
    latencies_us: Vec<u32>,
    statuses: std::collections::BTreeMap<u16, u64>,
    last_done: Option<Instant>,
    reconnects: u64,
    /// Every answered request, the warm-up included.
    answered: u64,
}

async fn http(args: HttpArgs) -> anyhow::Result<()> {
    if args.connections == 0 || args.batch == 0 {
        bail!("--connections and --batch must be at least 1");
    }
    let (addr, host, path) = parse_url(&args.url)?;
    let one = json!({ "type": args.job_type, "payload": {} });
    let body = if args.batch == 1 {
        one.to_string()
    } else {
        json!({ "jobs": vec![one; args.batch] }).to_string()
    };
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {len}\r\n\r\n{body}",
        key = args.key,
        len = body.len(),
    );
    let request = Arc::new(request.into_bytes());
    let begin = Instant::now();
    let measure_from = begin + args.warmup;
    let end = measure_from + args.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.connections {
        let request = request.clone();
        tasks.spawn(async move { connection_loop(addr, request, measure_from, end).await });
    }
    let mut all = ConnStats::default();
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
    if !errors.is_empty() {
        bail!("{} connection(s) failed; first: {}", errors.len(), errors[0]);
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

async fn connect(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let s = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_nodelay(true)?;
    Ok(s)
}

async fn connection_loop(
    addr: SocketAddr,
    request: Arc<Vec<u8>>,
    measure_from: Instant,
    end: Instant,
) -> anyhow::Result<ConnStats> {
    let mut stats = ConnStats::default();
    let mut stream = connect(addr).await?;
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            return Ok(stats);
        }
        let answer = match stream.write_all(&request).await {
            Ok(()) => read_response(&mut stream, &mut buf).await?,
            Err(_) => None,
        };
        let Some((status, keep_alive)) = answer else {
            // The server closed the connection: open another, send again.
            stats.reconnects += 1;
            buf.clear();
            stream = connect(addr).await?;
            continue;
        };
        let done = Instant::now();
        stats.answered += 1;
        if t0 >= measure_from {
            let us = (done - t0).as_micros().min(u128::from(u32::MAX)) as u32;
            stats.latencies_us.push(us);
            *stats.statuses.entry(status).or_default() += 1;
            stats.last_done = Some(done);
        }
        if !keep_alive {
            stats.reconnects += 1;
            buf.clear();
            stream = connect(addr).await?;
        }
    }
}

/// Reads one response; `Ok(None)` when the server closed before answering.
/// Answers the status and whether the connection stays open.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<Option<(u16, bool)>> {
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).context("response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let mut length: Option<usize> = None;
    let mut keep_alive = true;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        match name.as_str() {
            "content-length" => length = value.parse().ok(),
            "connection" if value.eq_ignore_ascii_case("close") => keep_alive = false,
            "transfer-encoding" => bail!("chunked responses are not supported by the load generator"),
            _ => {}
        }
    }
    let total = head_end + length.context("response without Content-Length")?;
    while buf.len() < total {
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    buf.drain(..total);
    Ok(Some((status, keep_alive)))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v[..1], 0.99), 1.0);
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
    }
}
