//! The dashboard over real HTTP (the in-process server, real Postgres):
//! login and its cookie, CSRF, scopes, tenants, workers for the operators
//! only, logout, expiry and revocation.

use jobline::store::workers::WorkerBeat;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

use crate::support::{ADMIN_KEY, TestApi, test_api_with};

/// A browser's view of one login: the session cookie.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: String,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The value of `name` in a response's `Set-Cookie` headers, and the
/// whole header.
fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<(String, String)> {
    resp.headers().get_all(SET_COOKIE).iter().find_map(|v| {
        let line = v.to_str().ok()?.to_owned();
        let value = line
            .strip_prefix(&format!("{name}="))?
            .split(';')
            .next()?
            .to_owned();
        Some((value, line))
    })
}

async fn api() -> TestApi {
    test_api_with(&[("JOBLINE_JOB_TYPES", "noop,render")]).await
}

/// Logs in with `key`; the answer to the login POST.
async fn login_response(api: &TestApi, key: &str) -> reqwest::Response {
    client()
        .post(api.url("/dashboard/login"))
        .form(&[("api_key", key)])
        .send()
        .await
        .expect("login")
}

async fn login(api: &TestApi, key: &str) -> Browser {
    let resp = login_response(api, key).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[LOCATION], "/dashboard");
    let (token, _) = set_cookie(&resp, "jobline_session").expect("a session cookie");
    Browser {
        http: client(),
        base: api.base.clone(),
        cookie: format!("jobline_session={token}"),
    }
}

impl Browser {
    async fn get(&self, path: &str) -> (StatusCode, String, Option<String>) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .send()
            .await
            .expect("get");
        let status = resp.status();
        let location = resp
            .headers()
            .get(LOCATION)
            .map(|l| l.to_str().expect("ascii").to_owned());
        (status, resp.text().await.expect("body"), location)
    }

    /// A page that must answer 200.
    async fn page(&self, path: &str) -> String {
        let (status, body, _) = self.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        body
    }

    /// The session's CSRF token, read from a page as a browser would.
    async fn csrf(&self) -> String {
        csrf_in(&self.page("/dashboard/jobs").await)
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .form(form)
            .send()
            .await
            .expect("post")
    }
}

fn csrf_in(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().expect("closed").to_owned()
}

#[tokio::test]
async fn login_sets_a_strict_secure_http_only_cookie_that_never_holds_the_key() {
    let api = api().await;
    let key = api.key("acme", &["jobs:read"]).await;

    // Nothing without a session: the login page.
    let (status, _, location) = Browser {
        http: client(),
        base: api.base.clone(),
        cookie: "jobline_session=nope".into(),
    }
    .get("/dashboard/jobs")
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/dashboard/login"));
    let form = client()
        .get(api.url("/dashboard/login"))
        .send()
        .await
        .expect("form");
    assert_eq!(form.status(), StatusCode::OK);
    let html = form.text().await.expect("body");
    assert!(html.contains("name=\"api_key\"") && html.contains("data-testid=\"login-submit\""));

    // A wrong key: the form again, 401, no session, and no hint which part was wrong.
    let wrong = login_response(&api, &format!("{key}x")).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&wrong, "jobline_session").is_none());
    let unknown = login_response(&api, "jl_00000000000000000000000000000000_nope").await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let (a, b) = (
        wrong.text().await.expect("body"),
        unknown.text().await.expect("body"),
    );
    assert!(a.contains("data-testid=\"login-error\""));
    assert_eq!(a, b, "a wrong secret and an unknown key read the same");
    assert_eq!(api.db.count("SELECT count(*) FROM dashboard_sessions").await, 0);

    let resp = login_response(&api, &key).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (token, line) = set_cookie(&resp, "jobline_session").expect("a session cookie");
    for attribute in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/dashboard",
        "Max-Age=43200",
    ] {
        assert!(line.contains(attribute), "{line} lacks {attribute}");
    }
    assert!(
        !line.contains(&key) && !key.contains(&token),
        "the cookie never holds the key"
    );
    // The store keeps the token's hash only, with the key's id, tenant and scopes.
    let row = api
        .db
        .client
        .query_one(
            "SELECT tenant_id, scopes, key_id IS NOT NULL AS has_key, \
                    token_hash = sha256(convert_to($1, 'UTF8')) AS hashed \
             FROM dashboard_sessions",
            &[&token],
        )
        .await
        .expect("one session");
    assert_eq!(row.get::<_, String>("tenant_id"), "acme");
    assert_eq!(row.get::<_, Vec<String>>("scopes"), vec!["jobs:read".to_owned()]);
    assert!(row.get::<_, bool>("has_key") && row.get::<_, bool>("hashed"));
    let stored: i64 = api
        .db
        .client
        .query_one(
            "SELECT count(*) FROM dashboard_sessions WHERE position($1 IN encode(token_hash, 'escape')) > 0",
            &[&token],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(stored, 0, "the token itself is not stored");
}

#[tokio::test]
async fn the_overview_counts_a_tenants_jobs_and_draws_the_charts() {
    let api = api().await;
    let a = api.db.noop_for("acme").await;
    api.db.noop_for("acme").await;
    api.db.complete_now(a.id).await;
    api.db.noop_for("other").await;
    let key = api.key("acme", &["jobs:read"]).await;
    let html = login(&api, &key).await.page("/dashboard").await;
    assert!(html.contains("data-testid=\"count-pending\">1<"), "{html}");
    assert!(html.contains("data-testid=\"count-completed\">1<"));
    assert!(html.contains("data-testid=\"count-failed\">0<"));
    assert!(html.contains("data-testid=\"health\">healthy<"));
    assert!(html.contains("data-testid=\"dead-letter-size\">0<"));
    for chart in ["completions", "failures", "depth"] {
        for window in ["hour", "day"] {
            assert!(
                html.contains(&format!("<svg data-testid=\"chart-{chart}-{window}\"")),
                "{chart}-{window}"
            );
        }
    }
    // The refreshed region reloads this very address.
    assert!(html.contains(
        "id=\"main\" hx-get=\"/dashboard\" hx-trigger=\"every 5s\" hx-select=\"#main\" hx-swap=\"outerHTML\""
    ));
    // A read-only key has no workers link.
    assert!(!html.contains("nav-workers"));
}

#[tokio::test]
async fn a_forged_post_is_refused_and_changes_nothing() {
    let api = api().await;
    let job = api.db.noop_for("default").await;
    let browser = login(&api, ADMIN_KEY).await;
    let path = format!("/dashboard/jobs/{}/cancel", job.id);

    let no_token = browser.post(&path, &[("back", "/dashboard")]).await;
    assert_eq!(no_token.status(), StatusCode::FORBIDDEN);
    let csrf = browser.csrf().await;
    let wrong = browser.post(&path, &[("csrf", &format!("{csrf}0"))]).await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let cross_site = browser
        .http
        .post(format!("{}{path}", browser.base))
        .header(COOKIE, &browser.cookie)
        .header("Origin", "https://evil.example")
        .header("Sec-Fetch-Site", "cross-site")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        api.db.job(job.id).await.status.as_str(),
        "pending",
        "nothing changed"
    );

    // The real form: cancelled, and back where it came from with a flash.
    let page = browser.page(&format!("/dashboard/jobs/{}", job.id)).await;
    assert!(page.contains("data-testid=\"cancel-button\""));
    assert!(
        !page.contains("data-testid=\"retry-button\""),
        "a pending job cannot be retried"
    );
    let back = format!("/dashboard/jobs/{}", job.id);
    let ok = browser.post(&path, &[("csrf", &csrf), ("back", &back)]).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(ok.headers()[LOCATION], back.as_str());
    let (flash, _) = set_cookie(&ok, "jobline_flash").expect("a flash");
    assert_eq!(api.db.job(job.id).await.status.as_str(), "cancelled");
    let after = browser
        .http
        .get(format!("{}{back}", browser.base))
        .header(COOKIE, format!("{}; jobline_flash={flash}", browser.cookie))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("body");
    assert!(after.contains("data-testid=\"flash\""), "{after}");
    assert!(after.contains("data-testid=\"job-status\" class=\"status status-cancelled\">cancelled<"));
    assert!(
        after.contains("data-testid=\"retry-button\""),
        "a cancelled job can be retried"
    );
    assert!(
        after.contains("data-event=\"cancelled\""),
        "the timeline shows it"
    );

    // `back` must be a dashboard page.
    let elsewhere = browser
        .post(
            &format!("/dashboard/jobs/{}/retry", job.id),
            &[("csrf", &csrf), ("back", "https://evil.example/")],
        )
        .await;
    assert_eq!(elsewhere.status(), StatusCode::SEE_OTHER);
    assert_eq!(elsewhere.headers()[LOCATION], back.as_str());
    assert_eq!(api.db.job(job.id).await.status.as_str(), "pending");
}

#[tokio::test]
async fn a_read_only_key_sees_no_buttons_and_its_posts_are_refused() {
    let api = api().await;
    let job = api.db.noop_for("acme").await;
    let failed = api.db.noop_for("acme").await;
    api.db.fail_for_good(failed.id).await;
    let browser = login(&api, &api.key("acme", &["jobs:read"]).await).await;
    let page = browser.page(&format!("/dashboard/jobs/{}", job.id)).await;
    assert!(page.contains("data-testid=\"job-status\""));
    assert!(page.contains("data-testid=\"job-payload\""));
    assert!(page.contains("<ol class=\"timeline\" data-testid=\"timeline\"><li data-event=\"created\">"));
    assert!(!page.contains("cancel-button") && !page.contains("retry-button"));
    let dead = browser.page("/dashboard/dead-letter").await;
    assert!(dead.contains(&format!(
        "data-testid=\"dead-job-row\" data-job-id=\"{}\"",
        failed.id
    )));
    assert!(!dead.contains("retry-button") && !dead.contains("replay-form"));

    let csrf = csrf_in(&page);
    let cancel = browser
        .post(&format!("/dashboard/jobs/{}/cancel", job.id), &[("csrf", &csrf)])
        .await;
    assert_eq!(cancel.status(), StatusCode::FORBIDDEN);
    let retry = browser
        .post(
            &format!("/dashboard/jobs/{}/retry", failed.id),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(retry.status(), StatusCode::FORBIDDEN);
    let replay = browser
        .post(
            "/dashboard/dead-letter/replay",
            &[("csrf", &csrf), ("token", "t1")],
        )
        .await;
    assert_eq!(replay.status(), StatusCode::FORBIDDEN);
    assert_eq!(api.db.job(job.id).await.status.as_str(), "pending");
    assert_eq!(api.db.job(failed.id).await.status.as_str(), "failed");
}

#[tokio::test]
async fn another_tenants_job_is_not_found() {
    let api = api().await;
    let theirs = api.db.noop_for("acme").await;
    let browser = login(&api, &api.key("globex", &["admin"]).await).await;
    for path in [
        format!("/dashboard/jobs/{}", theirs.id),
        format!("/dashboard/jobs/go?id={}", theirs.id),
        "/dashboard/jobs/not-a-uuid".to_owned(),
        "/dashboard/no-such-page".to_owned(),
    ] {
        let (status, body, _) = browser.get(&path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(body.contains("data-testid=\"not-found\""), "{path}: {body}");
    }
    let list = browser.page("/dashboard/jobs").await;
    assert!(!list.contains(&theirs.id.to_string()));
    let csrf = csrf_in(&list);
    let cancel = browser
        .post(
            &format!("/dashboard/jobs/{}/cancel", theirs.id),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(cancel.status(), StatusCode::NOT_FOUND);
    assert_eq!(api.db.job(theirs.id).await.status.as_str(), "pending");
    // Their failed job: globex's retry is not found, its replay replays
    // none of acme's, and acme's correlation id finds nothing for globex.
    let failed = api.db.noop_for("acme").await;
    api.db.fail_for_good(failed.id).await;
    api.db
        .client
        .execute(
            "UPDATE jobs SET correlation_id = 'acme-order-7' WHERE id = $1",
            &[&failed.id],
        )
        .await
        .expect("correlate");
    let retry = browser
        .post(
            &format!("/dashboard/jobs/{}/retry", failed.id),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(retry.status(), StatusCode::NOT_FOUND);
    let replay = browser
        .post(
            "/dashboard/dead-letter/replay",
            &[("csrf", &csrf), ("token", "globex-replay-1")],
        )
        .await;
    assert_eq!(replay.status(), StatusCode::SEE_OTHER);
    assert_eq!(api.db.job(failed.id).await.status.as_str(), "failed");
    let dead = browser.page("/dashboard/dead-letter").await;
    assert!(!dead.contains(&failed.id.to_string()));
    let by_theirs = browser.page("/dashboard/jobs?correlation_id=acme-order-7").await;
    assert!(!by_theirs.contains("data-testid=\"job-row\""));

    // Their own: found by id, listed, filtered.
    let mine = api.db.noop_for("globex").await;
    let (status, _, location) = browser.get(&format!("/dashboard/jobs/go?id={}", mine.id)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, Some(format!("/dashboard/jobs/{}", mine.id)));
    let filtered = browser.page("/dashboard/jobs?status=pending&type=noop").await;
    assert!(filtered.contains(&format!("data-testid=\"job-row\" data-job-id=\"{}\"", mine.id)));
    assert!(
        !browser
            .page("/dashboard/jobs?status=failed")
            .await
            .contains("data-testid=\"job-row\"")
    );
}

#[tokio::test]
async fn the_jobs_list_pages_by_keyset() {
    let api = api().await;
    for _ in 0..51 {
        api.db.noop_for("acme").await;
    }
    let browser = login(&api, &api.key("acme", &["jobs:read"]).await).await;
    let first = browser.page("/dashboard/jobs?status=pending").await;
    assert_eq!(first.matches("data-testid=\"job-row\"").count(), 50);
    let at = first
        .find("href=\"/dashboard/jobs?status=pending&amp;cursor=")
        .expect("a next page link");
    let href = first[at + 6..]
        .split('"')
        .next()
        .expect("closed")
        .replace("&amp;", "&");
    assert!(first[at..].starts_with("href=") && first[..at].ends_with("<a "));
    let second = browser.page(&href).await;
    assert_eq!(second.matches("data-testid=\"job-row\"").count(), 1);
    assert!(!second.contains("data-testid=\"next-page\""));
}

#[tokio::test]
async fn the_workers_page_is_for_the_operators_alone() {
    let api = api().await;
    api.db
        .store
        .worker_beat(&WorkerBeat {
            id: "edge-1".into(),
            host: "h".into(),
            version: "0.1.0".into(),
            queue: "postgres".into(),
            concurrency: 4,
            started_at: api.db.now(),
            in_flight: 1,
            processed: 0,
            failed: 0,
            state: "running".into(),
            job_types: None,
        })
        .await
        .expect("beat");
    let tenant = login(&api, &api.key("acme", &["admin"]).await).await;
    let (status, body, _) = tenant.get("/dashboard/workers").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("data-testid=\"not-found\"") && !body.contains("edge-1"));
    let csrf = tenant.csrf().await;
    let steer = tenant
        .post("/dashboard/workers/edge-1/pause", &[("csrf", &csrf)])
        .await;
    assert_eq!(steer.status(), StatusCode::NOT_FOUND);

    let operator = login(&api, ADMIN_KEY).await;
    let page = operator.page("/dashboard/workers").await;
    assert!(page.contains("data-testid=\"nav-workers\""));
    assert!(page.contains("data-testid=\"worker-row\" data-worker-id=\"edge-1\""));
    assert!(page.contains("data-testid=\"worker-state\">running<"));
    assert!(page.contains("data-testid=\"pause-button\""));
    let csrf = csrf_in(&page);
    let paused = operator
        .post(
            "/dashboard/workers/edge-1/pause",
            &[("csrf", &csrf), ("back", "/dashboard/workers")],
        )
        .await;
    assert_eq!(paused.status(), StatusCode::SEE_OTHER);
    let desired: String = api
        .db
        .client
        .query_one("SELECT desired_state FROM workers WHERE id = 'edge-1'", &[])
        .await
        .expect("worker")
        .get(0);
    assert_eq!(desired, "paused");
}

#[tokio::test]
async fn logout_expiry_and_revocation_end_a_session() {
    let api = api().await;
    // Logout deletes the row; the old cookie then leads to the login page.
    let browser = login(&api, ADMIN_KEY).await;
    let csrf = browser.csrf().await;
    let out = browser.post("/dashboard/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let (_, cleared) = set_cookie(&out, "jobline_session").expect("the cookie cleared");
    assert!(cleared.contains("Max-Age=0"));
    assert_eq!(api.db.count("SELECT count(*) FROM dashboard_sessions").await, 0);
    let (status, _, location) = browser.get("/dashboard").await;
    assert_eq!(
        (status, location.as_deref()),
        (StatusCode::SEE_OTHER, Some("/dashboard/login"))
    );

    // Expired after 12 hours.
    let browser = login(&api, ADMIN_KEY).await;
    browser.page("/dashboard").await;
    api.db.advance(12 * 3600 + 1);
    let (status, _, location) = browser.get("/dashboard").await;
    assert_eq!(
        (status, location.as_deref()),
        (StatusCode::SEE_OTHER, Some("/dashboard/login"))
    );
    // htmx's polling is sent to the login page whole.
    let polled = browser
        .http
        .get(format!("{}/dashboard", browser.base))
        .header(COOKIE, &browser.cookie)
        .header("HX-Request", "true")
        .send()
        .await
        .expect("poll");
    assert_eq!(polled.headers()["hx-redirect"], "/dashboard/login");

    // A revoked key's session stops (at once in this process).
    let made = api
        .db
        .store
        .create_api_key("acme", &["jobs:read".to_owned()], None)
        .await
        .expect("key");
    let browser = login(&api, &made.key).await;
    browser.page("/dashboard/jobs").await;
    assert!(api.db.store.revoke_api_key(made.id).await.expect("revoke"));
    let (status, _, location) = browser.get("/dashboard/jobs").await;
    assert_eq!(
        (status, location.as_deref()),
        (StatusCode::SEE_OTHER, Some("/dashboard/login"))
    );
    // And a revoked key cannot log in again.
    assert_eq!(
        login_response(&api, &made.key).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn sessions_per_key_are_capped() {
    let api = api().await;
    let key = api.key("acme", &["jobs:read"]).await;
    let first = login(&api, &key).await;
    for _ in 0..jobline::store::sessions::SESSIONS_PER_KEY {
        api.db.advance(1);
        login(&api, &key).await;
    }
    assert_eq!(
        api.db.count("SELECT count(*) FROM dashboard_sessions").await,
        jobline::store::sessions::SESSIONS_PER_KEY
    );
    let (status, _, _) = first.get("/dashboard").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "the oldest session made room");
}

#[tokio::test]
async fn the_dead_letter_replays_once_and_shows_how_many() {
    let api = api().await;
    let job = api.db.noop_for("default").await;
    api.db.fail_for_good(job.id).await;
    let browser = login(&api, ADMIN_KEY).await;
    let page = browser.page("/dashboard/dead-letter").await;
    assert!(page.contains("data-testid=\"replay-form\""));
    assert!(page.contains("onsubmit=\"return confirm("));
    let overview = browser.page("/dashboard").await;
    assert!(overview.contains("data-testid=\"dead-letter-size\">1<"));
    assert!(overview.contains("data-testid=\"health\">degraded<"));
    let csrf = csrf_in(&page);
    let form = [
        ("csrf", csrf.as_str()),
        ("token", "dash-t1"),
        ("back", "/dashboard/dead-letter"),
    ];
    let replayed = browser.post("/dashboard/dead-letter/replay", &form).await;
    assert_eq!(replayed.status(), StatusCode::SEE_OTHER);
    let (flash, _) = set_cookie(&replayed, "jobline_flash").expect("a flash");
    assert_eq!(api.db.job(job.id).await.status.as_str(), "pending");
    let shown = browser
        .http
        .get(format!("{}/dashboard/dead-letter", browser.base))
        .header(COOKIE, format!("{}; jobline_flash={flash}", browser.cookie))
        .send()
        .await
        .expect("get");
    assert!(
        set_cookie(&shown, "jobline_flash").is_some_and(|(v, _)| v.is_empty()),
        "shown once"
    );
    let shown = shown.text().await.expect("body");
    assert!(shown.contains("data-testid=\"replay-result\""), "{shown}");
    assert!(shown.contains("data-count=\"1\""));
    // The same form again replays nothing.
    browser.post("/dashboard/dead-letter/replay", &form).await;
    assert_eq!(
        api.db
            .count("SELECT count(*) FROM job_events WHERE event = 'replayed'")
            .await,
        1
    );
}

#[tokio::test]
async fn htmx_is_served_from_the_binary_with_a_long_cache() {
    let api = api().await;
    let resp = client()
        .get(api.url("/dashboard/assets/htmx.min.js"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["cache-control"]
            .to_str()
            .expect("ascii")
            .contains("max-age=31536000")
    );
    let bytes = resp.bytes().await.expect("body");
    use sha2::Digest as _;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&bytes)),
        jobline::http::dashboard::HTMX_SHA256
    );
}

#[tokio::test]
async fn the_running_page_shows_progress_and_marks_stale_heartbeats() {
    use jobline::store::ClaimByIdOutcome;
    let api = api().await;
    let fresh = api.db.noop_for("acme").await;
    let stale = api.db.noop_for("acme").await;
    let theirs = api.db.noop_for("globex").await;
    let mut claims = Vec::new();
    for id in [stale.id, fresh.id, theirs.id] {
        let ClaimByIdOutcome::Claimed(c) = api.db.store.claim_by_id("edge-1", id).await.expect("claim")
        else {
            panic!("claimable");
        };
        claims.push(c);
    }
    // The stale one's last beat is older than the timeout; the fresh one beats now.
    let timeout = i64::try_from(api.config.heartbeat_timeout.as_secs()).expect("seconds");
    api.db.advance(timeout + 5);
    api.db
        .store
        .heartbeat(claims[1].token(), Some("rendering"), Some(40.0))
        .await
        .expect("beat");
    let browser = login(&api, &api.key("acme", &["jobs:read"]).await).await;
    let page = browser.page("/dashboard/running").await;
    let row = |id: uuid::Uuid| {
        let at = page
            .find(&format!("data-testid=\"running-row\" data-job-id=\"{id}\""))
            .unwrap_or_else(|| panic!("a row for {id}: {page}"));
        let end = page[at..].find("</tr>").expect("row end");
        page[at..at + end].to_owned()
    };
    let (f, s) = (row(fresh.id), row(stale.id));
    assert!(
        f.contains("<progress max=\"100\" value=\"40\">") && f.contains("rendering"),
        "{f}"
    );
    assert!(!f.contains("data-testid=\"stale\""), "{f}");
    assert!(s.contains("data-testid=\"stale\""), "{s}");
    assert!(
        !page.contains(&theirs.id.to_string()),
        "another tenant's job does not show"
    );
    // A tenant sees the worker by its opaque id only.
    assert!(!page.contains("edge-1"));
}

#[tokio::test]
async fn the_sweeper_deletes_expired_sessions() {
    let api = api().await;
    login(&api, ADMIN_KEY).await;
    api.db.advance(3600);
    let live = login(&api, ADMIN_KEY).await;
    // The first is past its 12 hours, the second not yet.
    api.db.advance(11 * 3600 + 60);
    let report = sweep(&api).await;
    assert_eq!(report.pruned.sessions, 1);
    assert_eq!(api.db.count("SELECT count(*) FROM dashboard_sessions").await, 1);
    live.page("/dashboard").await;
}

/// One sweep with the default settings, as the sweeper runs it.
async fn sweep(api: &TestApi) -> jobline::sweeper::SweepReport {
    jobline::sweeper::sweep_once(
        &api.db.store,
        api.state.enqueuer.publisher(),
        None,
        &jobline::sweeper::SweepConfig::default(),
    )
    .await
    .expect("sweep")
}

/// `n` jobs of `job_type` in `status` for `tenant`, straight into the table
/// as the bench loads them: created `ago_s` seconds ago and 1 ms apart
/// after that (processing ones claimed then, by worker `w-load`).
async fn load_jobs(api: &TestApi, tenant: &str, job_type: &str, status: &str, n: i64, ago_s: f64) {
    api.db
        .client
        .execute(
            "INSERT INTO jobs (id, tenant_id, job_type, status, priority, payload, max_attempts, attempts,
                               run_after, created_at, updated_at, started_at, locked_at, heartbeat_at, locked_by)
             SELECT gen_random_uuid(), $1, $2, $3::text::job_status, 2, '{}', 5,
                    CASE WHEN $3 = 'processing' THEN 1 ELSE 0 END, t, t, t,
                    CASE WHEN $3 = 'processing' THEN t END, CASE WHEN $3 = 'processing' THEN t END,
                    CASE WHEN $3 = 'processing' THEN t END, CASE WHEN $3 = 'processing' THEN 'w-load' END
             FROM (SELECT now() - make_interval(secs => $5) + g * interval '1 ms' AS t
                   FROM generate_series(1, $4::int8) AS g) AS s",
            &[&tenant, &job_type, &status, &n, &ago_s],
        )
        .await
        .expect("load jobs");
}

/// The id of the only job of `job_type`.
async fn the_one_job_of_type(api: &TestApi, job_type: &str) -> uuid::Uuid {
    api.db
        .client
        .query_one("SELECT id FROM jobs WHERE job_type = $1", &[&job_type])
        .await
        .expect("one job of the type")
        .get(0)
}

/// The `href` of the element with `data-testid="{testid}"`, unescaped.
fn href_of(html: &str, testid: &str) -> Option<String> {
    let marker = format!("data-testid=\"{testid}\"");
    let tag_end = html.find(&marker)?;
    let tag_start = html[..tag_end].rfind('<')?;
    let tag = &html[tag_start..tag_end + marker.len()];
    let href = tag.split("href=\"").nth(1)?.split('"').next()?;
    Some(href.replace("&amp;", "&"))
}

#[tokio::test]
async fn a_rare_type_filter_reads_a_bounded_slice_per_page_and_goes_on_from_where_it_stopped() {
    use jobline::store::dashboard::TYPE_SCAN_ROWS;
    let api = api().await;
    // The one render job is older than more noop jobs than a page reads.
    load_jobs(&api, "acme", "render", "pending", 1, 3600.0).await;
    load_jobs(&api, "acme", "noop", "pending", TYPE_SCAN_ROWS + 10, 1800.0).await;
    let render = the_one_job_of_type(&api, "render").await;
    let browser = login(&api, &api.key("acme", &["jobs:read"]).await).await;

    let first = browser.page("/dashboard/jobs?type=render").await;
    assert!(!first.contains("data-testid=\"job-row\""), "not among the newest");
    assert!(
        first.contains("data-testid=\"search-cut\""),
        "the page says it stopped"
    );
    let next = href_of(&first, "next-page").expect("a link to search on");
    let second = browser.page(&next).await;
    assert!(second.contains(&format!("data-job-id=\"{render}\"")), "{second}");
    assert!(!second.contains("data-testid=\"search-cut\""));
    assert!(!second.contains("data-testid=\"next-page\""), "nothing older");

    // A common type fills its page as before, and the rows carry no payload.
    let noop = jobline::store::JobFilter {
        job_type: Some("noop".into()),
        ..Default::default()
    };
    let page = api
        .db
        .store
        .dashboard_jobs("acme", &noop, 50, None)
        .await
        .expect("page");
    assert_eq!((page.jobs.len(), page.cut), (50, false));
    assert!(page.next_cursor.is_some());
    // Another tenant's filter reads nothing of acme's.
    let theirs = api
        .db
        .store
        .dashboard_jobs("globex", &noop, 50, None)
        .await
        .expect("page");
    assert!(theirs.jobs.is_empty() && theirs.next_cursor.is_none());
}

#[tokio::test]
async fn a_huge_payload_is_shown_cut_and_the_page_stays_small() {
    let api = api().await;
    let job = api.db.noop_for("acme").await;
    // 60 levels deep around 60,000 small numbers: indented, it would be
    // megabytes; on one line it is over the page's 64 KiB share.
    let mut v = serde_json::Value::from(vec![7; 60_000]);
    for _ in 0..60 {
        v = serde_json::json!({ "n": v });
    }
    api.db
        .client
        .execute("UPDATE jobs SET payload = $2 WHERE id = $1", &[&job.id, &v])
        .await
        .expect("payload");
    let browser = login(&api, &api.key("acme", &["jobs:read"]).await).await;
    let html = browser.page(&format!("/dashboard/jobs/{}", job.id)).await;
    assert!(html.len() < 200 * 1024, "{} bytes", html.len());
    assert!(html.contains("data-testid=\"job-payload-cut\""));
    assert!(html.contains(&format!("GET /v1/jobs/{}", job.id)));

    // Deep but short on one line: shown whole, on one line.
    let (text, cut) = jobline::http::dashboard::shown(&serde_json::json!({"a": [1, 2]}), 1024);
    assert_eq!((text.contains('\n'), cut), (true, None), "small: indented");
    let mut deep = serde_json::Value::from(vec![1; 5_000]);
    for _ in 0..40 {
        deep = serde_json::json!({ "d": deep });
    }
    let (text, cut) = jobline::http::dashboard::shown(&deep, 64 * 1024);
    assert_eq!(
        (text.contains('\n'), cut),
        (false, None),
        "indented it would not fit"
    );
}

#[tokio::test]
async fn the_running_page_shows_the_longest_claimed_and_how_many_run() {
    use jobline::http::dashboard::RUNNING_ROWS;
    let api = api().await;
    load_jobs(&api, "acme", "render", "processing", 1, 7200.0).await;
    load_jobs(
        &api,
        "acme",
        "noop",
        "processing",
        i64::from(RUNNING_ROWS) + 5,
        60.0,
    )
    .await;
    let oldest = the_one_job_of_type(&api, "render").await;
    let browser = login(&api, &api.key("acme", &["jobs:read"]).await).await;
    let html = browser.page("/dashboard/running").await;
    assert_eq!(
        html.matches("data-testid=\"running-row\"").count(),
        RUNNING_ROWS as usize
    );
    assert!(
        html.contains(&format!("data-job-id=\"{oldest}\"")),
        "a two-hour claim is not hidden"
    );
    assert!(
        html.contains(&format!("of {} running jobs", RUNNING_ROWS + 6)),
        "how many run"
    );
}

#[tokio::test]
async fn logging_in_again_ends_the_old_session_and_the_admin_key_digest_is_per_session() {
    let api = api().await;
    let key = api.key("acme", &["jobs:read"]).await;
    let first = login(&api, &key).await;
    let again = client()
        .post(api.url("/dashboard/login"))
        .header(COOKIE, &first.cookie)
        .form(&[("api_key", key.as_str())])
        .send()
        .await
        .expect("login");
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    let (status, _, location) = first.get("/dashboard/jobs").await;
    assert_eq!(
        (status, location.as_deref()),
        (StatusCode::SEE_OTHER, Some("/dashboard/login")),
        "the old session is gone"
    );
    assert_eq!(api.db.count("SELECT count(*) FROM dashboard_sessions").await, 1);

    // Two sessions of the bootstrap key keep different digests, neither the
    // key's plain SHA-256.
    login(&api, ADMIN_KEY).await;
    login(&api, ADMIN_KEY).await;
    let row = api
        .db
        .client
        .query_one(
            "SELECT count(DISTINCT admin_key_digest) AS distinct_digests,
                    count(*) FILTER (WHERE admin_key_digest = sha256(convert_to($1, 'UTF8'))) AS plain
             FROM dashboard_sessions WHERE admin_key_digest IS NOT NULL",
            &[&ADMIN_KEY],
        )
        .await
        .expect("digests");
    assert_eq!(
        (row.get::<_, i64>("distinct_digests"), row.get::<_, i64>("plain")),
        (2, 0)
    );
}

#[tokio::test]
async fn the_login_page_warns_when_the_cookie_cannot_be_kept_and_a_trailing_slash_finds_the_overview() {
    let api = api().await;
    let login_page = |host: &'static str, proto: Option<&'static str>| {
        let url = api.url("/dashboard/login");
        async move {
            let mut req = client().get(url).header("host", host);
            if let Some(p) = proto {
                req = req.header("x-forwarded-proto", p);
            }
            req.send().await.expect("get").text().await.expect("body")
        }
    };
    let warned = |html: &str| html.contains("data-testid=\"login-insecure\"");
    assert!(
        warned(&login_page("192.168.1.20:8080", None).await),
        "plain http on the LAN"
    );
    assert!(
        !warned(&login_page("192.168.1.20:8080", Some("https")).await),
        "behind TLS"
    );
    assert!(!warned(&login_page("127.0.0.1:8080", None).await), "this machine");
    assert!(!warned(&login_page("localhost:3000", None).await));

    let resp = client().get(api.url("/dashboard/")).send().await.expect("get");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[LOCATION], "/dashboard");
}

#[tokio::test]
async fn a_row_an_older_release_dead_lettered_without_its_tenant_is_adopted_by_the_next_sweep() {
    let api = api().await;
    let job = api.db.noop_for("acme").await;
    // As a relay of the release before migration 0011 does it: no tenant.
    api.db
        .client
        .execute(
            "UPDATE outbox SET status = 'dead_letter', sent_at = NULL, tenant_id = NULL WHERE job_id = $1",
            &[&job.id],
        )
        .await
        .expect("dead-letter");
    let seen = || async {
        api.db
            .store
            .dead_letter_outbox("acme", 10)
            .await
            .expect("list")
            .len()
    };
    assert_eq!(seen().await, 0, "invisible to its tenant until adopted");
    let report = sweep(&api).await;
    assert_eq!(report.pruned.dead_letter_tenants, 1);
    assert_eq!(seen().await, 1);
    assert!(
        api.db
            .store
            .dead_letter_outbox("globex", 10)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        api.db
            .store
            .stats(Some("acme"))
            .await
            .expect("stats")
            .dead_letter_outbox,
        1
    );
}

#[tokio::test]
async fn a_correlation_id_of_many_jobs_is_read_in_slices_and_a_small_one_whole() {
    use jobline::store::dashboard::{CORRELATION_SORT_ROWS, TYPE_SCAN_ROWS};
    let api = api().await;
    // A big correlation: its one failed job is older than a slice of its
    // pending ones.
    load_jobs(&api, "acme", "noop", "pending", 1, 7200.0).await;
    api.db
        .client
        .execute(
            "UPDATE jobs SET status = 'failed', attempts = 1, completed_at = created_at,
                    error_code = 'E', failure_reason = 'old'
             WHERE tenant_id = 'acme'",
            &[],
        )
        .await
        .expect("fail it");
    load_jobs(
        &api,
        "acme",
        "noop",
        "pending",
        CORRELATION_SORT_ROWS.max(TYPE_SCAN_ROWS) + 10,
        3600.0,
    )
    .await;
    load_jobs(&api, "acme", "noop", "pending", 3, 60.0).await;
    api.db
        .client
        .batch_execute(
            "UPDATE jobs SET correlation_id = 'batch-big' WHERE tenant_id = 'acme' AND created_at < now() - interval '10 minutes';
             UPDATE jobs SET correlation_id = 'batch-small' WHERE tenant_id = 'acme' AND correlation_id IS NULL",
        )
        .await
        .expect("correlate");
    let by = |c: &str| jobline::store::JobFilter {
        correlation_id: Some(c.into()),
        ..Default::default()
    };
    let store = &api.db.store;
    let small = store
        .dashboard_jobs("acme", &by("batch-small"), 50, None)
        .await
        .expect("small");
    assert_eq!((small.jobs.len(), small.cut, small.next_cursor), (3, false, None));

    // The big one, failed only: the newest slice of the failed range holds
    // it (one failed job); all statuses: the pending slice is cut first.
    let failed = jobline::store::JobFilter {
        status: Some(jobline::domain::JobStatus::Failed),
        ..by("batch-big")
    };
    let page = store
        .dashboard_jobs("acme", &failed, 50, None)
        .await
        .expect("failed");
    assert_eq!(page.jobs.len(), 1);
    let mut seen = std::collections::HashSet::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = store
            .dashboard_jobs("acme", &by("batch-big"), 500, cursor)
            .await
            .expect("page");
        pages += 1;
        for j in &page.jobs {
            assert_eq!(j.correlation_id.as_deref(), Some("batch-big"));
            assert!(seen.insert(j.id), "job {} twice", j.id);
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(pages < 100, "the pages end");
    }
    let total = CORRELATION_SORT_ROWS.max(TYPE_SCAN_ROWS) + 11;
    assert_eq!(seen.len() as i64, total, "every job of the big correlation once");
}

#[tokio::test]
async fn a_long_timeline_shows_its_ends_and_a_long_failure_reason_is_cut() {
    let api = api().await;
    let job = api.db.noop_for("acme").await;
    api.db
        .client
        .execute(
            "INSERT INTO job_events (job_id, event, attempt, actor, at)
             SELECT $1, 'claimed', g, 'test', now() FROM generate_series(1, 500) AS g",
            &[&job.id],
        )
        .await
        .expect("events");
    api.db
        .client
        .execute(
            "UPDATE jobs SET status = 'failed', attempts = 1, completed_at = now(), error_code = 'E',
                    failure_reason = repeat('why ', 20000)
             WHERE id = $1",
            &[&job.id],
        )
        .await
        .expect("fail");
    let browser = login(&api, &api.key("acme", &["jobs:read"]).await).await;
    let html = browser.page(&format!("/dashboard/jobs/{}", job.id)).await;
    assert_eq!(
        html.matches("<li data-event=").count(),
        200,
        "50 first and 150 last"
    );
    assert!(html.contains("data-testid=\"timeline-cut\""));
    assert!(html.contains("301 events not shown"), "501 events, 200 shown");
    assert!(!html.contains(&"why ".repeat(600)), "the reason is cut");
    assert!(html.len() < 150 * 1024, "{} bytes", html.len());
}
