-- The live audit: the promises checked over the jobs created in a window,
-- in one statement (one snapshot: a job and its events are read as one
-- transition left them). One copy serves `GET /v1/audit`, `jobline audit`,
-- the drill and the gauntlet; `store/audit.rs` runs it in a read-only
-- transaction under `SET LOCAL statement_timeout`.
--
-- $1 since · $2 until (now) · $3 heartbeat timeout (s) · $4 grace (s)
-- $5 most jobs examined · $6 most example ids per count
--
-- One row per count: name, kind ('violation' | 'informative' | 'status' |
-- 'meta'), n, examples (up to $6 job ids, smallest first).
--
-- Violations (0 on a healthy system, live or drained):
--   completed_twice        more than one `completed` event
--   event_gaps             the transitions are not a chain: the first is
--                          `created` (into pending), each next one starts
--                          where the previous ended
--   status_not_last_event  the last transition does not end in the status
--   claims_not_attempts    not one `claimed` event per attempt (a claim
--                          handed back unstarted, `handed_back`, spent none)
--   completed_attempt_not_attempts
--                          completed, but the (last) `completed` event's
--                          attempt is not jobs.attempts (or there is none):
--                          the completion came from a stale claim
--   handed_back_unclaimed  a `handed_back` that does not directly follow a
--                          `claimed` of the same attempt by the same worker
--   outbox_stuck           dead-lettered outbox rows, and unsent rows due
--                          (job due, row due) for longer than the grace: the
--                          relay publishes right after commit and the sweeper
--                          every pass, so a row that old was left behind
--   stale_claims           processing jobs whose heartbeat is older than
--                          the heartbeat timeout plus the grace (the sweeper
--                          releases them every pass). Every processing job,
--                          not only the window's: a stuck claim is stuck
--                          whenever its job was created.
-- Informative (expected on a live system; a drained gauntlet reads them):
--   not_completed, rerun (attempts > 1), outbox_retried (a row published
--   more than once), outbox_unsent (rows not sent nor dead-lettered, due or
--   not), and per status the jobs examined ('status' rows).
-- Meta: candidates (jobs in the window, up to $5 + 1: more than $5 means the
-- audit examined only the newest $5), examined.
--
-- Cost: the tenants one index step each (`job_tenants`, migration 0009: a
-- loose scan, as `processing_jobs` does), then per tenant and status the window's range of
-- `jobs_tenant_status_recent`, at most $5 + 1 entries each (index only);
-- then each examined job by id, its timeline (`job_events_timeline`) and
-- its outbox rows (`outbox_job`); plus the processing jobs. No sequential
-- scan: the per-job lookups are LATERAL with OFFSET 0, which the planner
-- cannot flatten into a join over a whole table.
-- Only columns of the index (an index-only scan where the visibility map
-- allows); the rest of each examined job is read by its id below.
WITH candidates AS MATERIALIZED (
    SELECT c.*
    FROM job_tenants t
    CROSS JOIN unnest(enum_range(NULL::job_status)) AS s (status)
    CROSS JOIN LATERAL (
        SELECT j.id, j.created_at
        FROM jobs j
        WHERE j.tenant_id = t.tenant_id AND j.status = s.status
          AND j.created_at >= $1 AND j.created_at <= $2
        ORDER BY j.created_at DESC, j.id DESC
        LIMIT $5 + 1
    ) c
),
examined AS MATERIALIZED (
    SELECT j.*
    FROM (SELECT id FROM candidates ORDER BY created_at DESC, id DESC LIMIT $5) n
    CROSS JOIN LATERAL (
        SELECT j.id, j.status::text AS status, j.attempts, j.run_after
        FROM jobs j
        WHERE j.id = n.id
        OFFSET 0 -- a lookup per id: flattened, the planner scans the table
    ) j
),
events AS MATERIALIZED (
    SELECT e.*
    FROM examined x
    CROSS JOIN LATERAL (
        SELECT e.job_id, e.id, e.event, e.from_status::text AS from_status,
               e.to_status::text AS to_status, e.attempt, e.actor
        FROM job_events e
        WHERE e.job_id = x.id
        ORDER BY e.id
    ) e
),
transitions AS (
    SELECT e.*,
           lag(e.to_status) OVER w AS previous_to,
           lag(e.event) OVER w AS previous_event,
           lag(e.attempt) OVER w AS previous_attempt,
           lag(e.actor) OVER w AS previous_actor,
           row_number() OVER w AS n,
           row_number() OVER (PARTITION BY e.job_id ORDER BY e.id DESC) AS from_last
    FROM events e
    WHERE e.to_status IS NOT NULL
    WINDOW w AS (PARTITION BY e.job_id ORDER BY e.id)
),
last_completed AS (
    SELECT DISTINCT ON (job_id) job_id, attempt
    FROM events
    WHERE event = 'completed'
    ORDER BY job_id, id DESC
),
per_job AS (
    SELECT job_id,
           count(*) FILTER (WHERE event = 'completed') AS completions,
           count(*) FILTER (WHERE event = 'claimed')
             - count(*) FILTER (WHERE event = 'handed_back') AS claims
    FROM events
    GROUP BY job_id
),
outbox_rows AS MATERIALIZED (
    -- A lookup per job (`outbox_job`), never a scan of the outbox.
    SELECT o.*, x.run_after
    FROM examined x
    CROSS JOIN LATERAL (
        SELECT o.job_id, o.status::text AS status, o.attempts, o.next_attempt_at
        FROM outbox o
        WHERE o.job_id = x.id
        OFFSET 0
    ) o
),
found (name, kind, job_id) AS (
    SELECT 'completed_twice', 'violation', job_id FROM per_job WHERE completions > 1
    UNION ALL
    SELECT DISTINCT 'event_gaps', 'violation', job_id FROM transitions
    WHERE (n = 1 AND (event <> 'created' OR from_status IS NOT NULL))
       OR (n > 1 AND from_status IS DISTINCT FROM previous_to)
    UNION ALL
    SELECT 'status_not_last_event', 'violation', x.id FROM examined x
    LEFT JOIN transitions l ON l.job_id = x.id AND l.from_last = 1
    WHERE l.to_status IS DISTINCT FROM x.status
    UNION ALL
    SELECT 'claims_not_attempts', 'violation', x.id FROM examined x
    LEFT JOIN per_job p ON p.job_id = x.id
    WHERE coalesce(p.claims, 0) <> x.attempts
    UNION ALL
    SELECT 'completed_attempt_not_attempts', 'violation', x.id FROM examined x
    LEFT JOIN last_completed c ON c.job_id = x.id
    WHERE x.status = 'completed' AND c.attempt IS DISTINCT FROM x.attempts
    UNION ALL
    SELECT DISTINCT 'handed_back_unclaimed', 'violation', job_id FROM transitions
    WHERE event = 'handed_back'
      AND (previous_event IS DISTINCT FROM 'claimed'
           OR previous_attempt IS DISTINCT FROM attempt
           OR previous_actor IS DISTINCT FROM actor)
    UNION ALL
    SELECT DISTINCT 'outbox_stuck', 'violation', job_id FROM outbox_rows
    WHERE status = 'dead_letter'
       OR (status IN ('pending', 'failed')
           AND greatest(run_after, next_attempt_at) <= $2 - make_interval(secs => $4))
    UNION ALL
    SELECT 'stale_claims', 'violation', p.id FROM processing_jobs p
    WHERE coalesce(p.heartbeat_at, p.locked_at, p.updated_at)
          < $2 - make_interval(secs => $3 + $4)
    UNION ALL
    SELECT 'not_completed', 'informative', id FROM examined WHERE status <> 'completed'
    UNION ALL
    SELECT 'rerun', 'informative', id FROM examined WHERE attempts > 1
    UNION ALL
    SELECT DISTINCT 'outbox_retried', 'informative', job_id FROM outbox_rows WHERE attempts > 1
    UNION ALL
    SELECT DISTINCT 'outbox_unsent', 'informative', job_id FROM outbox_rows
    WHERE status IN ('pending', 'failed')
    UNION ALL
    SELECT status, 'status', id FROM examined
),
names (name, kind) AS (
    VALUES ('completed_twice', 'violation'), ('event_gaps', 'violation'),
           ('status_not_last_event', 'violation'), ('claims_not_attempts', 'violation'),
           ('completed_attempt_not_attempts', 'violation'), ('handed_back_unclaimed', 'violation'),
           ('outbox_stuck', 'violation'), ('stale_claims', 'violation'),
           ('not_completed', 'informative'), ('rerun', 'informative'),
           ('outbox_retried', 'informative'), ('outbox_unsent', 'informative')
)
SELECT n.name, n.kind, count(f.job_id) AS n,
       coalesce((array_agg(f.job_id ORDER BY f.job_id) FILTER (WHERE f.job_id IS NOT NULL))[1:$6],
                '{}') AS examples
FROM names n
LEFT JOIN found f ON f.name = n.name AND f.kind = n.kind
GROUP BY n.name, n.kind
UNION ALL
SELECT name, kind, count(*), '{}' FROM found WHERE kind = 'status' GROUP BY name, kind
UNION ALL
SELECT 'candidates', 'meta', (SELECT count(*) FROM candidates), '{}'
UNION ALL
SELECT 'examined', 'meta', (SELECT count(*) FROM examined), '{}'
