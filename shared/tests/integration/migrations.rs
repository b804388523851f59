use jobline::store::migrate::{self, MIGRATIONS, Migration};

use crate::support::{connect_raw, empty_database};

#[tokio::test]
async fn migrating_twice_applies_everything_once_and_then_nothing() {
    let url = empty_database().await;
    let mut client = connect_raw(&url).await;
    let first = migrate::run(&mut client).await.expect("first run");
    assert_eq!(
        first.applied,
        MIGRATIONS.iter().map(|m| m.version).collect::<Vec<_>>()
    );
    let second = migrate::run(&mut client).await.expect("second run");
    assert!(second.applied.is_empty());
    assert_eq!(second.already_applied, MIGRATIONS.len());
    let recorded: i64 = client
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(recorded as usize, MIGRATIONS.len());
}

#[tokio::test]
async fn concurrent_migrators_serialize_and_both_succeed() {
    let url = empty_database().await;
    let mut a = connect_raw(&url).await;
    let mut b = connect_raw(&url).await;
    let (ra, rb) = tokio::join!(migrate::run(&mut a), migrate::run(&mut b));
    let (ra, rb) = (ra.expect("a"), rb.expect("b"));
    assert_eq!(ra.applied.len() + rb.applied.len(), MIGRATIONS.len());
}

#[tokio::test]
async fn a_changed_migration_is_refused() {
    let url = empty_database().await;
    let mut client = connect_raw(&url).await;
    migrate::run(&mut client).await.expect("migrate");
    let mut edited: Vec<Migration> = MIGRATIONS.to_vec();
    edited[0].sql = "SELECT 1";
    let err = migrate::run_list(&mut client, &edited).await.unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
}

#[tokio::test]
async fn a_failing_migration_leaves_nothing_behind() {
    let url = empty_database().await;
    let mut client = connect_raw(&url).await;
    let broken = [
        MIGRATIONS[0],
        Migration {
            version: 2,
            name: "0002_broken",
            sql: "CREATE TABLE fine (x int); SELECT no_such_function();",
        },
    ];
    let err = migrate::run_list(&mut client, &broken).await.unwrap_err();
    assert!(err.to_string().contains("0002_broken"), "{err}");
    let jobs_exists: bool = client
        .query_one("SELECT to_regclass('jobs') IS NOT NULL", &[])
        .await
        .expect("query")
        .get(0);
    assert!(!jobs_exists, "the whole run rolled back");
}
