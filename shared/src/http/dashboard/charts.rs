//! The overview's charts, drawn on the server as inline SVG from the
//! buckets of `job_counts` (no chart script): completions and failures per
//! minute of the last hour and per hour of the last day, and the queue's
//! depth (pending jobs) at the end of each bucket, worked back from the
//! pending count now.

use chrono::{DateTime, DurationRound as _, TimeDelta, Utc};
use maud::{Markup, html};

use crate::store::SeriesRow;

/// One chart's buckets: the start of each and its value.
pub type Points = Vec<(DateTime<Utc>, f64)>;

#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub completions: Points,
    pub failures: Points,
    pub depth: Points,
}

/// The hour (60 minutes) and the day (24 hours) before `now`.
#[derive(Debug, Clone, PartialEq)]
pub struct Charts {
    pub hour: Window,
    pub day: Window,
}

/// Where the series query must start for [`build`]: the first hour of the
/// day window.
pub fn since(now: DateTime<Utc>) -> DateTime<Utc> {
    trunc(now, TimeDelta::hours(1)) - TimeDelta::hours(23)
}

fn trunc(t: DateTime<Utc>, step: TimeDelta) -> DateTime<Utc> {
    t.duration_trunc(step).unwrap_or(t)
}

fn window(rows: &[SeriesRow], now: DateTime<Utc>, step: TimeDelta, n: i64, pending_now: i64) -> Window {
    let first = trunc(now, step) - step * (n as i32 - 1);
    let len = n as usize;
    let (mut done, mut failed, mut net) = (vec![0i64; len], vec![0i64; len], vec![0i64; len]);
    for r in rows {
        if r.bucket < first {
            continue;
        }
        let i = ((trunc(r.bucket, step) - first).num_seconds() / step.num_seconds()) as usize;
        if i >= len {
            continue;
        }
        match r.status.as_str() {
            "completed" => done[i] += r.entered,
            "failed" => failed[i] += r.entered,
            "pending" => net[i] += r.entered - r.exited,
            _ => {}
        }
    }
    let starts: Vec<DateTime<Utc>> = (0..n).map(|i| first + step * i as i32).collect();
    // Depth at the end of bucket i: now's count less what came after.
    let mut depth = vec![0i64; len];
    let mut later = 0i64;
    for i in (0..len).rev() {
        depth[i] = (pending_now - later).max(0);
        later += net[i];
    }
    let points = |v: &[i64]| starts.iter().zip(v).map(|(t, n)| (*t, *n as f64)).collect();
    Window {
        completions: points(&done),
        failures: points(&failed),
        depth: points(&depth),
    }
}

pub fn build(rows: &[SeriesRow], now: DateTime<Utc>, pending_now: i64) -> Charts {
    Charts {
        hour: window(rows, now, TimeDelta::minutes(1), 60, pending_now),
        day: window(rows, now, TimeDelta::hours(1), 24, pending_now),
    }
}

const W: f64 = 600.0;
const H: f64 = 150.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 18.0;
const TOP: f64 = 8.0;

/// How a chart draws its points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bars,
    Line,
}

/// One chart as `<svg data-testid=...>`, with a `<title>` per bucket.
pub fn svg(testid: &str, label: &str, points: &Points, kind: Kind, color: &str, fmt: &str) -> Markup {
    let max = points.iter().map(|(_, v)| *v).fold(0.0, f64::max).max(1.0);
    let total: f64 = points.iter().map(|(_, v)| *v).sum();
    let plot_w = W - LEFT;
    let plot_h = H - BOTTOM - TOP;
    let n = points.len().max(1) as f64;
    let step = plot_w / n;
    let y = |v: f64| TOP + plot_h - v / max * plot_h;
    let line: String = points
        .iter()
        .enumerate()
        .map(|(i, (_, v))| format!("{:.1},{:.1}", LEFT + step * (i as f64 + 0.5), y(*v)))
        .collect::<Vec<_>>()
        .join(" ");
    let first = points
        .first()
        .map(|(t, _)| t.format(fmt).to_string())
        .unwrap_or_default();
    let last = points
        .last()
        .map(|(t, _)| t.format(fmt).to_string())
        .unwrap_or_default();
    let summary = match kind {
        Kind::Bars => format!("{label}: {total:.0} in all, at most {max:.0} per bucket"),
        Kind::Line => format!(
            "{label}: {:.0} now, at most {max:.0}",
            points.last().map(|(_, v)| *v).unwrap_or(0.0)
        ),
    };
    html! {
        svg data-testid=(testid) xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (W) " " (H)}
            role="img" aria-label=(summary) {
            title { (summary) }
            line x1=(LEFT) y1=(TOP + plot_h) x2=(W) y2=(TOP + plot_h) stroke="#aab3bd" stroke-width="1" {}
            text x=(LEFT - 4.0) y=(TOP + 8.0) text-anchor="end" font-size="11" fill="#5d6978" { (format!("{max:.0}")) }
            text x=(LEFT - 4.0) y=(TOP + plot_h) text-anchor="end" font-size="11" fill="#5d6978" { "0" }
            text x=(LEFT) y=(H - 4.0) font-size="11" fill="#5d6978" { (first) }
            text x=(W) y=(H - 4.0) text-anchor="end" font-size="11" fill="#5d6978" { (last) }
            @match kind {
                Kind::Bars => {
                    @for (i, (t, v)) in points.iter().enumerate() {
                        rect x=(format!("{:.1}", LEFT + step * i as f64 + 0.5))
                            y=(format!("{:.1}", y(*v)))
                            width=(format!("{:.1}", (step - 1.0).max(0.5)))
                            height=(format!("{:.1}", TOP + plot_h - y(*v)))
                            fill=(color) {
                            title { (t.format(fmt)) ": " (format!("{v:.0}")) }
                        }
                    }
                },
                Kind::Line => {
                    polyline points=(line) fill="none" stroke=(color) stroke-width="2" {}
                    @for (i, (t, v)) in points.iter().enumerate() {
                        circle cx=(format!("{:.1}", LEFT + step * (i as f64 + 0.5))) cy=(format!("{:.1}", y(*v)))
                            r="2" fill=(color) {
                            title { (t.format(fmt)) ": " (format!("{v:.0}")) }
                        }
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(bucket: DateTime<Utc>, status: &str, entered: i64, exited: i64) -> SeriesRow {
        SeriesRow {
            bucket,
            status: status.into(),
            entered,
            exited,
        }
    }

    #[test]
    fn buckets_fill_the_windows_and_depth_is_worked_back_from_now() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T12:30:20Z")
            .expect("time")
            .with_timezone(&Utc);
        let minute = |m: i64| trunc(now, TimeDelta::minutes(1)) - TimeDelta::minutes(m);
        let rows = vec![
            row(minute(0), "completed", 3, 0),
            row(minute(2), "failed", 1, 0),
            // 5 jobs came in two minutes ago and 2 left a minute ago.
            row(minute(2), "pending", 5, 0),
            row(minute(1), "pending", 0, 2),
            // Older than the hour: only the day sees it.
            row(now - TimeDelta::hours(3), "completed", 7, 0),
        ];
        let c = build(&rows, now, 10);
        assert_eq!(c.hour.completions.len(), 60);
        assert_eq!(c.hour.completions[59].1, 3.0);
        assert_eq!(c.hour.failures[57].1, 1.0);
        assert_eq!(c.hour.depth[59].1, 10.0, "now");
        assert_eq!(c.hour.depth[58].1, 10.0, "nothing changed in the last minute");
        assert_eq!(c.hour.depth[57].1, 12.0, "before the 2 left");
        assert_eq!(c.hour.depth[56].1, 7.0, "before the 5 came");
        assert_eq!(c.day.completions.len(), 24);
        assert_eq!(c.day.completions[23].1, 3.0);
        assert_eq!(c.day.completions[20].1, 7.0);
        let drawn = svg("chart-x", "x", &c.hour.completions, Kind::Bars, "#000", "%H:%M").into_string();
        assert!(drawn.starts_with("<svg data-testid=\"chart-x\""), "{drawn}");
        assert_eq!(drawn.matches("<rect").count(), 60);
    }
}
