//! The contract every broker adapter passes (publish, receive, ack,
//! delayed, redelivery after a consumer dies, duplicates, poison messages),
//! run against the real servers the test scripts start. Each adapter's test
//! module builds a [`Subject`] and expands [`contract_tests!`].

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use jobline::queue::{Broker, Delivery, Message, Outgoing};
use uuid::Uuid;

pub struct Subject {
    pub queue: Arc<dyn Broker>,
    /// Puts a raw body on the queue as if someone published garbage.
    pub inject_raw: Box<dyn Fn(String) -> BoxFuture<'static, ()> + Send + Sync>,
    /// After a consumer dies holding a message (and `recover` ran), the
    /// message comes back within this long.
    pub redelivery_within: Duration,
    /// Called after a consumer "dies", before others look for its messages
    /// (e.g. lets its liveness mark expire). Most adapters need nothing.
    pub bury_consumer: Box<dyn Fn(String) -> BoxFuture<'static, ()> + Send + Sync>,
}

fn msg(id: Uuid) -> Outgoing {
    Outgoing {
        message: Message::new(id, chrono::Utc::now()),
        delay: Duration::ZERO,
    }
}

/// Receives until `want` deliveries arrived or `within` passed.
pub async fn receive_until(q: &dyn Broker, consumer: &str, want: usize, within: Duration) -> Vec<Delivery> {
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < want && tokio::time::Instant::now() < deadline {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let wait = left.min(Duration::from_secs(1));
        got.extend(
            q.receive(consumer, want - got.len(), wait)
                .await
                .expect("receive"),
        );
    }
    got
}

fn ids(ds: &[Delivery]) -> Vec<Uuid> {
    let mut v: Vec<Uuid> = ds.iter().filter_map(|d| d.message.map(|m| m.job_id)).collect();
    v.sort();
    v
}

pub async fn published_messages_are_received_and_acked_once(s: &Subject) {
    let q = s.queue.as_ref();
    let mut sent: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    q.publish(&sent.iter().copied().map(msg).collect::<Vec<_>>())
        .await
        .expect("publish");
    let got = receive_until(q, "c1", 3, Duration::from_secs(10)).await;
    sent.sort();
    assert_eq!(ids(&got), sent);
    for d in &got {
        assert_eq!(d.receive_count, 1);
        q.ack("c1", d).await.expect("ack");
    }
    let again = q
        .receive("c1", 10, Duration::from_millis(300))
        .await
        .expect("receive");
    assert!(again.is_empty(), "acked messages do not come back: {again:?}");
}

pub async fn a_delayed_message_waits_its_turn(s: &Subject) {
    let q = s.queue.as_ref();
    let id = Uuid::now_v7();
    q.publish(&[Outgoing {
        message: Message::new(id, chrono::Utc::now()),
        delay: Duration::from_secs(2),
    }])
    .await
    .expect("publish");
    let early = q
        .receive("c1", 10, Duration::from_millis(500))
        .await
        .expect("receive");
    assert!(early.is_empty(), "not before its delay: {early:?}");
    let got = receive_until(q, "c1", 1, Duration::from_secs(10)).await;
    assert_eq!(ids(&got), [id]);
    q.ack("c1", &got[0]).await.expect("ack");
}

pub async fn a_nacked_message_comes_back_counted(s: &Subject) {
    let q = s.queue.as_ref();
    let id = Uuid::now_v7();
    q.publish(&[msg(id)]).await.expect("publish");
    let first = receive_until(q, "c1", 1, Duration::from_secs(10)).await;
    assert_eq!(ids(&first), [id]);
    q.nack("c1", &first[0], Duration::ZERO).await.expect("nack");
    let second = receive_until(q, "c2", 1, Duration::from_secs(10)).await;
    assert_eq!(ids(&second), [id]);
    assert_eq!(second[0].receive_count, 2);
    q.ack("c2", &second[0]).await.expect("ack");
}

pub async fn a_dead_consumers_message_is_redelivered(s: &Subject) {
    let q = s.queue.as_ref();
    let id = Uuid::now_v7();
    q.publish(&[msg(id)]).await.expect("publish");
    let taken = receive_until(q, "doomed", 1, Duration::from_secs(10)).await;
    assert_eq!(ids(&taken), [id]);
    // The consumer dies without acking.
    (s.bury_consumer)("doomed".to_owned()).await;
    let deadline = tokio::time::Instant::now() + s.redelivery_within + Duration::from_secs(10);
    let mut back = Vec::new();
    while back.is_empty() && tokio::time::Instant::now() < deadline {
        q.recover().await.expect("recover");
        back = q
            .receive("survivor", 1, Duration::from_millis(500))
            .await
            .expect("receive");
    }
    assert_eq!(ids(&back), [id], "the message came back to another consumer");
    q.ack("survivor", &back[0]).await.expect("ack");
}

pub async fn duplicates_are_delivered_and_each_can_be_acked(s: &Subject) {
    let q = s.queue.as_ref();
    let id = Uuid::now_v7();
    q.publish(&[msg(id), msg(id)]).await.expect("publish");
    let got = receive_until(q, "c1", 2, Duration::from_secs(10)).await;
    assert_eq!(ids(&got), [id, id]);
    for d in &got {
        q.ack("c1", d).await.expect("ack");
    }
    assert!(
        q.receive("c1", 10, Duration::from_millis(300))
            .await
            .expect("receive")
            .is_empty()
    );
}

pub async fn a_poison_message_is_delivered_unparsed_and_acked_away(s: &Subject) {
    let q = s.queue.as_ref();
    (s.inject_raw)("this is not a job message".to_owned()).await;
    let got = receive_until(q, "c1", 1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message, None);
    assert_eq!(got[0].raw, "this is not a job message");
    q.ack("c1", &got[0]).await.expect("ack");
    assert!(
        q.receive("c1", 10, Duration::from_millis(300))
            .await
            .expect("receive")
            .is_empty()
    );
}

/// Expands the whole contract for one adapter: `contract_tests!(make_subject)`
/// where `make_subject` is an `async fn() -> Subject` giving a fresh, empty queue.
#[macro_export]
macro_rules! contract_tests {
    ($make:path) => {
        #[tokio::test]
        async fn published_messages_are_received_and_acked_once() {
            $crate::queue_contract::published_messages_are_received_and_acked_once(&$make().await).await;
        }
        #[tokio::test]
        async fn a_delayed_message_waits_its_turn() {
            $crate::queue_contract::a_delayed_message_waits_its_turn(&$make().await).await;
        }
        #[tokio::test]
        async fn a_nacked_message_comes_back_counted() {
            $crate::queue_contract::a_nacked_message_comes_back_counted(&$make().await).await;
        }
        #[tokio::test]
        async fn a_dead_consumers_message_is_redelivered() {
            $crate::queue_contract::a_dead_consumers_message_is_redelivered(&$make().await).await;
        }
        #[tokio::test]
        async fn duplicates_are_delivered_and_each_can_be_acked() {
            $crate::queue_contract::duplicates_are_delivered_and_each_can_be_acked(&$make().await).await;
        }
        #[tokio::test]
        async fn a_poison_message_is_delivered_unparsed_and_acked_away() {
            $crate::queue_contract::a_poison_message_is_delivered_unparsed_and_acked_away(&$make().await)
                .await;
        }
    };
}
