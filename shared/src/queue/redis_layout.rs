//! The Redis wire layout shared by the `redis` adapter (native connection)
//! and the `upstash` adapter (Upstash REST), so that both interoperate on
//! one Redis. Operators' runbooks depend on these names:
//!
//! | key | type | what |
//! |---|---|---|
//! | `<queue>` | LIST | waiting messages, each the message JSON (`{"jobId":"...","timestamp":...}`); published with `LPUSH`, taken from the tail, so `LRANGE <queue> 0 -1` shows them newest first |
//! | `<queue>:processing:<consumer>` | LIST | what a consumer received and has not acked yet (moved there atomically by `LMOVE` / `BLMOVE`) |
//! | `<queue>:delayed` | ZSET | delayed messages, scored by due time in Unix ms; promoted to `<queue>` by a Lua script at the start of every receive |
//! | `<queue>:receives` | HASH | raw message → how many times it was handed out; removed on ack |
//! | `<queue>:consumer:<consumer>` | STRING with TTL | the consumer's liveness mark, refreshed by its receives, acks and nacks |
//!
//! `recover` moves the processing lists of consumers whose liveness mark
//! expired back onto `<queue>`. A missing key is an empty one: every write
//! recreates what it needs, nothing treats absence as an error.
//!
//! The algorithms run over [`Transport`]: "run one command / a pipeline / a
//! script / a blocking command", which each adapter implements.
//!
//! Identical raw bodies are indistinguishable in Redis: they are separate
//! list elements (each ack removes one), but share one receive counter and
//! one delayed-set member. Messages are pointers, so that is harmless.

use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{Delivery, Message, Outgoing, QueueError};

/// A Redis reply, as far as the layout needs to tell replies apart. Status
/// replies (`OK`, `PONG`) are strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    Nil,
    Int(i64),
    Str(String),
    Array(Vec<Reply>),
}

impl Reply {
    /// An integer reply, or a string holding one (Lua, REST and RESP
    /// clients disagree on which).
    pub(crate) fn as_int(&self) -> Option<i64> {
        match self {
            Reply::Int(i) => Some(*i),
            Reply::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    fn into_string(self) -> Option<String> {
        match self {
            Reply::Str(s) => Some(s),
            Reply::Int(i) => Some(i.to_string()),
            _ => None,
        }
    }

    /// The elements of an array reply; nil is an empty array.
    fn into_array(self) -> Result<Vec<Reply>, QueueError> {
        match self {
            Reply::Array(items) => Ok(items),
            Reply::Nil => Ok(Vec::new()),
            other => Err(unexpected("an array", &other)),
        }
    }
}

fn unexpected(wanted: &str, got: &Reply) -> QueueError {
    QueueError::Unavailable(format!("redis answered {got:?} where {wanted} was expected"))
}

/// Why a command failed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// Redis answered with an error reply (`"NOSCRIPT ..."`, `"WRONGTYPE ..."`).
    Server(String),
    /// The transport failed, already classified.
    Queue(QueueError),
}

impl From<CallError> for QueueError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Queue(q) => q,
            CallError::Server(msg) => {
                // Errors that the next attempt will meet again.
                let permanent = ["WRONGTYPE", "NOAUTH", "WRONGPASS", "NOPERM"];
                if permanent.iter().any(|p| msg.starts_with(p)) {
                    QueueError::Misconfigured(format!("redis refused: {msg}"))
                } else {
                    QueueError::Unavailable(format!("redis error: {msg}"))
                }
            }
        }
    }
}

/// One command: its name and arguments.
pub(crate) type Cmd = Vec<String>;

fn cmd<const N: usize>(parts: [&str; N]) -> Cmd {
    parts.iter().map(|s| (*s).to_owned()).collect()
}

/// A Lua script, run with `EVALSHA` and sent with `EVAL` when the server
/// does not have it cached yet.
#[derive(Debug)]
pub(crate) struct Script {
    source: &'static str,
    sha1: String,
}

impl Script {
    fn new(source: &'static str) -> Self {
        Self {
            source,
            sha1: redis::Script::new(source).get_hash().to_owned(),
        }
    }
}

/// How the layout talks to Redis. `command` and `pipeline` must not block
/// other callers for long; `blocking` runs a blocking command (`BLMOVE`)
/// whose server-side timeout is `block`, where it holds up nobody else.
#[async_trait]
pub(crate) trait Transport: Send + Sync + std::fmt::Debug + 'static {
    /// Runs one command.
    async fn command(&self, cmd: Cmd) -> Result<Reply, CallError>;

    /// Runs the commands in one round trip, in order (not as a
    /// transaction); fails when any of them failed.
    async fn pipeline(&self, cmds: Vec<Cmd>) -> Result<Vec<Reply>, CallError>;

    /// Runs a blocking command that gives up on its own after `block`.
    async fn blocking(&self, cmd: Cmd, block: Duration) -> Result<Reply, CallError>;

    /// Runs a Lua script: `EVALSHA`, then `EVAL` when the script cache does
    /// not have it (a fresh or flushed server).
    async fn script(&self, script: &Script, keys: &[&str], args: &[String]) -> Result<Reply, CallError> {
        let call = |verb: &str, body: &str| -> Cmd {
            let mut c = vec![verb.to_owned(), body.to_owned(), keys.len().to_string()];
            c.extend(keys.iter().map(|k| (*k).to_owned()));
            c.extend(args.iter().cloned());
            c
        };
        match self.command(call("EVALSHA", &script.sha1)).await {
            Err(CallError::Server(msg)) if msg.starts_with("NOSCRIPT") => {
                self.command(call("EVAL", script.source)).await
            }
            other => other,
        }
    }
}

/// Promotes due delayed messages, refreshes the consumer's liveness mark and
/// moves up to `max` messages from the queue's tail to the processing list,
/// counting each receive. `ARGV[5]`, when given, is a message a `BLMOVE`
/// already moved: it is counted first.
///
/// KEYS: queue, processing, delayed, receives, consumer.
/// ARGV: now (ms), max, consumer TTL (ms), promote limit, [moved message].
/// Returns `{next due (ms) or "", message, count, message, count, ...}`.
static RECEIVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[4]))
for _, m in ipairs(due) do
  redis.call('ZREM', KEYS[3], m)
  redis.call('LPUSH', KEYS[1], m)
end
redis.call('SET', KEYS[5], ARGV[1], 'PX', ARGV[3])
local out = {''}
local nxt = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
if nxt[2] then out[1] = nxt[2] end
if ARGV[5] then
  out[#out + 1] = ARGV[5]
  out[#out + 1] = redis.call('HINCRBY', KEYS[4], ARGV[5], 1)
end
for _ = 1, tonumber(ARGV[2]) do
  local m = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
  if not m then break end
  out[#out + 1] = m
  out[#out + 1] = redis.call('HINCRBY', KEYS[4], m, 1)
end
return out
"#,
    )
});

/// Moves a dead consumer's processing list back onto the queue, oldest
/// message to the front of the line, unless the consumer is alive.
///
/// KEYS: processing, consumer, queue. ARGV: limit.
/// Returns -1 when the consumer is alive, else how many moved.
static RECOVER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local n = 0
while n < tonumber(ARGV[1]) do
  if not redis.call('LMOVE', KEYS[1], KEYS[3], 'LEFT', 'RIGHT') then break end
  n = n + 1
end
return n
"#,
    )
});

/// Puts a message that a blocking move took for a receive that is gone back
/// to the front of the line (where it was).
///
/// KEYS: processing, queue. ARGV: message.
static GIVE_BACK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  return 1
end
return 0
"#,
    )
});

/// Values per `LPUSH` / `ZADD` command when publishing a batch.
/// Defaults both adapters over this layout share.
pub(crate) const DEFAULT_CONSUMER_TTL: Duration = Duration::from_secs(60);
pub(crate) const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(7 * 24 * 3600);
pub(crate) const DEFAULT_MAX_BLOCK: Duration = Duration::from_secs(5);

const PUBLISH_CHUNK: usize = 1000;
/// Most messages one receive takes.
const MAX_TAKE: usize = 1000;
/// Most delayed messages one receive promotes (the next receive promotes more).
const PROMOTE_LIMIT: usize = 1000;
/// Most messages one recover script call moves (it loops for more).
const RECOVER_CHUNK: i64 = 1000;
/// The shortest blocking wait worth a round trip (and never 0: that is
/// "forever" to Redis).
const MIN_BLOCK: Duration = Duration::from_millis(10);

/// Settings of the layout's algorithms.
#[derive(Debug, Clone)]
pub(crate) struct LayoutOptions {
    /// How long a consumer stays alive after its last receive, ack or nack.
    pub consumer_ttl: Duration,
    /// The longest single blocking command (the receive loops for longer
    /// waits). Over REST, well under the HTTP timeout.
    pub max_block: Duration,
}

/// The queue named `name`, over a transport.
#[derive(Debug)]
pub(crate) struct Layout<T: Transport> {
    transport: Arc<T>,
    name: String,
    delayed: String,
    receives: String,
    options: LayoutOptions,
}

/// Implements [`Queue`](crate::queue::Queue) and
/// [`Broker`](crate::queue::Broker) for an adapter struct that holds
/// a `layout: Layout<_>` and a `max_delay`: every adapter over this layout
/// behaves the same, only the transport differs.
macro_rules! queue_over_layout {
    ($adapter:ty, $kind:literal) => {
        impl $adapter {
            /// The queue's name (its list's key).
            pub fn name(&self) -> &str {
                self.layout.name()
            }
        }

        #[async_trait::async_trait]
        impl crate::queue::Queue for $adapter {
            fn kind(&self) -> &'static str {
                $kind
            }

            fn max_delay(&self) -> std::time::Duration {
                self.max_delay
            }

            async fn publish(
                &self,
                messages: &[crate::queue::Outgoing],
            ) -> Result<(), crate::queue::PublishError> {
                // One pipeline: all or nothing.
                Ok(self.layout.publish(messages).await?)
            }

            async fn check(&self) -> Result<(), crate::queue::QueueError> {
                self.layout.check().await
            }
        }

        #[async_trait::async_trait]
        impl crate::queue::Broker for $adapter {
            async fn receive(
                &self,
                consumer: &str,
                max: usize,
                wait: std::time::Duration,
            ) -> Result<Vec<crate::queue::Delivery>, crate::queue::QueueError> {
                self.layout.receive(consumer, max, wait).await
            }

            async fn ack(
                &self,
                consumer: &str,
                delivery: &crate::queue::Delivery,
            ) -> Result<(), crate::queue::QueueError> {
                self.layout.ack(consumer, delivery).await
            }

            async fn nack(
                &self,
                consumer: &str,
                delivery: &crate::queue::Delivery,
                delay: std::time::Duration,
            ) -> Result<(), crate::queue::QueueError> {
                self.layout.nack(consumer, delivery, delay).await
            }

            async fn recover(&self) -> Result<usize, crate::queue::QueueError> {
                self.layout.recover().await
            }

            async fn hand_back(&self, consumer: &str) -> Result<usize, crate::queue::QueueError> {
                self.layout.hand_back(consumer).await
            }

            async fn orphaned_processing(&self) -> Result<usize, crate::queue::QueueError> {
                self.layout.orphaned_processing().await
            }
        }
    };
}
pub(crate) use queue_over_layout;

impl<T: Transport> Layout<T> {
    pub(crate) fn new(transport: T, name: &str, options: LayoutOptions) -> Result<Self, QueueError> {
        if name.is_empty() {
            return Err(QueueError::Misconfigured("the queue name is empty".into()));
        }
        Ok(Self {
            transport: Arc::new(transport),
            name: name.to_owned(),
            delayed: format!("{name}:delayed"),
            receives: format!("{name}:receives"),
            options,
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    fn processing(&self, consumer: &str) -> String {
        format!("{}:processing:{consumer}", self.name)
    }

    fn consumer_key(&self, consumer: &str) -> String {
        format!("{}:consumer:{consumer}", self.name)
    }

    fn ttl_ms(&self) -> String {
        self.options.consumer_ttl.as_millis().max(1).to_string()
    }

    /// `LPUSH` for messages due now, `ZADD <queue>:delayed` for the others,
    /// all in one round trip.
    pub(crate) async fn publish(&self, messages: &[Outgoing]) -> Result<(), QueueError> {
        let now = now_ms();
        let mut now_bodies = Vec::new();
        let mut later = Vec::new();
        for o in messages {
            let body = serde_json::to_string(&o.message)
                .map_err(|e| QueueError::Unavailable(format!("cannot encode a message: {e}")))?;
            if o.delay.is_zero() {
                now_bodies.push(body);
            } else {
                let due = now.saturating_add(i64::try_from(o.delay.as_millis()).unwrap_or(i64::MAX));
                later.push((due, body));
            }
        }
        let mut cmds = Vec::new();
        for chunk in now_bodies.chunks(PUBLISH_CHUNK) {
            let mut c = cmd(["LPUSH", &self.name]);
            c.extend(chunk.iter().cloned());
            cmds.push(c);
        }
        for chunk in later.chunks(PUBLISH_CHUNK) {
            let mut c = cmd(["ZADD", &self.delayed]);
            for (due, body) in chunk {
                c.push(due.to_string());
                c.push(body.clone());
            }
            cmds.push(c);
        }
        self.run_all(cmds).await
    }

    /// One command, a pipeline for several, nothing for none.
    async fn run_all(&self, mut cmds: Vec<Cmd>) -> Result<(), QueueError> {
        match cmds.len() {
            0 => Ok(()),
            1 => {
                let c = cmds.remove(0);
                self.transport.command(c).await.map(drop).map_err(Into::into)
            }
            _ => self.transport.pipeline(cmds).await.map(drop).map_err(Into::into),
        }
    }

    /// Takes what is there; when nothing is, blocks (`BLMOVE`) in steps no
    /// longer than `max_block`, half the consumer TTL (the mark is refreshed
    /// between steps) or the time until the next delayed message is due,
    /// until `wait` is used up.
    pub(crate) async fn receive(
        &self,
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let max = max.clamp(1, MAX_TAKE);
        let deadline = Instant::now() + wait;
        loop {
            let (got, next_due) = self.take(consumer, max, None).await?;
            if !got.is_empty() {
                return Ok(got);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left < MIN_BLOCK {
                return Ok(got);
            }
            let mut block = left
                .min(self.options.max_block)
                .min(self.options.consumer_ttl / 2);
            if let Some(due) = next_due {
                let until = u64::try_from(due.saturating_sub(now_ms())).unwrap_or(0);
                block = block.min(Duration::from_millis(until));
            }
            let block = block.max(MIN_BLOCK);
            if let Some(moved) = self.block_move(consumer, block).await? {
                let (got, _) = self.take(consumer, max - 1, Some(moved)).await?;
                return Ok(got);
            }
        }
    }

    /// Runs the receive script; returns the deliveries and when the next
    /// delayed message is due (Unix ms).
    async fn take(
        &self,
        consumer: &str,
        max: usize,
        moved: Option<String>,
    ) -> Result<(Vec<Delivery>, Option<i64>), QueueError> {
        let processing = self.processing(consumer);
        let consumer_key = self.consumer_key(consumer);
        let mut args = vec![
            now_ms().to_string(),
            max.to_string(),
            self.ttl_ms(),
            PROMOTE_LIMIT.to_string(),
        ];
        args.extend(moved);
        let reply = self
            .transport
            .script(
                &RECEIVE,
                &[
                    &self.name,
                    &processing,
                    &self.delayed,
                    &self.receives,
                    &consumer_key,
                ],
                &args,
            )
            .await?;
        let mut items = reply.into_array()?.into_iter();
        let next_due = items
            .next()
            .and_then(Reply::into_string)
            .and_then(|s| s.parse::<f64>().ok())
            .map(|f| f as i64);
        let mut deliveries = Vec::new();
        while let (Some(raw), Some(count)) = (items.next(), items.next()) {
            let raw = raw
                .into_string()
                .ok_or_else(|| unexpected("a message", &Reply::Nil))?;
            let receive_count = count
                .as_int()
                .and_then(|c| u32::try_from(c).ok())
                .unwrap_or(u32::MAX);
            deliveries.push(Delivery {
                message: Message::parse(&raw),
                receipt: raw.clone(),
                raw,
                receive_count,
            });
        }
        Ok((deliveries, next_due))
    }

    /// One `BLMOVE` from the queue's tail to the consumer's processing list.
    /// It runs in its own task: if the receive that asked for it is dropped
    /// meanwhile, whatever it moved goes back to the queue instead of
    /// sitting in the processing list of a consumer that knows nothing of it.
    async fn block_move(&self, consumer: &str, block: Duration) -> Result<Option<String>, QueueError> {
        let processing = self.processing(consumer);
        let command = cmd([
            "BLMOVE",
            &self.name,
            &processing,
            "RIGHT",
            "LEFT",
            &format!("{:.3}", block.as_secs_f64()),
        ]);
        let transport = self.transport.clone();
        let queue = self.name.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let result = transport.blocking(command, block).await;
            if let Err(Ok(Reply::Str(raw))) = tx.send(result) {
                let back = transport.script(&GIVE_BACK, &[&processing, &queue], &[raw]).await;
                if let Err(e) = back {
                    tracing::warn!(queue = %queue, error = %QueueError::from(e),
                        "could not give back a message taken for a cancelled receive; recover() will");
                }
            }
        });
        match rx.await {
            Ok(Ok(Reply::Nil)) => Ok(None),
            Ok(Ok(Reply::Str(raw))) => Ok(Some(raw)),
            Ok(Ok(other)) => Err(unexpected("a message or nil", &other)),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(QueueError::Unavailable("the blocking receive task ended".into())),
        }
    }

    /// Removes one copy of the delivery from the consumer's processing list
    /// and forgets its receive count.
    pub(crate) async fn ack(&self, consumer: &str, delivery: &Delivery) -> Result<(), QueueError> {
        let processing = self.processing(consumer);
        self.run_all(vec![
            cmd(["LREM", &processing, "-1", &delivery.receipt]),
            cmd(["HDEL", &self.receives, &delivery.receipt]),
            self.touch(consumer),
        ])
        .await
    }

    /// Puts the delivery back (onto the queue, or into the delayed set), then
    /// removes it from the processing list: a failure in between leaves a
    /// duplicate, never a loss. The receive count is kept.
    pub(crate) async fn nack(
        &self,
        consumer: &str,
        delivery: &Delivery,
        delay: Duration,
    ) -> Result<(), QueueError> {
        let processing = self.processing(consumer);
        let back = if delay.is_zero() {
            cmd(["LPUSH", &self.name, &delivery.receipt])
        } else {
            let due = now_ms().saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
            cmd(["ZADD", &self.delayed, &due.to_string(), &delivery.receipt])
        };
        self.run_all(vec![
            back,
            cmd(["LREM", &processing, "-1", &delivery.receipt]),
            self.touch(consumer),
        ])
        .await
    }

    fn touch(&self, consumer: &str) -> Cmd {
        cmd([
            "SET",
            &self.consumer_key(consumer),
            &now_ms().to_string(),
            "PX",
            &self.ttl_ms(),
        ])
    }

    /// Scans `<queue>:processing:*` and moves the lists of consumers whose
    /// liveness mark is gone back onto the queue; returns how many messages.
    pub(crate) async fn recover(&self) -> Result<usize, QueueError> {
        let mut moved = 0usize;
        for (list, consumer) in self.processing_lists().await? {
            let n = self.move_back(&list, &consumer).await?;
            if n > 0 {
                moved += n;
                tracing::info!(queue = %self.name, consumer, messages = n,
                    "recovered messages of a consumer that stopped");
            }
        }
        Ok(moved)
    }

    /// How many messages the processing lists of consumers whose liveness
    /// mark is gone hold (what `recover` would move), changing nothing.
    pub(crate) async fn orphaned_processing(&self) -> Result<usize, QueueError> {
        let mut orphaned = 0usize;
        for (list, consumer) in self.processing_lists().await? {
            let replies = self
                .transport
                .pipeline(vec![
                    cmd(["EXISTS", &self.consumer_key(&consumer)]),
                    cmd(["LLEN", &list]),
                ])
                .await?;
            let alive = replies.first().and_then(Reply::as_int).unwrap_or(0) > 0;
            let len = replies.get(1).and_then(Reply::as_int).unwrap_or(0);
            if !alive {
                orphaned += usize::try_from(len).unwrap_or(0);
            }
        }
        Ok(orphaned)
    }

    /// Every `<queue>:processing:<consumer>` key (`SCAN`), with its consumer.
    async fn processing_lists(&self) -> Result<Vec<(String, String)>, QueueError> {
        let prefix = format!("{}:processing:", self.name);
        let pattern = format!("{}*", glob_escape(&prefix));
        let mut lists = BTreeSet::new();
        let mut cursor = "0".to_owned();
        loop {
            let reply = self
                .transport
                .command(cmd(["SCAN", &cursor, "MATCH", &pattern, "COUNT", "1000"]))
                .await?;
            let mut parts = reply.into_array()?.into_iter();
            let next = parts.next().and_then(Reply::into_string);
            for key in parts
                .next()
                .map(Reply::into_array)
                .transpose()?
                .unwrap_or_default()
            {
                if let Some(key) = key.into_string() {
                    lists.insert(key);
                }
            }
            match next {
                Some(c) if c != "0" => cursor = c,
                _ => break,
            }
        }
        Ok(lists
            .into_iter()
            .filter_map(|list| {
                let consumer = list.strip_prefix(&prefix)?.to_owned();
                Some((list, consumer))
            })
            .collect())
    }

    /// A stopping consumer's own list back onto the queue, now: its
    /// liveness mark is dropped first, so the move goes ahead.
    pub(crate) async fn hand_back(&self, consumer: &str) -> Result<usize, QueueError> {
        self.transport
            .command(cmd(["DEL", &self.consumer_key(consumer)]))
            .await?;
        self.move_back(&self.processing(consumer), consumer).await
    }

    /// Moves `list` (the processing list of `consumer`) back onto the queue
    /// in chunks, unless the consumer is alive; how many messages moved.
    async fn move_back(&self, list: &str, consumer: &str) -> Result<usize, QueueError> {
        let consumer_key = self.consumer_key(consumer);
        let mut moved = 0usize;
        loop {
            let n = self
                .transport
                .script(
                    &RECOVER,
                    &[list, &consumer_key, &self.name],
                    &[RECOVER_CHUNK.to_string()],
                )
                .await?;
            let n = n.as_int().ok_or_else(|| unexpected("a count", &n))?;
            if n > 0 {
                moved += usize::try_from(n).unwrap_or(0);
            }
            if n < RECOVER_CHUNK {
                return Ok(moved);
            }
        }
    }

    /// `PING`.
    pub(crate) async fn check(&self) -> Result<(), QueueError> {
        match self.transport.command(cmd(["PING"])).await? {
            Reply::Str(s) if s.eq_ignore_ascii_case("PONG") => Ok(()),
            other => Err(unexpected("PONG", &other)),
        }
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Escapes `SCAN MATCH` glob characters.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_in_queue_names_are_escaped() {
        assert_eq!(
            glob_escape("generation_jobs:processing:"),
            "generation_jobs:processing:"
        );
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }

    #[test]
    fn integer_replies_may_come_as_strings() {
        assert_eq!(Reply::Int(3).as_int(), Some(3));
        assert_eq!(Reply::Str("4".into()).as_int(), Some(4));
        assert_eq!(Reply::Nil.as_int(), None);
    }

    #[test]
    fn server_errors_are_classified() {
        let wrongtype = QueueError::from(CallError::Server("WRONGTYPE Operation against a key".into()));
        assert!(matches!(wrongtype, QueueError::Misconfigured(_)), "{wrongtype:?}");
        let busy = QueueError::from(CallError::Server("BUSY Redis is busy running a script".into()));
        assert!(matches!(busy, QueueError::Unavailable(_)), "{busy:?}");
    }

    #[test]
    fn script_hashes_are_the_sha1_of_the_source() {
        assert_eq!(RECEIVE.sha1.len(), 40);
        assert_ne!(RECEIVE.sha1, RECOVER.sha1);
    }
}
