//! The worker reliability drill's steps: inject the failures jobline promises to
//! survive, one step at a time, and check each is recovered from.
//!
//! 1. a failed outbox row → the relay delivers it and the job completes;
//! 2. the consumer's state destroyed (the LISTEN sessions of the `postgres`
//!    adapter terminated) → the worker recovers by itself;
//! 3. a dead-lettered outbox row → a replay token restores delivery;
//! 4. the same token again → `updated=0`;
//! 5. a worker killed mid-job → the claim is released and the job completes
//!    exactly once;
//! 6. the live audit (`Store::audit`, the gauntlet's invariants) over the
//!    drill's window finds no violation.
//!
//! Live mode runs against the configured database and queue (jobs of tenant
//! `drill`); simulate mode against a throwaway database on the same server.
//! Faults are injected through store operations (a failed publish, a
//! dead-lettered row, the LISTEN sessions ended), never raw SQL.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jobline::queue::relay::relay_all;
use jobline::queue::{Feed, OutboxItem, Publisher};
use jobline::store::{AuditOptions, ClaimByIdOutcome, OUTBOX_MAX_ATTEMPTS};
use jobline::worker::runner::run;
use jobline::worker::{Processor, WorkerOptions};
use jobline::{JobStatus, NewJob, Store};
use serde_json::json;
use tokio::sync::watch;
use uuid::Uuid;

pub const DRILL_TENANT: &str = "drill";

/// One step's outcome.
#[derive(Debug, Clone)]
pub struct StepReport {
    pub name: &'static str,
    pub started: DateTime<Utc>,
    pub ended: DateTime<Utc>,
    /// `Ok(detail)` passed; `Err(why)` failed; `skipped` steps pass with a note.
    pub outcome: Result<String, String>,
}

#[derive(Debug, Clone)]
pub struct DrillReport {
    pub mode: String,
    pub queue: String,
    pub steps: Vec<StepReport>,
}

impl DrillReport {
    pub fn passed(&self) -> bool {
        self.steps.iter().all(|s| s.outcome.is_ok())
    }

    pub fn markdown(&self) -> String {
        let mut md = format!(
            "# jobline drill ({} mode, {} queue)\n\n| # | step | started | ended | result |\n|---|---|---|---|---|\n",
            self.mode, self.queue
        );
        for (i, s) in self.steps.iter().enumerate() {
            let result = match &s.outcome {
                Ok(d) => format!("pass: {d}"),
                Err(e) => format!("**FAIL**: {e}"),
            };
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                i + 1,
                s.name,
                s.started.format("%H:%M:%S%.3f"),
                s.ended.format("%H:%M:%S%.3f"),
                result.replace('|', "/")
            ));
        }
        let passed = self.steps.iter().filter(|s| s.outcome.is_ok()).count();
        md.push_str(&format!(
            "\n{} passed, {} failed\n",
            passed,
            self.steps.len() - passed
        ));
        md
    }
}

/// What the drill runs against.
#[derive(Debug, Clone)]
pub struct Drill {
    pub store: Store,
    pub feed: Feed,
    pub mode: String,
    /// What counts as a stale claim: the deployment's heartbeat timeout in
    /// live mode (so the drill never releases another tenant's live claim),
    /// one second on the throwaway database.
    pub stale_after: Duration,
    /// This run's replay token (unique: a container's pid is always 1).
    pub token: String,
    /// How long the audit at the end lets a due outbox row or a stale claim
    /// wait: the default on a live system, 0 on the drained throwaway one.
    pub audit_grace: Duration,
}

type StepResult = Result<String, String>;

impl Drill {
    /// Runs every step, printing each as it ends.
    pub async fn run(&self) -> DrillReport {
        let since = self.store.now();
        let mut steps = Vec::new();
        macro_rules! step {
            ($name:literal, $body:expr) => {{
                let started = Utc::now();
                println!("{} start  {}", started.format("%H:%M:%S%.3f"), $name);
                let outcome: StepResult = $body.await;
                let ended = Utc::now();
                match &outcome {
                    Ok(d) => println!("{} ok     {}: {d}", ended.format("%H:%M:%S%.3f"), $name),
                    Err(e) => println!("{} FAIL   {}: {e}", ended.format("%H:%M:%S%.3f"), $name),
                }
                steps.push(StepReport {
                    name: $name,
                    started,
                    ended,
                    outcome,
                });
            }};
        }
        step!(
            "failed outbox row is relayed and delivered",
            self.failed_outbox_row()
        );
        step!(
            "consumer state destroyed, worker recovers",
            self.consumer_state_destroyed()
        );
        step!("dead-lettered row restored by replay", self.dead_letter_replay());
        step!("same replay token again changes nothing", self.replay_again());
        step!(
            "worker killed mid-job, job released and completed once",
            self.killed_worker()
        );
        step!(
            "the audit of the drill's window finds no violation",
            self.audit(since)
        );
        DrillReport {
            mode: self.mode.clone(),
            queue: self.feed.kind().to_owned(),
            steps,
        }
    }

    /// The live audit over the jobs created since the drill started (every
    /// tenant's, in live mode), with the broker's processing lists.
    async fn audit(&self, since: DateTime<Utc>) -> StepResult {
        let options = AuditOptions {
            grace: self.audit_grace,
            ..AuditOptions::since(since, self.stale_after)
        };
        let broker = self.feed.broker();
        let report = self
            .store
            .audit_with(&options, broker.as_deref())
            .await
            .map_err(|e| format!("the audit could not run: {e}"))?;
        if report.ok {
            Ok(format!(
                "{} jobs examined, every violation count 0",
                report.examined
            ))
        } else {
            let examples: Vec<String> = report
                .examples
                .iter()
                .map(|(name, ids)| {
                    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
                    format!("{name}: {}", ids.join(" "))
                })
                .collect();
            Err(format!(
                "violations {} (examples {})",
                report.broken().join(" "),
                examples.join("; ")
            ))
        }
    }

    fn publisher(&self) -> Publisher {
        Publisher::new(self.store.clone(), self.feed.queue(), "drill")
    }

    fn processor(&self, id: &str, heartbeat: Duration) -> Processor {
        Processor::new(
            self.store.clone(),
            Arc::new(jobline::handlers::builtins()),
            heartbeat,
            id,
        )
    }

    async fn create(&self, new: NewJob) -> Result<(Uuid, i64), String> {
        let created = self
            .store
            .create(DRILL_TENANT, "drill", new)
            .await
            .map_err(|e| e.to_string())?;
        Ok((created.job.id, created.outbox_id.unwrap_or_default()))
    }

    /// Runs a worker until `id` is completed (or the deadline passes).
    async fn work_until_done(&self, id: Uuid, worker: &str) -> StepResult {
        let (tx, rx) = watch::channel(false);
        let options = WorkerOptions {
            concurrency: 2,
            poll_interval: Duration::from_millis(100),
            register: false,
            shutdown_grace: Duration::from_secs(5),
            ..WorkerOptions::default()
        };
        let handle = tokio::spawn(run(
            self.processor(worker, Duration::from_millis(200)),
            self.feed.clone(),
            options,
            rx,
        ));
        let result = self
            .wait_status(id, JobStatus::Completed, Duration::from_secs(30))
            .await;
        let _ = tx.send(true);
        let _ = handle.await;
        result
    }

    async fn wait_status(&self, id: Uuid, want: JobStatus, within: Duration) -> StepResult {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let job = self.store.get_any(id).await.map_err(|e| e.to_string())?;
            match job {
                Some(j) if j.status == want => return Ok(format!("job {id} {want}")),
                Some(j) if tokio::time::Instant::now() >= deadline => {
                    return Err(format!("job {id} still {} after {within:?}", j.status));
                }
                None => return Err(format!("job {id} vanished")),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    async fn failed_outbox_row(&self) -> StepResult {
        let (id, outbox) = self
            .create(NewJob::new("noop", json!({"drill": "outbox"})))
            .await?;
        // As if the publish after commit had failed: the row waits out its
        // backoff, then the relay delivers it.
        self.store
            .mark_publish_failed(&[outbox], "drill: injected")
            .await
            .map_err(|e| e.to_string())?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let report = loop {
            let report = relay_all(&self.store, &self.publisher(), 100)
                .await
                .map_err(|e| e.to_string())?;
            if report.published > 0 {
                break report;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("the relay published nothing within 30 s: {report:?}"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let done = self.work_until_done(id, "drill-outbox").await?;
        Ok(format!("relayed ({} published), {done}", report.published))
    }

    async fn consumer_state_destroyed(&self) -> StepResult {
        if !matches!(self.feed, Feed::Claim(_)) {
            return Ok(format!(
                "skipped: destroying consumer state is drilled for a claim feed (LISTEN sessions); the {} adapter's recovery is covered by its contract tests",
                self.feed.kind()
            ));
        }
        // Start a worker so its LISTEN session exists, then kill the session.
        let (tx, rx) = watch::channel(false);
        let options = WorkerOptions {
            poll_interval: Duration::from_millis(200),
            register: false,
            ..WorkerOptions::default()
        };
        let handle = tokio::spawn(run(
            self.processor("drill-listener", Duration::from_millis(200)),
            self.feed.clone(),
            options,
            rx,
        ));
        // Once the worker's LISTEN session exists, end it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let killed = loop {
            let killed = self
                .store
                .terminate_listen_sessions()
                .await
                .map_err(|e| e.to_string())?;
            if killed > 0 || tokio::time::Instant::now() > deadline {
                break killed;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let (id, outbox) = self
            .create(NewJob::new("noop", json!({"drill": "consumer-state"})))
            .await?;
        self.publisher()
            .publish(&[OutboxItem {
                outbox_id: outbox,
                job_id: id,
                run_after: self.store.now(),
            }])
            .await;
        let result = self
            .wait_status(id, JobStatus::Completed, Duration::from_secs(30))
            .await;
        let _ = tx.send(true);
        let _ = handle.await;
        result.map(|d| format!("terminated {killed} LISTEN session(s); {d}"))
    }

    async fn dead_letter_replay(&self) -> StepResult {
        let (id, outbox) = self
            .create(NewJob::new("noop", json!({"drill": "dead-letter"})))
            .await?;
        // Every publish of it failed: the row reaches the dead letter.
        for _ in 0..OUTBOX_MAX_ATTEMPTS {
            let failure = self
                .store
                .mark_publish_failed(&[outbox], "drill: injected")
                .await
                .map_err(|e| e.to_string())?;
            if failure.dead_lettered.contains(&outbox) {
                break;
            }
        }
        let report = self
            .store
            .replay_dead_letter(DRILL_TENANT, &self.token(), "drill", Some(&[id]), None)
            .await
            .map_err(|e| e.to_string())?;
        if report.outbox_replayed != 1 {
            return Err(format!(
                "replay restored {} rows, expected 1",
                report.outbox_replayed
            ));
        }
        relay_all(&self.store, &self.publisher(), 100)
            .await
            .map_err(|e| e.to_string())?;
        let done = self.work_until_done(id, "drill-replay").await?;
        Ok(format!("updated={}, {done}", report.updated))
    }

    fn token(&self) -> String {
        self.token.clone()
    }

    async fn replay_again(&self) -> StepResult {
        let report = self
            .store
            .replay_dead_letter(DRILL_TENANT, &self.token(), "drill", None, None)
            .await
            .map_err(|e| e.to_string())?;
        if report.updated == 0 && report.already_used {
            Ok("updated=0".into())
        } else {
            Err(format!("the second replay changed things: {report:?}"))
        }
    }

    async fn killed_worker(&self) -> StepResult {
        let (id, _) = self
            .create(NewJob::new("sleep", json!({"ms": 1500})).max_attempts(3))
            .await?;
        let doomed = self.processor("drill-doomed", Duration::from_millis(200));
        let claim = match self
            .store
            .claim_by_id("drill-doomed", id)
            .await
            .map_err(|e| e.to_string())?
        {
            ClaimByIdOutcome::Claimed(c) => *c,
            other => return Err(format!("could not claim the drill job: {other:?}")),
        };
        let task = tokio::spawn(async move { doomed.run_claim(claim).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The kill: the task is gone mid-job, with its heartbeats.
        task.abort();
        let _ = task.await;
        let timeout = self.stale_after;
        let deadline = tokio::time::Instant::now() + timeout + Duration::from_secs(15);
        let released = loop {
            let r = self
                .store
                .release_stale(timeout, 100)
                .await
                .map_err(|e| e.to_string())?;
            if r.requeued.contains(&id) {
                break r.total();
            }
            if tokio::time::Instant::now() > deadline {
                return Err("the dead worker's claim was never released".into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        // Whatever the broker holds for the job, a fresh worker finishes it.
        let relay = relay_all(&self.store, &self.publisher(), 100)
            .await
            .map_err(|e| e.to_string())?;
        let done = self.work_until_done(id, "drill-rescuer").await?;
        let events = self
            .store
            .timeline(None, id)
            .await
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        let completed = events.iter().filter(|e| e.event == "completed").count();
        if completed != 1 {
            return Err(format!("completed {completed} times"));
        }
        Ok(format!(
            "released {released}, relayed {}, {done}, completed exactly once",
            relay.published
        ))
    }
}
