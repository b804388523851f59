//! The `redis` adapter against a real redis-server (started by
//! scripts/redis-up): the adapter contract, the wire layout operators rely
//! on, recovery, blocking receives, and missing keys.
//!
//! Tests share one Redis and run in parallel: each works on its own queue
//! name (`t_<uuid>`).

use std::sync::Arc;
use std::time::Duration;

use jobline::queue::redis::{RedisOptions, RedisQueue};
use jobline::queue::{Broker, Message, Outgoing, Queue, QueueError};
use redis::aio::MultiplexedConnection;
use tokio::time::Instant;
use uuid::Uuid;

use crate::queue_contract::{Subject, receive_until};

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").expect(
        "REDIS_URL is not set: run the suite with scripts/test (or eval \"$(scripts/redis-up)\" first)",
    )
}

/// A plain connection, to look at the keys the adapters write.
pub async fn plain() -> MultiplexedConnection {
    redis::Client::open(redis_url())
        .expect("REDIS_URL")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the test redis")
}

pub fn fresh_name() -> String {
    format!("t_{}", Uuid::new_v4().simple())
}

/// A short liveness TTL, so nothing depends on the 60 s default.
pub fn options() -> RedisOptions {
    RedisOptions {
        consumer_ttl: Duration::from_secs(5),
        ..RedisOptions::default()
    }
}

pub async fn queue(name: &str) -> RedisQueue {
    RedisQueue::connect(&redis_url(), name, options())
        .await
        .expect("redis queue")
}

pub fn now(id: Uuid) -> Outgoing {
    Outgoing {
        message: Message::new(id, chrono::Utc::now()),
        delay: Duration::ZERO,
    }
}

pub fn body(o: &Outgoing) -> String {
    serde_json::to_string(&o.message).expect("json")
}

pub async fn run<T: redis::FromRedisValue>(conn: &mut MultiplexedConnection, args: &[&str]) -> T {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query_async(conn)
        .await
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

pub async fn lrange(conn: &mut MultiplexedConnection, key: &str) -> Vec<String> {
    run(conn, &["LRANGE", key, "0", "-1"]).await
}

async fn subject() -> Subject {
    let name = fresh_name();
    let conn = plain().await;
    let (inject_conn, inject_name) = (conn.clone(), name.clone());
    let (bury_conn, bury_name) = (conn, name.clone());
    Subject {
        queue: Arc::new(queue(&name).await),
        inject_raw: Box::new(move |raw| {
            let (mut c, n) = (inject_conn.clone(), inject_name.clone());
            Box::pin(async move {
                let _: i64 = run(&mut c, &["LPUSH", &n, &raw]).await;
            })
        }),
        redelivery_within: Duration::from_secs(1),
        // A dead consumer stops refreshing its mark; deleting it is the same
        // as waiting for its TTL.
        bury_consumer: Box::new(move |consumer| {
            let (mut c, n) = (bury_conn.clone(), bury_name.clone());
            Box::pin(async move {
                let _: i64 = run(&mut c, &["DEL", &format!("{n}:consumer:{consumer}")]).await;
            })
        }),
    }
}

crate::contract_tests!(subject);

/// The layout every Redis-backed adapter writes, seen with plain commands.
pub async fn layout_is_what_operators_see(q: &dyn Broker, name: &str) {
    let mut r = plain().await;
    let (a, b) = (now(Uuid::now_v7()), now(Uuid::now_v7()));
    let later = Outgoing {
        message: Message::new(Uuid::now_v7(), chrono::Utc::now()),
        delay: Duration::from_secs(600),
    };
    let before = chrono::Utc::now().timestamp_millis();
    q.publish(&[a, b, later]).await.expect("publish");
    let after = chrono::Utc::now().timestamp_millis();

    // LPUSH: newest first; each element is exactly the message JSON.
    let waiting = lrange(&mut r, name).await;
    assert_eq!(waiting, [body(&b), body(&a)]);
    for w in &waiting {
        let v: serde_json::Value = serde_json::from_str(w).expect("JSON string");
        let mut keys: Vec<&String> = v.as_object().expect("object").keys().collect();
        keys.sort();
        assert_eq!(keys, ["jobId", "timestamp"], "{w}");
        assert!(v["timestamp"].is_i64());
    }
    let delayed: Vec<(String, f64)> = run(
        &mut r,
        &["ZRANGE", &format!("{name}:delayed"), "0", "-1", "WITHSCORES"],
    )
    .await;
    assert_eq!(delayed.len(), 1);
    assert_eq!(delayed[0].0, body(&later));
    let due = delayed[0].1 as i64;
    assert!((before + 600_000..=after + 600_000).contains(&due), "due {due}");

    // Received: moved to the consumer's processing list, counted, consumer alive.
    let got = q.receive("c1", 10, Duration::ZERO).await.expect("receive");
    assert_eq!(
        got.iter().map(|d| d.raw.clone()).collect::<Vec<_>>(),
        [body(&a), body(&b)],
        "FIFO"
    );
    assert!(lrange(&mut r, name).await.is_empty());
    let processing = format!("{name}:processing:c1");
    assert_eq!(lrange(&mut r, &processing).await, [body(&b), body(&a)]);
    let count: String = run(&mut r, &["HGET", &format!("{name}:receives"), &body(&a)]).await;
    assert_eq!(count, "1");
    let ttl: i64 = run(&mut r, &["PTTL", &format!("{name}:consumer:c1")]).await;
    assert!(ttl > 0 && ttl <= 5_000, "consumer TTL {ttl} ms");

    // Acked: nothing left behind but the delayed message.
    for d in &got {
        q.ack("c1", d).await.expect("ack");
    }
    let left: i64 = run(
        &mut r,
        &["EXISTS", &processing, &format!("{name}:receives"), name],
    )
    .await;
    assert_eq!(left, 0, "processing list, receive counts and queue list are gone");
    let delayed_left: i64 = run(&mut r, &["ZCARD", &format!("{name}:delayed")]).await;
    assert_eq!(delayed_left, 1);
}

#[tokio::test]
async fn published_messages_sit_in_the_list_as_json_strings() {
    let name = fresh_name();
    layout_is_what_operators_see(&queue(&name).await, &name).await;
}

/// Deleting any of the queue's keys while messages are in flight is never
/// fatal: acks and nacks of vanished entries succeed, writes recreate the
/// keys.
pub async fn missing_keys_are_recreated(q: &dyn Broker, name: &str) {
    let mut r = plain().await;
    assert!(
        q.receive("c1", 10, Duration::ZERO)
            .await
            .expect("receive from nothing")
            .is_empty()
    );
    assert_eq!(q.recover().await.expect("recover with nothing"), 0);

    let a = now(Uuid::now_v7());
    q.publish(&[a]).await.expect("publish");
    let got = q.receive("c1", 1, Duration::ZERO).await.expect("receive");
    assert_eq!(got.len(), 1);
    let all = [
        name.to_owned(),
        format!("{name}:processing:c1"),
        format!("{name}:receives"),
        format!("{name}:consumer:c1"),
        format!("{name}:delayed"),
    ];
    let mut del = vec!["DEL"];
    del.extend(all.iter().map(String::as_str));
    let _: i64 = run(&mut r, &del).await;

    // Ack of an entry whose list is gone: fine.
    q.ack("c1", &got[0]).await.expect("ack after the keys vanished");
    // Nack puts it back even though its processing list is gone.
    q.nack("c1", &got[0], Duration::ZERO)
        .await
        .expect("nack after the keys vanished");
    assert_eq!(
        lrange(&mut r, name).await,
        [body(&a)],
        "the queue list was recreated"
    );
    let again = q.receive("c1", 1, Duration::ZERO).await.expect("receive");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].receive_count, 1, "the receive counts were recreated");

    // A delayed nack recreates the delayed set.
    let _: i64 = run(&mut r, &del).await;
    q.nack("c1", &again[0], Duration::from_millis(300))
        .await
        .expect("delayed nack");
    let back = receive_until(q, "c2", 1, Duration::from_secs(10)).await;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].raw, body(&a));
    q.ack("c2", &back[0]).await.expect("ack");
    assert_eq!(q.recover().await.expect("recover"), 0);
}

#[tokio::test]
async fn missing_keys_mid_flight_are_recreated_not_fatal() {
    let name = fresh_name();
    missing_keys_are_recreated(&queue(&name).await, &name).await;
}

/// A key of another type under the queue's name is a configuration
/// problem, reported as such (not retried as if Redis were down).
pub async fn a_foreign_key_is_misconfigured(q: &dyn Broker, name: &str) {
    let mut r = plain().await;
    let _: () = run(&mut r, &["SET", name, "not a list"]).await;
    let started = Instant::now();
    let err = q
        .publish(&[now(Uuid::now_v7())])
        .await
        .expect_err("publish onto a string key")
        .error;
    assert!(
        matches!(&err, QueueError::Misconfigured(m) if m.contains("WRONGTYPE")),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no retries: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_key_of_the_wrong_type_is_a_configuration_error() {
    let name = fresh_name();
    a_foreign_key_is_misconfigured(&queue(&name).await, &name).await;
}

#[tokio::test]
async fn a_large_batch_goes_out_whole_and_is_taken_in_order() {
    let name = fresh_name();
    let q = queue(&name).await;
    let mut r = plain().await;
    let out: Vec<Outgoing> = (0..2500).map(|_| now(Uuid::now_v7())).collect();
    q.publish(&out).await.expect("publish 2500");
    let len: i64 = run(&mut r, &["LLEN", &name]).await;
    assert_eq!(len, 2500);
    let got = q.receive("c", 1000, Duration::ZERO).await.expect("receive");
    assert_eq!(got.len(), 1000);
    let first: Vec<String> = out[..1000].iter().map(body).collect();
    assert_eq!(got.iter().map(|d| d.raw.clone()).collect::<Vec<_>>(), first);
}

#[tokio::test]
async fn recover_moves_only_the_lists_of_dead_consumers() {
    let name = fresh_name();
    let q = queue(&name).await;
    let mut r = plain().await;
    let (a, b, c) = (now(Uuid::now_v7()), now(Uuid::now_v7()), now(Uuid::now_v7()));
    q.publish(&[a, b, c]).await.expect("publish");
    let alive = q.receive("alive", 2, Duration::ZERO).await.expect("receive");
    let dead = q.receive("dead", 2, Duration::ZERO).await.expect("receive");
    assert_eq!((alive.len(), dead.len()), (2, 1));

    assert_eq!(q.recover().await.expect("recover"), 0, "both consumers are alive");
    let _: i64 = run(&mut r, &["DEL", &format!("{name}:consumer:dead")]).await;
    assert_eq!(q.recover().await.expect("recover"), 1);
    assert_eq!(lrange(&mut r, &name).await, [body(&c)]);
    assert_eq!(lrange(&mut r, &format!("{name}:processing:alive")).await.len(), 2);
    assert_eq!(q.recover().await.expect("recover"), 0, "nothing twice");

    let back = q.receive("other", 1, Duration::ZERO).await.expect("receive");
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].raw, body(&c));
    assert_eq!(back[0].receive_count, 2);
}

/// Waits until `n` connections of the queue's adapter are blocked in Redis
/// (they are named `jobline:<queue>`).
async fn wait_until_blocked(r: &mut MultiplexedConnection, name: &str, n: usize) {
    let label = format!("name=jobline:{name}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list: String = run(r, &["CLIENT", "LIST"]).await;
        let blocked = list
            .lines()
            .filter(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                fields.contains(&label.as_str())
                    && fields
                        .iter()
                        .any(|f| f.strip_prefix("flags=").is_some_and(|v| v.contains('b')))
            })
            .count();
        if blocked >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{n} blocked receive(s) on {name} never showed up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_waiting_receive_wakes_on_publish_without_holding_up_others() {
    let name = fresh_name();
    let q = Arc::new(queue(&name).await);
    let mut r = plain().await;
    let waiter = {
        let q = q.clone();
        tokio::spawn(async move { q.receive("w", 1, Duration::from_secs(20)).await })
    };
    wait_until_blocked(&mut r, &name, 1).await;

    // The blocked command has its own connection: the rest go on.
    let started = Instant::now();
    q.check().await.expect("check while a receive blocks");
    assert!(
        q.receive("other", 1, Duration::ZERO)
            .await
            .expect("receive")
            .is_empty()
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    let a = now(Uuid::now_v7());
    let published = Instant::now();
    q.publish(&[a]).await.expect("publish");
    let got = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the waiting receive returned")
        .expect("task")
        .expect("receive");
    assert!(
        published.elapsed() < Duration::from_secs(2),
        "woke after {:?}",
        published.elapsed()
    );
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].raw, body(&a));
    assert_eq!(got[0].receive_count, 1);
    assert_eq!(lrange(&mut r, &format!("{name}:processing:w")).await, [body(&a)]);
}

#[tokio::test]
async fn a_cancelled_receive_gives_back_what_its_blocking_move_took() {
    let name = fresh_name();
    let q = Arc::new(queue(&name).await);
    let mut r = plain().await;
    let waiter = {
        let q = q.clone();
        tokio::spawn(async move { q.receive("gone", 1, Duration::from_secs(20)).await })
    };
    wait_until_blocked(&mut r, &name, 1).await;
    waiter.abort();
    assert!(waiter.await.expect_err("aborted").is_cancelled());

    // The BLMOVE is still waiting in Redis and takes this message...
    let a = now(Uuid::now_v7());
    q.publish(&[a]).await.expect("publish");
    // ...then puts it back, since nobody wants it any more.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting = lrange(&mut r, &name).await;
        let held = lrange(&mut r, &format!("{name}:processing:gone")).await;
        if waiting == [body(&a)] && held.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not given back: waiting {waiting:?}, held {held:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = q.receive("next", 1, Duration::ZERO).await.expect("receive");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].receive_count, 1, "the give-back was not a receive");
}

#[tokio::test]
async fn a_redis_that_is_down_is_unavailable_not_fatal_at_start() {
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let opts = RedisOptions {
        connect_timeout: Duration::from_millis(500),
        ..options()
    };
    let q = RedisQueue::connect(&format!("redis://127.0.0.1:{port}"), "q", opts)
        .await
        .expect("the queue is built without the server");
    let started = Instant::now();
    let err = q.check().await.expect_err("down");
    assert!(matches!(err, QueueError::Unavailable(_)), "{err:?}");
    let err = q.publish(&[now(Uuid::now_v7())]).await.expect_err("down").error;
    assert!(matches!(err, QueueError::Unavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(q.kind(), "redis");
    assert!(q.max_delay() >= Duration::from_secs(24 * 3600));
}

#[tokio::test]
async fn bad_settings_are_configuration_errors() {
    let bad = RedisQueue::connect("http://127.0.0.1:6379", "q", options()).await;
    assert!(matches!(bad, Err(QueueError::Misconfigured(_))), "{bad:?}");
    let nameless = RedisQueue::connect(&redis_url(), "", options()).await;
    assert!(
        matches!(nameless, Err(QueueError::Misconfigured(_))),
        "{nameless:?}"
    );
}

#[tokio::test]
async fn debug_output_hides_the_password() {
    let q = RedisQueue::connect("redis://user:s3cret@127.0.0.1:1/0", "q", options())
        .await
        .expect("queue");
    let shown = format!("{q:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("127.0.0.1:1"), "{shown}");
}

/// Scripts run by `EVALSHA`; a server whose script cache was flushed (a
/// restart, a failover) gets them again with `EVAL`.
pub async fn a_flushed_script_cache_is_refilled(q: &dyn Broker) {
    let mut r = plain().await;
    let a = now(Uuid::now_v7());
    q.publish(&[a]).await.expect("publish");
    let _: () = run(&mut r, &["SCRIPT", "FLUSH"]).await;
    let got = q
        .receive("c", 1, Duration::ZERO)
        .await
        .expect("receive after SCRIPT FLUSH");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].raw, body(&a));
    let _: () = run(&mut r, &["SCRIPT", "FLUSH"]).await;
    assert_eq!(q.recover().await.expect("recover after SCRIPT FLUSH"), 0);
}

#[tokio::test]
async fn a_flushed_script_cache_is_not_an_error() {
    a_flushed_script_cache_is_refilled(&queue(&fresh_name()).await).await;
}

#[tokio::test]
async fn a_long_receive_takes_a_delayed_message_as_soon_as_it_is_due() {
    let name = fresh_name();
    // Default TTL: blocks of up to 5 s, unless a delayed message is due sooner.
    let q = RedisQueue::connect(&redis_url(), &name, RedisOptions::default())
        .await
        .expect("queue");
    let id = Uuid::now_v7();
    q.publish(&[Outgoing {
        message: Message::new(id, chrono::Utc::now()),
        delay: Duration::from_secs(1),
    }])
    .await
    .expect("publish");
    let started = Instant::now();
    let got = q.receive("c", 1, Duration::from_secs(20)).await.expect("receive");
    let took = started.elapsed();
    assert_eq!(
        got.iter()
            .filter_map(|d| d.message)
            .map(|m| m.job_id)
            .collect::<Vec<_>>(),
        [id]
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "taken after {took:?}"
    );
}

/// The sweeper recovers the lists of consumers that stopped (Redis would
/// otherwise keep them forever), and a worker that stops hands its own back.
#[tokio::test]
async fn the_sweeper_recovers_dead_consumers_and_a_stopping_worker_hands_its_list_back() {
    let db = crate::support::test_db().await;
    let name = fresh_name();
    let q = Arc::new(queue(&name).await);
    let mut r = plain().await;
    let (a, b) = (now(Uuid::now_v7()), now(Uuid::now_v7()));
    q.publish(&[a, b]).await.expect("publish");
    assert_eq!(
        q.receive("crashed", 1, Duration::ZERO)
            .await
            .expect("receive")
            .len(),
        1
    );
    let _: i64 = run(&mut r, &["DEL", &format!("{name}:consumer:crashed")]).await;
    let publisher = jobline::queue::Publisher::new(db.store.clone(), q.clone(), "sweeper");
    let report = jobline::sweeper::sweep_once(
        &db.store,
        &publisher,
        Some(q.as_ref() as &dyn Broker),
        &jobline::sweeper::SweepConfig::default(),
    )
    .await
    .expect("sweep");
    assert_eq!(report.recovered, 1);
    assert!(
        lrange(&mut r, &format!("{name}:processing:crashed"))
            .await
            .is_empty()
    );
    assert_eq!(lrange(&mut r, &name).await.len(), 2, "both waiting again");

    // A worker holding a message it cannot finish stops: the message goes
    // back at once, not after its liveness mark (5 s) expires.
    let job = db
        .job_for(
            "acme",
            jobline::NewJob::new("sleep", serde_json::json!({"ms": 60_000})),
        )
        .await;
    let _: i64 = run(&mut r, &["DEL", &name]).await;
    q.publish(&[now(job.id)]).await.expect("publish");
    let processor = jobline::worker::Processor::new(
        db.store.clone(),
        Arc::new(jobline::handlers::builtins()),
        Duration::from_millis(100),
        "stopping",
    );
    let options = jobline::worker::WorkerOptions {
        register: false,
        poll_interval: Duration::from_millis(100),
        shutdown_grace: Duration::from_millis(200),
        ..jobline::worker::WorkerOptions::default()
    };
    let (stop, rx) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(jobline::worker::runner::run(
        processor,
        jobline::queue::Feed::Deliveries(q.clone()),
        options,
        rx,
    ));
    let started = crate::support::eventually(Duration::from_secs(10), || async {
        db.job(job.id).await.status == jobline::JobStatus::Processing
    })
    .await;
    assert!(started, "never started");
    let _ = stop.send(true);
    worker.await.expect("worker");
    assert!(
        lrange(&mut r, &format!("{name}:processing:stopping"))
            .await
            .is_empty()
    );
    assert_eq!(lrange(&mut r, &name).await.len(), 1, "handed back to the queue");
}

#[tokio::test]
async fn a_redis_worker_stopped_mid_drain_hands_back_what_it_received_ahead() {
    let db = crate::support::test_db().await;
    let name = fresh_name();
    let q = Arc::new(queue(&name).await);
    let mut r = plain().await;
    // 20 ms a job on two slots: receiving runs far ahead of running, so the
    // local queue holds deliveries whenever the stop comes (with 2 ms jobs
    // on a loaded machine it could be drained at that moment).
    let news: Vec<jobline::NewJob> = (0..600)
        .map(|_| jobline::NewJob::new("sleep", serde_json::json!({"ms": 20})))
        .collect();
    let created = db.store.create_many("acme", "test", news).await.expect("create");
    let messages: Vec<Outgoing> = created.iter().map(|c| now(c.job.id)).collect();
    q.publish(&messages).await.expect("publish");
    // Two slots, beats every second: deliveries may wait that long for one.
    let processor = jobline::worker::Processor::new(
        db.store.clone(),
        Arc::new(jobline::handlers::builtins()),
        Duration::from_secs(1),
        "ahead",
    );
    let options = jobline::worker::WorkerOptions {
        concurrency: 2,
        register: false,
        poll_interval: Duration::from_millis(50),
        ..jobline::worker::WorkerOptions::default()
    };
    let (stop, rx) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(jobline::worker::runner::run(
        processor,
        jobline::queue::Feed::Deliveries(q.clone()),
        options,
        rx,
    ));
    let counts = || async {
        let row = db
            .client
            .query_one(
                "SELECT count(*) FILTER (WHERE status = 'completed'),
                        count(*) FILTER (WHERE status = 'processing'),
                        count(*) FILTER (WHERE status = 'pending' AND attempts <> 0),
                        (SELECT count(*) FROM job_events WHERE event = 'handed_back')
                 FROM jobs",
                &[],
            )
            .await
            .expect("counts");
        (
            row.get::<_, i64>(0),
            row.get::<_, i64>(1),
            row.get::<_, i64>(2),
            row.get::<_, i64>(3),
        )
    };
    let going =
        crate::support::eventually(Duration::from_secs(10), || async { counts().await.0 >= 100 }).await;
    assert!(going, "the drain never got going");
    let _ = stop.send(true);
    tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .expect("stops in time")
        .expect("worker");
    let (completed, processing, spent, handed_back) = counts().await;
    assert_eq!(
        processing, 0,
        "nothing left held: no wait for the heartbeat timeout"
    );
    assert_eq!(spent, 0, "no attempt spent on a job that never started");
    assert!(
        handed_back > 0,
        "the worker held deliveries ahead of its two slots"
    );
    assert!(
        lrange(&mut r, &format!("{name}:processing:ahead"))
            .await
            .is_empty(),
        "every message settled or given back"
    );
    let waiting = lrange(&mut r, &name).await.len() as i64;
    assert!(
        waiting >= 600 - completed,
        "every job not completed has a message waiting: {waiting} for {}",
        600 - completed
    );
}
