//! The SQS-triggered consumer Lambda: each record of an `SqsEvent` is a
//! delivery for the shared processing core ([`Processor::handle_delivery`]);
//! the answer is an [`SqsBatchResponse`] naming only the records that should
//! come back (partial batch failures; the event source mapping needs
//! `FunctionResponseTypes: ReportBatchItemFailures`).
//!
//! - processed, dropped (done, cancelled, claimed elsewhere, unknown job,
//!   unparseable body) and permanently failed records are not named: Lambda
//!   deletes them;
//! - retryable failures and jobs not yet due are named, and their visibility
//!   is changed to the delay first (`ChangeMessageVisibility`), so SQS hands
//!   them out again when the job is due rather than after the queue's
//!   visibility timeout. If that call fails the record is still named.
//!
//! One statement claims the jobs of all of a batch's records
//! ([`Processor::take_until`]); they run concurrently, at most
//! `JOBLINE_CONSUMER_CONCURRENCY` (default 10, an event's records at the
//! default batch size, [`ConsumerConfig`]) at once, and their completions
//! share statements (`store::batcher`). Duplicate records of one job, in a batch or across batches,
//! complete it once: the store's claim decides, the queue only wakes.
//!
//! The invocation's deadline is respected ([`Processor::handle_delivery_until`]):
//! a record whose job could not finish in the time left is returned at once
//! without claiming it (no attempt spent), and a job still running just
//! before the deadline is failed as `DEADLINE` (retryable) instead of being
//! frozen with the sandbox until the heartbeat timeout. The consumer serves
//! `JOBLINE_JOB_TYPES` (default: every registered type); at cold start each
//! of them must have a handler timeout that fits in the function's timeout
//! (`JOBLINE_CONSUMER_TIMEOUT_SECONDS`, [`check_served_types`]), and a message
//! of another type is dropped: those types are served by edge workers, which
//! claim from Postgres.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt as _;
use jobline::StartError;
use jobline::config::ConsumerConfig;
use jobline::queue::sqs::SqsQueue;
use jobline::queue::{Broker as _, Delivery, Message};
use jobline::worker::{DEADLINE_MARGIN, Disposition, Finished, OtherTypes, Processor, Taken};
use tokio::sync::OnceCell;

/// What became of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOutcome {
    pub message_id: String,
    pub disposition: Disposition,
    /// How the job's attempt ended, when this record ran one.
    pub finished: Option<Finished>,
    /// For a record that comes back: whether its visibility was changed to
    /// the delay.
    pub delay_applied: bool,
}

impl RecordOutcome {
    /// Should SQS hand this record out again?
    pub fn returned(&self) -> bool {
        matches!(self.disposition, Disposition::Retry(_))
    }
}

/// The consumer, built once per cold start.
#[derive(Debug, Clone)]
pub struct Consumer {
    processor: Processor,
    /// Built at the first record that needs it (a delay to apply), not at
    /// cold start: most batches complete without an SQS call, and loading
    /// the AWS config is most of this function's time to readiness.
    sqs: Arc<OnceCell<aws_sdk_sqs::Client>>,
    options: Arc<ConsumerConfig>,
}

impl Consumer {
    pub fn new(processor: Processor, sqs: aws_sdk_sqs::Client, options: ConsumerConfig) -> Self {
        Self {
            processor,
            sqs: Arc::new(OnceCell::new_with(Some(sqs))),
            options: Arc::new(options),
        }
    }

    /// From the configuration (read once at cold start): the store, the
    /// processor with the production handlers, the consumer's own section;
    /// the SQS client comes from the standard AWS chain when first needed.
    pub fn from_config(config: &jobline::Config) -> Result<Self, ConsumerStartError> {
        let store = jobline::connect(config)?;
        let processor = jobline::app::processor(config, store, config.consumer.worker_id())
            .with_types(config.job_types.clone())
            .with_other_types(OtherTypes::Drop);
        if let Some(timeout) = config.consumer.timeout {
            check_served_types(&processor, timeout)?;
        }
        Ok(Self::lazy(processor, config.consumer.clone()))
    }

    /// A consumer whose SQS client is loaded from the AWS environment
    /// (`aws_config`) the first time a record needs it.
    pub fn lazy(processor: Processor, options: ConsumerConfig) -> Self {
        Self {
            processor,
            sqs: Arc::new(OnceCell::new()),
            options: Arc::new(options),
        }
    }

    /// Whether the SQS client has been built yet.
    pub fn sqs_loaded(&self) -> bool {
        self.sqs.initialized()
    }

    /// The SQS client, built from the environment on first use.
    async fn sqs(&self) -> &aws_sdk_sqs::Client {
        self.sqs
            .get_or_init(|| async { SqsQueue::from_env(String::new()).await.client().clone() })
            .await
    }

    pub fn processor(&self) -> &Processor {
        &self.processor
    }

    pub fn options(&self) -> &ConsumerConfig {
        &self.options
    }

    /// Handles one batch: the records that should come back.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        self.handle_until(event, None).await
    }

    /// Handles one batch within an invocation that ends at `deadline`.
    pub async fn handle_until(
        &self,
        event: SqsEvent,
        deadline: Option<tokio::time::Instant>,
    ) -> SqsBatchResponse {
        let outcomes = self.process_until(event, deadline).await;
        let mut response = SqsBatchResponse::default();
        let mut named: HashSet<&str> = HashSet::new();
        for outcome in &outcomes {
            if outcome.returned() && named.insert(&outcome.message_id) {
                response.add_failure(outcome.message_id.clone());
            }
        }
        response
    }

    /// Processes every record (at most `concurrency` at once) and says what
    /// became of each, in the event's order.
    pub async fn process(&self, event: SqsEvent) -> Vec<RecordOutcome> {
        self.process_until(event, None).await
    }

    /// [`Self::process`] within an invocation that ends at `deadline`.
    pub async fn process_until(
        &self,
        event: SqsEvent,
        deadline: Option<tokio::time::Instant>,
    ) -> Vec<RecordOutcome> {
        let total = event.records.len();
        // One statement claims every record's job; each then runs in a slot.
        let deliveries: Vec<Delivery> = event.records.iter().map(delivery_of).collect();
        let taken = self.processor.take_until(&deliveries, deadline).await;
        let claimed_at = tokio::time::Instant::now();
        let mut outcomes: Vec<(usize, RecordOutcome)> =
            futures::stream::iter(event.records.into_iter().zip(deliveries).zip(taken).enumerate())
                .map(|(i, ((record, delivery), taken))| async move {
                    (
                        i,
                        self.process_record(record, delivery, taken, claimed_at, deadline)
                            .await,
                    )
                })
                .buffer_unordered(self.options.concurrency.max(1))
                .collect()
                .await;
        outcomes.sort_by_key(|(i, _)| *i);
        let outcomes: Vec<RecordOutcome> = outcomes.into_iter().map(|(_, o)| o).collect();
        let returned = outcomes.iter().filter(|o| o.returned()).count();
        let count = |f: Finished| outcomes.iter().filter(|o| o.finished == Some(f)).count();
        tracing::info!(
            records = total,
            returned,
            completed = count(Finished::Completed),
            failed = count(Finished::Failed),
            "batch done"
        );
        outcomes
    }

    async fn process_record(
        &self,
        record: SqsMessage,
        delivery: Delivery,
        taken: Taken,
        claimed_at: tokio::time::Instant,
        deadline: Option<tokio::time::Instant>,
    ) -> RecordOutcome {
        let message_id = record.message_id.clone().unwrap_or_default();
        let (disposition, finished) = match taken {
            Taken::Run(claim) => self.processor.run_taken(*claim, claimed_at, deadline).await,
            Taken::Answer(disposition) => (disposition, None),
        };
        let mut outcome = RecordOutcome {
            message_id,
            disposition,
            finished,
            delay_applied: false,
        };
        if let Disposition::Retry(delay) = disposition {
            // Past the deadline, or nearly: answer rather than call SQS;
            // the record is still named and its visibility decides.
            let time_left = deadline.map(|d| d.saturating_duration_since(tokio::time::Instant::now()));
            if time_left.is_none_or(|left| left > Duration::from_secs(2)) {
                outcome.delay_applied = self.apply_delay(&record, &delivery, delay).await;
            }
        }
        if outcome.message_id.is_empty() && outcome.returned() {
            // Naming an empty id would make Lambda retry the whole batch.
            tracing::warn!("a record without a messageId cannot be returned; its visibility decides");
            outcome.disposition = Disposition::Ack;
        }
        outcome
    }

    /// `ChangeMessageVisibility` to `delay` (rounded up to whole seconds).
    async fn apply_delay(&self, record: &SqsMessage, delivery: &Delivery, delay: Duration) -> bool {
        if delivery.receipt.is_empty() {
            tracing::warn!("record without a receipt handle: cannot delay it");
            return false;
        }
        let Some(url) = self.queue_url_for(record) else {
            tracing::warn!(
                arn = record.event_source_arn.as_deref().unwrap_or_default(),
                "no queue URL for the record (set SQS_QUEUE_URL): cannot delay it"
            );
            return false;
        };
        let secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
        let queue = SqsQueue::with_client(self.sqs().await.clone(), url);
        match queue
            .nack("sqs-consumer", delivery, Duration::from_secs(secs))
            .await
        {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, delay_secs = secs, "could not change the message's visibility");
                false
            }
        }
    }

    /// The URL of the queue a record came from: `SQS_QUEUE_URL` when the
    /// record's ARN names that queue (or has no ARN), else the ARN mapped to
    /// a URL.
    pub fn queue_url_for(&self, record: &SqsMessage) -> Option<String> {
        let configured = self.options.queue_url.as_deref();
        let Some(arn) = record.event_source_arn.as_deref().and_then(QueueArn::parse) else {
            return configured.map(str::to_owned);
        };
        if let Some(url) = configured
            && url.trim_end_matches('/').rsplit('/').next() == Some(arn.name)
        {
            return Some(url.to_owned());
        }
        Some(arn.url(self.options.endpoint_url.as_deref()))
    }
}

/// An SQS queue ARN: `arn:<partition>:sqs:<region>:<account>:<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueArn<'a> {
    pub partition: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub name: &'a str,
}

impl<'a> QueueArn<'a> {
    pub fn parse(arn: &'a str) -> Option<Self> {
        let mut parts = arn.split(':');
        let (Some("arn"), Some(partition), Some("sqs"), Some(region), Some(account), Some(name), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        if [partition, region, account, name].iter().any(|p| p.is_empty()) {
            return None;
        }
        Some(Self {
            partition,
            region,
            account,
            name,
        })
    }

    /// The queue's URL on `endpoint`, or on the region's public endpoint.
    pub fn url(&self, endpoint: Option<&str>) -> String {
        let base = match endpoint {
            Some(e) => e.trim_end_matches('/').to_owned(),
            None => {
                let domain = if self.partition == "aws-cn" {
                    "amazonaws.com.cn"
                } else {
                    "amazonaws.com"
                };
                format!("https://sqs.{}.{domain}", self.region)
            }
        };
        format!("{base}/{}/{}", self.account, self.name)
    }
}

/// Why the consumer did not start.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerStartError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Store(#[from] jobline::StoreError),
    #[error(
        "JOBLINE_JOB_TYPES: {0}; leave these types to edge workers (they claim from Postgres) \
         or raise the function's timeout (ConsumerTimeoutSeconds)"
    )]
    TypesDoNotFit(String),
}

/// Of an invocation's time, what passes before a record can start (the
/// batch's hand-out, a cold start's first connection): the cold-start check
/// keeps it free, so a type that passes it can start in every invocation.
pub const START_SLACK: Duration = Duration::from_secs(2);

/// Every type `processor` serves has a handler whose timeout, plus
/// [`DEADLINE_MARGIN`] and [`START_SLACK`], fits in the function's
/// `timeout`: a type that does not could never be started by this consumer
/// (the invocation claims only what fits the time left), and its messages
/// would be returned until they reached the dead-letter queue.
pub fn check_served_types(processor: &Processor, timeout: Duration) -> Result<(), ConsumerStartError> {
    let problems: Vec<String> = processor
        .served_types()
        .into_iter()
        .filter_map(|t| match processor.registry().get(&t) {
            None => Some(format!("{t} has no handler")),
            Some(h) if h.timeout() + DEADLINE_MARGIN + START_SLACK > timeout => Some(format!(
                "{t} may take {} s (its handler's timeout) plus {} s to start and record, more than the function's {} s",
                h.timeout().as_secs(),
                (DEADLINE_MARGIN + START_SLACK).as_secs(),
                timeout.as_secs()
            )),
            Some(_) => None,
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConsumerStartError::TypesDoNotFit(problems.join("; ")))
    }
}

/// The invocation's deadline (`Lambda-Runtime-Deadline-Ms`, milliseconds
/// since the epoch) as a point on the runtime's clock. A deadline already
/// past when the invocation starts is no deadline (`None`; the runtime loop
/// then counts the function's timeout from now): Lambda never sends one, and
/// cargo-lambda's emulator sends a fixed 600000 (1970) to every invocation;
/// taking it literally would return every record.
pub fn deadline_of(context: &lambda_runtime::Context) -> Option<tokio::time::Instant> {
    let Some(left) = crate::time_left(context) else {
        tracing::warn!(
            deadline_ms = context.deadline,
            "the invocation's deadline has already passed: running without one"
        );
        return None;
    };
    Some(tokio::time::Instant::now() + left)
}

/// A record as the processing core's delivery.
pub fn delivery_of(record: &SqsMessage) -> Delivery {
    let raw = record.body.clone().unwrap_or_default();
    Delivery {
        message: Message::parse(&raw),
        raw,
        receipt: record.receipt_handle.clone().unwrap_or_default(),
        receive_count: record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1),
    }
}

/// Runs the Lambda runtime loop for the consumer: config, pool, registry and
/// SQS client once per cold start.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let config = crate::secrets::config_from_env().await?;
    let _telemetry = jobline::telemetry::init(&config);
    let consumer = Consumer::from_config(&config)?;
    tracing::info!(
        worker = consumer.processor().worker(),
        concurrency = consumer.options().concurrency,
        types = ?consumer.processor().served_types(),
        "sqs consumer ready"
    );
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<SqsEvent>| {
            let consumer = consumer.clone();
            async move {
                // No usable deadline (the emulator's): the function's timeout
                // from now, when it is known.
                let deadline = deadline_of(&event.context).or_else(|| {
                    consumer
                        .options()
                        .timeout
                        .map(|t| tokio::time::Instant::now() + t)
                });
                let answer = consumer.handle_until(event.payload, deadline).await;
                jobline::telemetry::flush(jobline::telemetry::LAMBDA_FLUSH);
                Ok::<_, lambda_runtime::Error>(answer)
            }
        },
    ))
    .await
}
