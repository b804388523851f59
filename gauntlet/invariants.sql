-- The gauntlet's invariant check over a whole database: one JSON object.
-- Every invariant is counted here (0 = holds); gauntlet.py only compares.
--
-- Input: a temporary table `accepted (id uuid)` holding the ids the API
-- accepted. gauntlet.py creates it and fills it with COPY ... FROM STDIN in
-- the same psql session, ahead of this file (any number of ids). By hand:
--   psql -XAtq "$URL" -c 'CREATE TEMP TABLE accepted (id uuid)' -f gauntlet/invariants.sql
--
--   lost                   accepted ids with no job
--   not_completed          jobs not `completed` (a violation where the
--                          scenario expects every job completed)
--   completed_twice        jobs with more than one `completed` event
--   event_gaps             timelines that are not a chain: the first
--                          transition is `created` (into pending), each next
--                          one starts where the previous ended
--   status_not_last_event  the last transition does not end in the status
--   claims_not_attempts    not one `claimed` event per attempt (a claim
--                          handed back unstarted, `handed_back`, spent none)
--   completed_attempt_not_attempts
--                          completed jobs whose (last) `completed` event's
--                          attempt is not jobs.attempts (or that have none):
--                          the completion came from a claim that was not
--                          the job's current one
--   handed_back_unclaimed  jobs with a `handed_back` that does not directly
--                          follow a `claimed` of the same attempt by the
--                          same worker (only a holder gives back, and only
--                          a claim it never started)
--   outbox_stuck           due outbox rows left unsent, dead-lettered rows
-- Events without a transition (`published`) are not part of the chain.
WITH chain AS (
    SELECT e.job_id, e.event, e.from_status, e.to_status,
           lag(e.to_status) OVER w AS previous_to,
           row_number() OVER w AS n
    FROM job_events e
    WHERE e.to_status IS NOT NULL
    WINDOW w AS (PARTITION BY e.job_id ORDER BY e.id)
),
hand_backs AS (
    SELECT e.job_id, e.event, e.attempt, e.actor,
           lag(e.event) OVER w AS prev_event, lag(e.attempt) OVER w AS prev_attempt,
           lag(e.actor) OVER w AS prev_actor
    FROM job_events e
    WHERE e.to_status IS NOT NULL
    WINDOW w AS (PARTITION BY e.job_id ORDER BY e.id)
),
last_transition AS (
    SELECT DISTINCT ON (job_id) job_id, to_status
    FROM job_events
    WHERE to_status IS NOT NULL
    ORDER BY job_id, id DESC
),
last_completed AS (
    SELECT DISTINCT ON (job_id) job_id, attempt
    FROM job_events
    WHERE event = 'completed'
    ORDER BY job_id, id DESC
),
per_job AS (
    SELECT job_id,
           count(*) FILTER (WHERE event = 'completed') AS completions,
           count(*) FILTER (WHERE event = 'claimed')
             - count(*) FILTER (WHERE event = 'handed_back') AS claims
    FROM job_events
    GROUP BY job_id
)
SELECT json_build_object(
    'created', (SELECT count(*) FROM jobs),
    'accepted', (SELECT count(DISTINCT id) FROM accepted),
    'completed', (SELECT count(*) FROM jobs WHERE status = 'completed'),
    'by_status', (SELECT coalesce(json_object_agg(status, n), '{}')
                  FROM (SELECT status::text, count(*) AS n FROM jobs GROUP BY status) s),
    'lost', (SELECT count(DISTINCT a.id) FROM accepted a
             WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = a.id)),
    'not_completed', (SELECT count(*) FROM jobs WHERE status <> 'completed'),
    'completed_twice', (SELECT count(*) FROM per_job WHERE completions > 1),
    'event_gaps', (SELECT count(DISTINCT job_id) FROM chain
                   WHERE (n = 1 AND (event <> 'created' OR from_status IS NOT NULL))
                      OR (n > 1 AND from_status IS DISTINCT FROM previous_to)),
    'status_not_last_event', (SELECT count(*) FROM jobs j
                              LEFT JOIN last_transition l ON l.job_id = j.id
                              WHERE l.to_status IS DISTINCT FROM j.status),
    'claims_not_attempts', (SELECT count(*) FROM jobs j
                            LEFT JOIN per_job p ON p.job_id = j.id
                            WHERE coalesce(p.claims, 0) <> j.attempts),
    'completed_attempt_not_attempts', (SELECT count(*) FROM jobs j
                                       LEFT JOIN last_completed c ON c.job_id = j.id
                                       WHERE j.status = 'completed'
                                         AND c.attempt IS DISTINCT FROM j.attempts),
    'handed_back_unclaimed', (SELECT count(DISTINCT job_id) FROM hand_backs
                              WHERE event = 'handed_back'
                                AND (prev_event IS DISTINCT FROM 'claimed'
                                     OR prev_attempt IS DISTINCT FROM attempt
                                     OR prev_actor IS DISTINCT FROM actor)),
    -- Unsent rows of due jobs (a future job's row waits for its time) and
    -- dead-lettered rows.
    'outbox_stuck', (SELECT count(*) FROM outbox o JOIN jobs j ON j.id = o.job_id
                     WHERE o.status = 'dead_letter'
                        OR (o.status <> 'sent' AND j.run_after <= now())),
    'outbox_retried', (SELECT count(DISTINCT job_id) FROM outbox WHERE attempts > 1),
    'rerun', (SELECT count(*) FROM jobs WHERE attempts > 1)
);
