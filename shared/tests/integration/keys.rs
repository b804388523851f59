//! API keys: `last_used_at` is written off the request's path, at most about
//! once a minute per key.

use std::time::Duration;

use crate::support::{eventually, test_db};

#[tokio::test]
async fn a_keys_last_use_is_recorded_at_most_once_a_minute() {
    let db = test_db().await;
    let key = db
        .store
        .create_api_key("acme", &["jobs:read".to_owned()], Some("k"))
        .await
        .expect("key");
    let last_used = || async {
        db.client
            .query_one("SELECT last_used_at FROM api_keys WHERE id = $1", &[&key.id])
            .await
            .expect("row")
            .get::<_, Option<chrono::DateTime<chrono::Utc>>>(0)
    };
    let until_set = |want: chrono::DateTime<chrono::Utc>| async move {
        let set = eventually(Duration::from_secs(10), || async {
            let got = last_used().await;
            got.is_some_and(|t| (t - want).num_milliseconds().abs() < 1)
        })
        .await;
        assert!(set, "last_used_at is {:?}, want {want}", last_used().await);
    };
    assert_eq!(last_used().await, None, "never used");
    let first = db.now();
    for _ in 0..3 {
        assert!(db.store.authenticate(&key.key).await.expect("auth").is_some());
    }
    until_set(first).await;
    db.advance(30);
    assert!(db.store.authenticate(&key.key).await.expect("auth").is_some());
    // A later write would have landed by the time this one does.
    let other = db
        .store
        .create_api_key("acme", &["jobs:read".to_owned()], Some("other"))
        .await
        .expect("key");
    assert!(db.store.authenticate(&other.key).await.expect("auth").is_some());
    let recorded = eventually(Duration::from_secs(10), || async {
        db.client
            .query_one(
                "SELECT last_used_at IS NOT NULL FROM api_keys WHERE id = $1",
                &[&other.id],
            )
            .await
            .expect("row")
            .get::<_, bool>(0)
    })
    .await;
    assert!(recorded, "the other key's use was never recorded");
    assert_eq!(
        last_used().await,
        Some(first),
        "not written again within the minute"
    );
    db.advance(31);
    let later = db.now();
    assert!(db.store.authenticate(&key.key).await.expect("auth").is_some());
    until_set(later).await;
    // A wrong secret for the same id records nothing.
    db.advance(120);
    let forged = format!("{}x", key.key);
    assert!(db.store.authenticate(&forged).await.expect("auth").is_none());
}

#[tokio::test]
async fn a_key_revoked_by_another_process_stops_working_within_the_cache_ttl() {
    let db = test_db().await;
    let key = db
        .store
        .create_api_key("acme", &["jobs:read".to_owned()], Some("k"))
        .await
        .expect("key");
    // Another process: the same database and clock, a cache of its own.
    let elsewhere = jobline::Store::with_clock(
        db.store.pool().clone(),
        jobline::testing::test_settings(),
        std::sync::Arc::new(db.clock.clone()),
    );
    assert!(elsewhere.authenticate(&key.key).await.expect("auth").is_some());
    let wrong = format!("{}0", &key.key[..key.key.len() - 1]);
    let wrong = if wrong == key.key {
        format!("{}1", &key.key[..key.key.len() - 1])
    } else {
        wrong
    };
    assert!(
        elsewhere.authenticate(&wrong).await.expect("auth").is_none(),
        "a cached key still checks the secret"
    );
    assert!(db.store.revoke_api_key(key.id).await.expect("revoke"));
    assert!(
        db.store.authenticate(&key.key).await.expect("auth").is_none(),
        "refused at once by the process that revoked it"
    );
    db.advance(4);
    assert!(
        elsewhere.authenticate(&key.key).await.expect("auth").is_some(),
        "trusted elsewhere for at most KEY_CACHE_TTL"
    );
    db.advance(2);
    assert!(
        elsewhere.authenticate(&key.key).await.expect("auth").is_none(),
        "and refused everywhere after it"
    );
    assert_eq!(jobline::store::keys::KEY_CACHE_TTL.num_seconds(), 5);
}
