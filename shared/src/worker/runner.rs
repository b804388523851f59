//! The edge worker's loop: at most `concurrency` jobs in flight, fed by
//! whichever [`Feed`] the adapter gives (claims in batches, or deliveries
//! claimed by id), until told to stop, drained (`once`) or a job limit is
//! reached. The two loops share the slots, the counters, the registration
//! and the shutdown ([`Slots`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::processor::{Disposition, Executed, Finished, Processor, Taken};
use crate::metrics::worker::{WorkerInstruments, WorkerMetrics};
use crate::queue::{Broker, Delivery, Feed, Wakeups};
use crate::store::workers::{WorkerBeat, WorkerCommand};
use crate::store::{Claim, JobFailure, StoreError};

/// The local queue's default bound: past a few hundred jobs per claim, a
/// bigger batch buys nothing (bench/README.md).
pub const DEFAULT_LOCAL_QUEUE: usize = 500;

#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Jobs in flight at most.
    pub concurrency: usize,
    /// Claimed jobs held ready beyond the free slots, at most (the claim
    /// feed's local queue; deliveries have none). How many it holds follows
    /// the pace: what this worker finished in the last
    /// [`Pace::HORIZON`], so slow jobs are claimed one slot at a time
    /// and a fast drain claims hundreds per statement. 0: claim only for
    /// free slots.
    pub local_queue: usize,
    /// How long to wait for work before looking again.
    pub poll_interval: Duration,
    /// Drain what is due, then exit.
    pub once: bool,
    /// Exit after starting this many jobs.
    pub limit: Option<u64>,
    /// Only these job types (`None`: every registered type).
    pub types: Option<Vec<String>>,
    /// On shutdown, how long in-flight jobs may take to finish before they
    /// are released back to pending.
    pub shutdown_grace: Duration,
    /// Register in the `workers` table and obey pause/resume/drain.
    pub register: bool,
    /// Record claims, outcomes, run times and jobs in flight here (`jobline
    /// worker --metrics-listen`); `None`: nothing recorded.
    pub metrics: Option<WorkerMetrics>,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            concurrency: 4,
            local_queue: DEFAULT_LOCAL_QUEUE,
            poll_interval: Duration::from_secs(1),
            once: false,
            limit: None,
            types: None,
            shutdown_grace: Duration::from_secs(30),
            register: true,
            metrics: None,
        }
    }
}

/// What a worker run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Jobs this worker claimed and ran.
    pub processed: u64,
    pub succeeded: u64,
    /// Failed for good.
    pub failed: u64,
    /// Failed, will be retried.
    pub retried: u64,
    /// Messages dropped or jobs whose claim was lost.
    pub dropped: u64,
}

#[derive(Debug)]
struct Counters {
    processed: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    dropped: AtomicU64,
    /// Jobs whose handler ended and whose outcome is not recorded yet, at
    /// most [`SETTLING`]: a job frees its slot when its handler ends, and
    /// this keeps a stalled database from piling up finished jobs.
    settling: Semaphore,
    /// The metrics' label children, when the worker exports metrics.
    metrics: Option<WorkerInstruments>,
}

/// Finished jobs waiting for their outcome to be recorded, at most.
const SETTLING: usize = 1024;

impl Counters {
    fn new(metrics: Option<WorkerInstruments>) -> Self {
        Self {
            processed: AtomicU64::default(),
            succeeded: AtomicU64::default(),
            failed: AtomicU64::default(),
            retried: AtomicU64::default(),
            dropped: AtomicU64::default(),
            settling: Semaphore::new(SETTLING),
            metrics,
        }
    }

    /// Runs a claimed job's handler ([`Processor::execute`]), in flight
    /// and timed by type in the metrics.
    async fn execute(&self, p: &Processor, claim: Claim, claimed_at: tokio::time::Instant) -> Executed {
        let Some(metrics) = &self.metrics else {
            return p.execute(claim, claimed_at).await;
        };
        let running = metrics.start(&claim.job.job_type);
        let executed = p.execute(claim, claimed_at).await;
        running.finish();
        executed
    }

    fn claimed(&self, n: usize) {
        if let Some(m) = &self.metrics {
            m.claimed(n);
        }
    }

    fn record(&self, f: Finished) {
        if let Some(m) = &self.metrics {
            m.finished(f);
        }
        self.processed.fetch_add(1, Ordering::Relaxed);
        let c = match f {
            Finished::Completed => &self.succeeded,
            Finished::Failed => &self.failed,
            Finished::Retrying(_) => &self.retried,
            Finished::Stale => &self.dropped,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn summary(&self) -> Summary {
        Summary {
            processed: self.processed.load(Ordering::Relaxed),
            succeeded: self.succeeded.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// Runs until `shutdown` turns true (then finishes or releases in-flight
/// jobs within the grace), or `once`/`limit` says to stop. A
/// [`Feed::Claim`] worker claims due jobs in batches; a
/// [`Feed::Deliveries`] worker receives messages and claims each by id.
pub async fn run(
    processor: Processor,
    feed: Feed,
    options: WorkerOptions,
    shutdown: watch::Receiver<bool>,
) -> Summary {
    // The types this worker takes: claims (batches) and deliveries (by id)
    // both filter in the claiming statement itself.
    let types = options
        .types
        .clone()
        .unwrap_or_else(|| processor.registry().types());
    let processor = Arc::new(processor.with_types(Some(types.clone())));
    let permits = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let instruments = options.metrics.as_ref().map(|m| m.instruments(&types));
    let mut slots = Slots {
        registration: Registration::new(&processor, feed.kind(), &options),
        processor,
        options,
        counters: Arc::new(Counters::new(instruments)),
        permits,
        tasks: JoinSet::new(),
        started: 0,
        failing: Backoff::default(),
        shutdown,
    };
    tracing::info!(
        worker = slots.processor.worker(),
        queue = feed.kind(),
        concurrency = slots.options.concurrency,
        "worker started"
    );
    match feed {
        Feed::Claim(wakeups) => {
            claim_loop(&mut slots, wakeups.as_ref(), &types).await;
            slots.finish().await
        }
        Feed::Deliveries(broker) => {
            delivery_loop(&mut slots, broker.clone()).await;
            let worker = slots.processor.worker().to_owned();
            let summary = slots.finish().await;
            // What this consumer received and did not settle goes back now,
            // not when its liveness mark expires.
            match broker.hand_back(&worker).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(messages = n, "handed unsettled messages back to the queue"),
                Err(e) => tracing::warn!(error = %e, "could not hand messages back; recovery will"),
            }
            summary
        }
    }
}

/// What both loops share: the slots (permits) and their tasks, the
/// counters, the registration and the stop conditions.
struct Slots {
    processor: Arc<Processor>,
    options: WorkerOptions,
    counters: Arc<Counters>,
    permits: Arc<Semaphore>,
    tasks: JoinSet<()>,
    started: u64,
    /// Consecutive failures to reach the feed (Postgres or the broker down).
    failing: Backoff,
    registration: Registration,
    shutdown: watch::Receiver<bool>,
}

/// What the loop should do next.
enum Turn {
    /// Take up to this many jobs.
    Take(usize),
    /// Look again (paused, or woken by the shutdown signal).
    Again,
    Stop,
}

impl Slots {
    fn stopping(&self) -> bool {
        *self.shutdown.borrow() || self.options.limit.is_some_and(|l| self.started >= l)
    }

    /// Beats, obeys the operator, waits for a free slot; says how many jobs
    /// to take.
    async fn next_turn(&mut self) -> Turn {
        if self.stopping() {
            return Turn::Stop;
        }
        match self.obey().await {
            WorkerCommand::Running => {}
            WorkerCommand::Draining => return Turn::Stop,
            WorkerCommand::Paused => {
                self.idle(self.options.poll_interval).await;
                return Turn::Again;
            }
        }
        // Wait for a free slot (or shutdown).
        let free = tokio::select! {
            p = self.permits.clone().acquire_many_owned(1) => match p { Ok(p) => p, Err(_) => return Turn::Stop },
            _ = self.shutdown.changed() => return Turn::Again,
        };
        drop(free);
        // Completions come back together (they share statements): let the
        // other finishing tasks free their slots, then take work for all of
        // them at once.
        tokio::task::yield_now().await;
        let available = self.permits.available_permits().max(1);
        Turn::Take(match self.options.limit {
            Some(l) => available.min((l - self.started) as usize),
            None => available,
        })
    }

    /// Reaps finished tasks, beats (at most once per interval) and says
    /// what the operator wants.
    async fn obey(&mut self) -> WorkerCommand {
        while self.tasks.try_join_next().is_some() {}
        let in_flight = self.options.concurrency.max(1) - self.permits.available_permits();
        let command = self
            .registration
            .beat(&self.processor, &self.counters, in_flight, "running")
            .await;
        if command == WorkerCommand::Draining {
            tracing::info!("draining on request: finishing in-flight jobs, then exiting");
        }
        command
    }

    /// Runs what a receive brought, in one task: one statement claims
    /// their jobs (so the next receive need not wait for it), then each job
    /// takes a slot as one frees up (in order), runs, and its message is
    /// acked or nacked. A job that waited a heartbeat interval for a slot,
    /// or was still waiting when the worker stops, is handed back unstarted
    /// (its attempt unspent) and its message comes back at once.
    fn spawn_deliveries(&mut self, deliveries: Vec<Delivery>, broker: Arc<dyn Broker>, ahead: &Ahead) {
        ahead.add(deliveries.len());
        self.started += deliveries.len() as u64;
        let (p, c) = (self.processor.clone(), self.counters.clone());
        let (permits, shutdown, ahead) = (self.permits.clone(), self.shutdown.clone(), ahead.clone());
        self.tasks.spawn(async move {
            let taken = p.take_until(&deliveries, None).await;
            c.claimed(taken.iter().filter(|t| matches!(t, Taken::Run(_))).count());
            let claimed_at = tokio::time::Instant::now();
            let max_wait = p.max_claim_wait();
            let runs = deliveries.into_iter().zip(taken).map(|(d, t)| {
                let (p, c, broker, permits, ahead) = (&p, &c, broker.as_ref(), permits.clone(), &ahead);
                let mut shutdown = shutdown.clone();
                async move {
                    let Taken::Run(claim) = t else {
                        ahead.left();
                        return settle_delivery(p, c, broker, d, t, claimed_at, None).await;
                    };
                    let permit = tokio::select! {
                        biased;
                        _ = shutdown.wait_for(|stop| *stop) => None,
                        got = tokio::time::timeout(max_wait, permits.acquire_owned()) => got.ok().and_then(Result::ok),
                    };
                    ahead.left();
                    match permit {
                        Some(permit) => settle_delivery(p, c, broker, d, Taken::Run(claim), claimed_at, Some(permit)).await,
                        None => give_back(p, broker, &d, &claim).await,
                    }
                }
            });
            futures::future::join_all(runs).await;
        });
    }

    /// Runs `job` in the slot `permit` holds; the job may free it early.
    fn spawn_in(
        &mut self,
        permit: tokio::sync::OwnedSemaphorePermit,
        job: impl FnOnce(Arc<Processor>, Arc<Counters>, tokio::sync::OwnedSemaphorePermit) -> BoxedJob,
    ) {
        self.started += 1;
        let task = job(self.processor.clone(), self.counters.clone(), permit);
        self.tasks.spawn(task);
    }

    /// Sleeps `for_`, or less when told to stop.
    async fn idle(&mut self, for_: Duration) {
        tokio::select! {
            () = tokio::time::sleep(for_) => {}
            _ = self.shutdown.changed() => {}
        }
    }

    /// Stops taking work; lets in-flight jobs finish within the grace, then
    /// releases what is left.
    async fn finish(mut self) -> Summary {
        let tasks = &mut self.tasks;
        let drained = tokio::time::timeout(self.options.shutdown_grace, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                in_flight = self.tasks.len(),
                "grace period over: releasing in-flight jobs"
            );
            self.tasks.abort_all();
            release_mine(&self.processor).await;
        }
        self.registration.last_beat = None;
        self.registration
            .beat(&self.processor, &self.counters, 0, "stopped")
            .await;
        let summary = self.counters.summary();
        tracing::info!(?summary, "worker stopped");
        summary
    }
}

/// Capped, jittered exponential backoff while the feed keeps failing: from
/// 100 ms, doubling, at most [`Backoff::CAP`], each wait between half and
/// all of that.
#[derive(Debug, Default)]
struct Backoff {
    count: u32,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const CAP: Duration = Duration::from_secs(10);

    /// Counts a failure; how long to wait before the next try.
    fn next(&mut self) -> Duration {
        self.count = self.count.saturating_add(1);
        let full = Self::FIRST
            .saturating_mul(2u32.saturating_pow(self.count - 1))
            .min(Self::CAP);
        full.mul_f64(0.5 + rand::random::<f64>() / 2.0)
    }

    fn reset(&mut self) {
        self.count = 0;
    }
}

type BoxedJob = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The claim feed: claims land in a local queue (at most the free slots
/// plus what the pace calls for, [`LocalQueue`]) and start as slots free up,
/// while the next claim runs beside them; when nothing is due, wait for a
/// wake-up or the poll interval. Claims never started go back at once
/// (stop, pause, or held for a heartbeat interval), their attempt unspent.
async fn claim_loop(slots: &mut Slots, wakeups: &dyn Wakeups, types: &[String]) {
    let mut queue = LocalQueue::new(slots.options.local_queue, slots.processor.max_claim_wait());
    let mut refill: Option<Refill> = None;
    // Set when the last claim found nothing: no claim until a wake-up.
    let mut asleep: Option<u64> = None;
    let mut finished = false;
    loop {
        // `once`: after a claim found nothing, what is queued is the rest.
        let drained = slots.options.once && asleep.is_some() && queue.is_empty();
        if slots.stopping() || finished || drained {
            break;
        }
        match slots.obey().await {
            WorkerCommand::Running => {}
            WorkerCommand::Draining => break,
            WorkerCommand::Paused => {
                if let Some(r) = refill.take() {
                    let (_, at, claimed) = r.await;
                    queue.extend(claimed.unwrap_or_default(), at);
                }
                queue.hand_back_all(&slots.processor, "paused").await;
                slots.idle(slots.options.poll_interval).await;
                continue;
            }
        }
        if queue.hand_back_expired(&slots.processor).await > 0 {
            // Due again: claimable (by this worker too) once a slot frees.
            asleep = None;
        }
        // Start what the free slots can take.
        while let Some(permit) = queue
            .peek()
            .and_then(|_| slots.permits.clone().try_acquire_owned().ok())
        {
            let (claim, claimed_at) = queue.pop().expect("peeked");
            // The slot is the handler's: it frees as the handler ends, and
            // the completion waits for its shared statement without it.
            slots.spawn_in(permit, |p, c, permit| {
                Box::pin(async move {
                    let executed = c.execute(&p, claim, claimed_at).await;
                    let settling = c.settling.acquire().await;
                    drop(permit);
                    c.record(p.settle(executed).await);
                    drop(settling);
                })
            });
        }
        if slots.options.once && asleep.is_some() && queue.is_empty() {
            break;
        }
        let free = slots.permits.available_permits();
        let headroom = slots.options.limit.map_or(usize::MAX, |l| {
            (l.saturating_sub(slots.started) as usize).saturating_sub(queue.len())
        });
        if refill.is_none() && asleep.is_none() {
            let want = queue
                .wanted(free, slots.counters.processed.load(Ordering::Relaxed))
                .min(headroom);
            if want > 0 {
                let mark = wakeups.mark();
                let store = slots.processor.store().clone();
                let worker = slots.processor.worker().to_owned();
                let types = types.to_vec();
                let free = free.min(want) as u32;
                let counters = slots.counters.clone();
                refill = Some(Box::pin(async move {
                    // Before the statement: the claims' heartbeat is its now.
                    let at = tokio::time::Instant::now();
                    let claimed = store.claim_ahead(&worker, want as u32, free, Some(&types)).await;
                    if let Ok(claims) = &claimed {
                        counters.claimed(claims.len());
                    }
                    (mark, at, claimed)
                }));
            }
        }
        let tick = slots.registration.every.min(Duration::from_secs(1));
        tokio::select! {
            biased;
            _ = slots.shutdown.changed() => {}
            (mark, at, claimed) = async { refill.as_mut().expect("guarded").await }, if refill.is_some() => {
                refill = None;
                match claimed {
                    Ok(claims) => {
                        slots.failing.reset();
                        if claims.is_empty() {
                            asleep = Some(mark);
                        }
                        queue.extend(claims, at);
                    }
                    Err(e) => {
                        let wait = slots.failing.next();
                        tracing::warn!(error = %e, retry_in = ?wait, failures = slots.failing.count, "claim failed; backing off");
                        if slots.options.once {
                            finished = true;
                        } else {
                            slots.idle(wait).await;
                        }
                    }
                }
            }
            // A slot frees up: start a queued claim, or claim for it.
            Ok(permit) = slots.permits.clone().acquire_owned(),
                if !queue.is_empty() || (refill.is_none() && asleep.is_none() && free == 0) => drop(permit),
            () = async { wakeups.wait(asleep.expect("guarded"), slots.options.poll_interval).await }, if asleep.is_some() && refill.is_none() && !slots.options.once => {
                asleep = None;
            }
            () = tokio::time::sleep(tick) => {}
        }
    }
    // Whatever was claimed and not started goes back now.
    if let Some(r) = refill.take() {
        let (_, at, claimed) = r.await;
        queue.extend(claimed.unwrap_or_default(), at);
    }
    queue.hand_back_all(&slots.processor, "stopping").await;
}

/// A claim in flight: the wake-up mark taken before it, when it was sent,
/// and what it got.
type Refill = std::pin::Pin<
    Box<dyn std::future::Future<Output = (u64, tokio::time::Instant, Result<Vec<Claim>, StoreError>)> + Send>,
>;

/// Claims taken ahead of the free slots, oldest first. How many it holds
/// follows the pace: beyond the free slots, what this worker finished in
/// the last [`Pace::HORIZON`] (at most the configured bound), so a claim
/// waits here about that long, a fast drain claims hundreds per statement
/// and a slow one claims only for its free slots.
struct LocalQueue {
    claims: std::collections::VecDeque<(Claim, tokio::time::Instant)>,
    bound: usize,
    /// Claims older than this go back (their heartbeat is the claim's).
    max_wait: Duration,
    pace: Pace,
}

impl LocalQueue {
    fn new(bound: usize, max_wait: Duration) -> Self {
        Self {
            claims: std::collections::VecDeque::new(),
            bound,
            max_wait,
            pace: Pace::default(),
        }
    }

    fn len(&self) -> usize {
        self.claims.len()
    }

    fn is_empty(&self) -> bool {
        self.claims.is_empty()
    }

    fn peek(&self) -> Option<&Claim> {
        self.claims.front().map(|(c, _)| c)
    }

    fn pop(&mut self) -> Option<(Claim, tokio::time::Instant)> {
        self.claims.pop_front()
    }

    /// Queues claims made by a statement sent at `at`.
    fn extend(&mut self, claims: Vec<Claim>, at: tokio::time::Instant) {
        self.claims.extend(claims.into_iter().map(|c| (c, at)));
    }

    /// How many to claim now, given the free slots and the count of jobs
    /// finished so far: none while the queue holds more than half of what
    /// the pace calls for (and covers the free slots).
    fn wanted(&mut self, free: usize, finished: u64) -> usize {
        let ahead = self.pace.ahead(finished, self.bound, self.max_wait);
        wanted(free, ahead, self.len())
    }

    /// Hands back the claims that waited longer than a heartbeat interval;
    /// says how many.
    async fn hand_back_expired(&mut self, processor: &Processor) -> usize {
        let now = tokio::time::Instant::now();
        let expired = self
            .claims
            .iter()
            .take_while(|(_, at)| now.duration_since(*at) >= self.max_wait)
            .count();
        if expired > 0 {
            let old: Vec<_> = self.claims.drain(..expired).map(|(c, _)| c.token()).collect();
            processor
                .hand_back(&old, true, "waited a heartbeat interval")
                .await;
        }
        expired
    }

    async fn hand_back_all(&mut self, processor: &Processor, why: &str) {
        let all: Vec<_> = self.claims.drain(..).map(|(c, _)| c.token()).collect();
        processor.hand_back(&all, true, why).await;
    }
}

/// How many to take now with `free` slots, the pace calling for `ahead`
/// beyond them and `queued` already waiting: none while more than half of
/// `ahead` waits (and covers the free slots).
fn wanted(free: usize, ahead: usize, queued: usize) -> usize {
    if queued >= free && queued * 2 > ahead {
        return 0;
    }
    (free + ahead).saturating_sub(queued)
}

/// The worker's pace: jobs finished per second, smoothed.
#[derive(Debug, Default)]
struct Pace {
    per_second: f64,
    /// The last sample of the count of finished jobs, and when.
    sampled: Option<(tokio::time::Instant, u64)>,
}

impl Pace {
    /// What a worker holds ready beyond its free slots: what it finished in
    /// the last `HORIZON` (no longer than half of `max_wait`, the wait that
    /// sends a claim back), at most `bound`. `finished`: the count so far.
    const HORIZON: Duration = Duration::from_millis(250);

    fn ahead(&mut self, finished: u64, bound: usize, max_wait: Duration) -> usize {
        let now = tokio::time::Instant::now();
        match self.sampled {
            Some((at, count)) if now.duration_since(at) >= Duration::from_millis(20) => {
                let rate = finished.saturating_sub(count) as f64 / now.duration_since(at).as_secs_f64();
                self.per_second = 0.5 * self.per_second + 0.5 * rate;
                self.sampled = Some((now, finished));
            }
            Some(_) => {}
            None => self.sampled = Some((now, finished)),
        }
        let horizon = Self::HORIZON.min(max_wait / 2);
        ((self.per_second * horizon.as_secs_f64()) as usize).min(bound)
    }
}

/// The delivery feed: receive up to one message per free slot, claim each
/// job by id, then ack or nack the message as the attempt ended.
async fn delivery_loop(slots: &mut Slots, broker: Arc<dyn Broker>) {
    let mut pace = Pace::default();
    let ahead = Ahead::default();
    loop {
        let free = match slots.next_turn().await {
            Turn::Take(n) => n,
            Turn::Again => continue,
            Turn::Stop => break,
        };
        let bound = slots.options.local_queue;
        let ahead_wanted = pace.ahead(
            slots.counters.processed.load(Ordering::Relaxed),
            bound,
            slots.processor.max_claim_wait(),
        );
        let headroom = slots
            .options
            .limit
            .map_or(usize::MAX, |l| l.saturating_sub(slots.started) as usize);
        let want = wanted(free, ahead_wanted, ahead.waiting()).min(headroom);
        if want == 0 {
            // Enough is waiting for a slot: until one of them starts.
            tokio::select! {
                () = ahead.started.notified() => {}
                () = tokio::time::sleep(slots.options.poll_interval) => {}
                _ = slots.shutdown.changed() => {}
            }
            continue;
        }
        let wait = if slots.options.once {
            Duration::ZERO
        } else {
            slots.options.poll_interval
        };
        let received = tokio::select! {
            // The broker caps it: SQS at 10.
            r = broker.receive(slots.processor.worker(), want, wait) => r,
            _ = slots.shutdown.changed() => continue,
        };
        match received {
            Ok(deliveries) => {
                slots.failing.reset();
                if deliveries.is_empty() {
                    if slots.options.once {
                        break;
                    }
                    continue;
                }
                slots.spawn_deliveries(deliveries, broker.clone(), &ahead);
            }
            Err(e) => {
                let wait = slots.failing.next().max(slots.options.poll_interval);
                tracing::warn!(error = %e, retry_in = ?wait, failures = slots.failing.count, "receive failed; backing off");
                if slots.options.once {
                    break;
                }
                slots.idle(wait).await;
            }
        }
    }
}

/// Deliveries received ahead of the free slots: how many wait for one, and
/// a signal each time one starts (or goes back).
#[derive(Debug, Clone, Default)]
struct Ahead {
    count: Arc<AtomicU64>,
    started: Arc<tokio::sync::Notify>,
}

impl Ahead {
    fn waiting(&self) -> usize {
        self.count.load(Ordering::Relaxed) as usize
    }

    fn add(&self, n: usize) {
        self.count.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn left(&self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
        self.started.notify_one();
    }
}

/// Runs a delivery's job when it has one in the slot `permit` holds (freed
/// as the handler ends), then acks or nacks the message as the attempt
/// ended.
async fn settle_delivery(
    p: &Processor,
    c: &Counters,
    broker: &dyn Broker,
    d: Delivery,
    taken: Taken,
    claimed_at: tokio::time::Instant,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
) {
    let (outcome, finished) = match taken {
        Taken::Run(claim) => {
            let executed = c.execute(p, *claim, claimed_at).await;
            let settling = c.settling.acquire().await;
            drop(permit);
            let finished = p.settle(executed).await;
            drop(settling);
            (Disposition::after(finished), Some(finished))
        }
        Taken::Answer(disposition) => (disposition, None),
    };
    match finished {
        Some(f) => c.record(f),
        None => {
            c.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
    let result = match outcome {
        Disposition::Ack => broker.ack(p.worker(), &d).await,
        Disposition::Retry(delay) => broker.nack(p.worker(), &d, delay).await,
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not settle the message with the broker");
    }
}

/// A claim received ahead and never started goes back to pending (its
/// attempt unspent), and its message back to the queue at once.
async fn give_back(p: &Processor, broker: &dyn Broker, d: &Delivery, claim: &Claim) {
    // Its message goes back below: no second wake-up.
    p.hand_back(&[claim.token()], false, "waited for a slot").await;
    if let Err(e) = broker.nack(p.worker(), d, Duration::ZERO).await {
        tracing::warn!(error = %e, "could not give the message back; the broker's recovery will");
    }
}

/// The worker's row in `workers`: refreshed at most once per poll interval.
struct Registration {
    enabled: bool,
    beat: WorkerBeat,
    every: Duration,
    last_beat: Option<tokio::time::Instant>,
    last_command: WorkerCommand,
}

impl Registration {
    fn new(processor: &Processor, queue: &str, options: &WorkerOptions) -> Self {
        Self {
            enabled: options.register,
            beat: WorkerBeat {
                id: processor.worker().to_owned(),
                host: host_name(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                queue: queue.to_owned(),
                concurrency: i32::try_from(options.concurrency.max(1)).unwrap_or(i32::MAX),
                started_at: processor.store().now(),
                in_flight: 0,
                processed: 0,
                failed: 0,
                state: "running".into(),
                job_types: Some(processor.served_types()),
            },
            every: options.poll_interval.min(Duration::from_secs(5)),
            last_beat: None,
            last_command: WorkerCommand::Running,
        }
    }

    async fn beat(
        &mut self,
        processor: &Processor,
        counters: &Counters,
        in_flight: usize,
        state: &str,
    ) -> WorkerCommand {
        if !self.enabled {
            return WorkerCommand::Running;
        }
        if self.last_beat.is_some_and(|t| t.elapsed() < self.every) {
            return self.last_command;
        }
        self.last_beat = Some(tokio::time::Instant::now());
        let summary = counters.summary();
        self.beat.in_flight = i32::try_from(in_flight).unwrap_or(i32::MAX);
        self.beat.processed = i64::try_from(summary.processed).unwrap_or(i64::MAX);
        self.beat.failed = i64::try_from(summary.failed).unwrap_or(i64::MAX);
        self.beat.state = match (state, self.last_command) {
            ("running", WorkerCommand::Paused) => "paused".into(),
            ("running", WorkerCommand::Draining) => "draining".into(),
            (s, _) => s.to_owned(),
        };
        match processor.store().worker_beat(&self.beat).await {
            Ok(command) => {
                if command != self.last_command {
                    tracing::info!(?command, "operator instruction");
                }
                self.last_command = command;
            }
            Err(e) => tracing::warn!(error = %e, "could not refresh the worker registration"),
        }
        self.last_command
    }
}

/// Puts this worker's claims back to pending (counted as a failed attempt
/// with `WORKER_SHUTDOWN`, retried after backoff).
async fn release_mine(processor: &Processor) {
    let store = processor.store();
    let Ok(running) = store.claims_of(processor.worker()).await else {
        return;
    };
    for claim in running {
        let failure = JobFailure::retryable("WORKER_SHUTDOWN", "the worker stopped before the job finished");
        let _ = store.fail(&claim, &failure).await;
    }
}

/// This machine's name (for worker ids and the registry): the kernel's
/// host name (what gethostname(2) returns, read from procfs on Linux, the
/// only target), else `/etc/hostname`, else `unknown`.
pub fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|h| h.trim().to_owned())
        .find(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// A worker id unique to this process start: `<host>-<pid>-<random>`. The
/// random part keeps two processes apart even when the host name is
/// `unknown` or a pid is reused after a restart, so a worker releasing its
/// own claims at shutdown never releases another's.
pub fn unique_worker_id(prefix: &str) -> String {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}-{}", std::process::id(), &nonce[..8])
}
