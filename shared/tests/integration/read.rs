use std::collections::HashSet;

use jobline::domain::{Job, JobStatus, NewJob};
use jobline::store::JobFilter;
use serde_json::json;

use crate::support::{TestDb, test_db};

/// Acme's jobs that `filter` lets through, on a first page of 50.
async fn listed(db: &TestDb, filter: JobFilter) -> Vec<Job> {
    db.store.list("acme", &filter, 50, None).await.expect("list").jobs
}

#[tokio::test]
async fn another_tenants_job_is_not_found() {
    let db = test_db().await;
    let job = db.noop_for("acme").await;
    assert!(db.store.get("acme", job.id).await.expect("get").is_some());
    assert!(db.store.get("globex", job.id).await.expect("get").is_none());
    assert!(
        db.store
            .timeline(Some("globex"), job.id)
            .await
            .expect("timeline")
            .is_none()
    );
    assert!(db.store.get_any(job.id).await.expect("get any").is_some());
}

#[tokio::test]
async fn list_filters_by_status_type_and_correlation() {
    let db = test_db().await;
    for i in 0..3 {
        db.job_for(
            "acme",
            NewJob::new("email", json!({ "i": i })).correlation_id("story-a"),
        )
        .await;
    }
    db.job_for("acme", NewJob::new("render", json!({}))).await;
    db.job_for("globex", NewJob::new("email", json!({}))).await;
    let claimed = db
        .store
        .claim("w1", 1, Some(&["render".to_owned()]))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);

    assert_eq!(
        listed(&db, JobFilter::default()).await.len(),
        4,
        "only the tenant's own jobs"
    );
    let emails = JobFilter {
        job_type: Some("email".into()),
        ..JobFilter::default()
    };
    assert_eq!(listed(&db, emails).await.len(), 3);
    let story = JobFilter {
        correlation_id: Some("story-a".into()),
        ..JobFilter::default()
    };
    assert_eq!(listed(&db, story).await.len(), 3);
    let running = JobFilter {
        status: Some(JobStatus::Processing),
        ..JobFilter::default()
    };
    let jobs = listed(&db, running).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].job_type, "render");
}

#[tokio::test]
async fn pages_walk_every_job_once_while_new_jobs_arrive() {
    let db = test_db().await;
    let mut originals = HashSet::new();
    for i in 0..25 {
        db.advance(1);
        let job = db.job_for("acme", NewJob::new("noop", json!({ "i": i }))).await;
        originals.insert(job.id);
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = db
            .store
            .list("acme", &JobFilter::default(), 10, cursor)
            .await
            .expect("page");
        pages += 1;
        seen.extend(page.jobs.iter().map(|j| j.id));
        // Inserts between pages land before the cursor, never inside the rest.
        db.advance(1);
        db.job_for("acme", NewJob::new("noop", json!({"late": pages})))
            .await;
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 25, "no job twice");
    assert_eq!(
        seen.iter().copied().collect::<HashSet<_>>(),
        originals,
        "every original job once"
    );
}

#[tokio::test]
async fn the_timeline_tells_the_story_in_order() {
    let db = test_db().await;
    let job = db.noop_for("acme").await;
    let claim = db.store.claim_by_id("w1", job.id).await.expect("claim");
    let jobline::store::ClaimByIdOutcome::Claimed(claim) = claim else {
        panic!("claimable")
    };
    db.store
        .complete(&claim, Some(json!({"ok": true})), None)
        .await
        .expect("complete");
    let events = db
        .store
        .timeline(Some("acme"), job.id)
        .await
        .expect("timeline")
        .expect("found");
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names, ["created", "claimed", "completed"]);
    assert_eq!(events[1].actor.as_deref(), Some("w1"));
    assert_eq!(events[2].from_status, Some(JobStatus::Processing));
    assert_eq!(events[2].to_status, Some(JobStatus::Completed));
    assert_eq!(events[2].attempt, Some(1));
}
