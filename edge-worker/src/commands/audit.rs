//! `jobline audit`: the live audit (`GET /v1/audit`'s report) from the
//! command line, readable or as JSON; exits non-zero when it is not ok.

use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use jobline::Config;
use jobline::store::audit::{
    AuditOptions, AuditReport, DEFAULT_AUDIT_GRACE, DEFAULT_AUDIT_MAX_JOBS, DEFAULT_AUDIT_TIMEOUT,
    DEFAULT_AUDIT_WINDOW,
};

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Audit the jobs created from then on: an RFC 3339 time or Unix
    /// seconds (default: the last 24 h).
    #[arg(long, value_parser = parse_since)]
    pub since: Option<DateTime<Utc>>,
    /// Print the report as JSON (the body of GET /v1/audit).
    #[arg(long)]
    pub json: bool,
    /// Seconds a due outbox row or a stale claim may wait for the relay or
    /// the sweeper before it counts (0: a snapshot of a drained system).
    #[arg(long, default_value_t = DEFAULT_AUDIT_GRACE.as_secs_f64())]
    pub grace: f64,
    /// The most jobs examined (the newest of the window).
    #[arg(long, default_value_t = DEFAULT_AUDIT_MAX_JOBS)]
    pub max_jobs: i64,
    /// The audit's time budget in seconds.
    #[arg(long, default_value_t = DEFAULT_AUDIT_TIMEOUT.as_secs_f64())]
    pub timeout: f64,
}

fn parse_since(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(secs) = s.parse::<i64>() {
        return DateTime::from_timestamp(secs, 0).ok_or_else(|| format!("{s} is out of range"));
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("{s:?} is neither an RFC 3339 time nor Unix seconds"))
}

fn seconds(name: &str, secs: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(secs)
        .with_context(|| format!("--{name} must be a number of seconds, 0 or more"))
}

pub async fn run(config: &Config, args: AuditArgs) -> anyhow::Result<()> {
    let store = jobline::connect(config)?;
    let feed = jobline::app::feed(config, &store).await?;
    let since = args.since.unwrap_or_else(|| {
        store.now() - chrono::Duration::from_std(DEFAULT_AUDIT_WINDOW).unwrap_or_default()
    });
    let options = AuditOptions {
        grace: seconds("grace", args.grace)?,
        max_jobs: args.max_jobs,
        timeout: seconds("timeout", args.timeout)?,
        ..AuditOptions::since(since, config.heartbeat_timeout)
    };
    let broker = feed.broker();
    let report = store.audit_with(&options, broker.as_deref()).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", summary(&report));
    }
    if !report.ok {
        anyhow::bail!("the audit found violations: {}", report.broken().join(" "));
    }
    Ok(())
}

/// The report for people: one line per violation, then the other counts.
pub fn summary(report: &AuditReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "audit of the jobs created {} .. {}: {} examined{}",
        report.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        report.until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        report.examined,
        if report.truncated {
            " (truncated: more were created, the newest were examined)"
        } else {
            ""
        }
    );
    let width = report.violations.keys().map(String::len).max().unwrap_or(0);
    for (name, n) in &report.violations {
        let verdict = if *n == 0 { "ok  " } else { "FAIL" };
        let _ = write!(out, "  {verdict} {name:<width$} {n}");
        if let Some(ids) = report.examples.get(name) {
            let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
            let _ = write!(out, "  e.g. {}", ids.join(" "));
        }
        out.push('\n');
    }
    let pairs = |m: &std::collections::BTreeMap<String, i64>| {
        m.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let _ = writeln!(out, "  informative: {}", pairs(&report.informative));
    let _ = writeln!(out, "  by status: {}", pairs(&report.by_status));
    let _ = writeln!(out, "{}", if report.ok { "ok" } else { "NOT OK" });
    out
}
