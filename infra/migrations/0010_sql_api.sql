-- 0010: the SQL API. Functions beside the tables (this schema: `public`
-- unless jobline was migrated into another), so an application enqueues a
-- job inside its own transaction, and so every transition has one
-- implementation: the store's statements (store/sql/*.sql) call these.
--
--   enqueue_job(tenant, type, payload, options)   the application's way in
--   claim_jobs, complete_job, fail_job, cancel_job,
--   release_stale_jobs, update_job_heartbeat      the transitions, fenced by attempt
--
-- Helpers the store calls as well: jobline_create_jobs (every create, HTTP
-- or SQL: one insert, one request hash, one idempotency check),
-- jobline_request_hash, jobline_uuid_v7, claim_jobs_by_id (a consumer's
-- claim of the jobs its messages name), complete_jobs (many completions in
-- one statement).
--
-- Who may call what: EXECUTE is revoked from PUBLIC on every function. The
-- role `jobline_app` (created here when the migrator may create roles) gets
-- EXECUTE on enqueue_job and SELECT on the view app_jobs, nothing else;
-- an application's login role is made a member, and bound to the tenants
-- it may enqueue for in app_role_tenants. enqueue_job runs as its owner
-- (SECURITY DEFINER, with a search path of its own) and refuses a tenant the
-- session's login role is not bound to, unless that role could write `jobs`
-- itself anyway.
--
-- A job enqueued by SQL is published by the outbox relay: enqueue_job
-- notifies channel `jobline_outbox` (delivered on commit, never on
-- rollback), and the relay listening in `jobline worker`, `serve` and `dev`
-- publishes at once. The sweeper's relay stays the safety net.

-- uuid v7 (time-ordered, as the HTTP path's Uuid::now_v7): 48 bits of unix
-- milliseconds, then random bits with the version and variant set.
CREATE FUNCTION jobline_uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE
AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;

-- The fingerprint of a create request: everything but the idempotency key
-- and who asked, so the same request by HTTP or by SQL hashes the same.
-- The payload as jsonb text (jsonb orders keys and drops whitespace: equal
-- documents give equal text); the schedule as given (run_after in
-- microseconds, or delay_seconds); max_attempts as given (NULL: the
-- deployment's default). 'v2:' tells these from the hashes the Rust code
-- computed before this migration (see jobline_create_jobs).
CREATE FUNCTION jobline_request_hash(
    p_type text, p_payload jsonb, p_priority smallint, p_run_after timestamptz,
    p_delay_seconds integer, p_max_attempts integer, p_correlation_id text
) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT 'v2:' || encode(sha256(convert_to(pg_catalog.jsonb_build_array(
        p_type, p_payload, p_priority,
        (extract(epoch FROM p_run_after) * 1000000)::bigint,
        p_delay_seconds, p_max_attempts, p_correlation_id
    )::text, 'UTF8')), 'hex')
$$;

-- Creates jobs, their outbox rows and their `created` events. A job whose
-- idempotency key the tenant already used is not inserted: its row comes
-- back with already_existed, and conflict when the request differs. One
-- row per input, `ord` its 1-based position; `job` NULL only when the key's
-- owner vanished meanwhile (deleted by retention): the caller may retry.
--
-- The second statement takes a new snapshot, so it sees a key's owner that
-- committed while the insert waited on it (ON CONFLICT waits for it).
-- p_default_max_attempts: for a job that gives none (JOBLINE_MAX_ATTEMPTS).
-- p_relay_after: the outbox row's earliest relay time is greatest(run_after,
-- p_relay_after) (the HTTP creator publishes itself right after commit; the
-- relay takes over after a grace); NULL: as soon as the job is due (nobody
-- else publishes: the relay does, on notification or when the row is due).
-- p_legacy_hashes: the pre-0010 hash of each request, matched only against
-- keys stored before 0010 (hashes without 'v2:'), so a client retrying
-- across the upgrade is not refused; drop it once 0010 is older than the
-- longest retention.
CREATE FUNCTION jobline_create_jobs(
    p_now timestamptz, p_tenant text, p_queue text, p_relay_after timestamptz, p_actor text,
    p_default_max_attempts integer, p_ids uuid[], p_types text[], p_payloads jsonb[], p_priorities smallint[],
    p_run_afters timestamptz[], p_delays integer[], p_max_attempts integer[],
    p_correlation_ids text[], p_keys text[], p_initiated_by text[], p_legacy_hashes text[]
) RETURNS TABLE (ord bigint, outbox_id bigint, already_existed boolean, conflict boolean, job jobs)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_inserted bigint;
BEGIN
    RETURN QUERY
    WITH input AS (
        SELECT t.*,
               coalesce(t.run_after_given, p_now + make_interval(secs => coalesce(t.delay, 0))) AS run_at,
               -- Only a key's owner needs its request's fingerprint.
               CASE WHEN t.idempotency_key IS NOT NULL THEN
                   jobline_request_hash(t.job_type, t.payload, t.priority, t.run_after_given,
                                        t.delay, t.max_attempts_given, t.correlation_id)
               END AS hash
        FROM unnest(p_ids, p_types, p_payloads, p_priorities, p_run_afters, p_delays,
                    p_max_attempts, p_correlation_ids, p_keys, p_initiated_by)
             WITH ORDINALITY
             AS t (id, job_type, payload, priority, run_after_given, delay,
                   max_attempts_given, correlation_id, idempotency_key, initiated_by, ord)
    ),
    inserted AS (
        INSERT INTO jobs AS j (id, tenant_id, job_type, payload, priority, run_after, max_attempts,
                               correlation_id, idempotency_key, request_hash, initiated_by,
                               created_at, updated_at)
        SELECT i.id, p_tenant, i.job_type, i.payload, i.priority, i.run_at,
               coalesce(i.max_attempts_given, p_default_max_attempts),
               i.correlation_id, i.idempotency_key, i.hash, i.initiated_by, p_now, p_now
        FROM input i
        ORDER BY i.ord
        ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
        RETURNING j AS job, j.id AS job_id, j.run_after AS job_run_after
    ),
    outbox_rows AS (
        INSERT INTO outbox AS o (job_id, queue, message, next_attempt_at, created_at, updated_at)
        SELECT ins.job_id, p_queue,
               pg_catalog.jsonb_build_object('jobId', ins.job_id, 'timestamp', (extract(epoch FROM p_now) * 1000)::bigint),
               greatest(ins.job_run_after, coalesce(p_relay_after, p_now)),
               p_now, p_now
        FROM inserted ins
        RETURNING o.id AS new_outbox_id, o.job_id AS outbox_job_id
    ),
    events AS (
        INSERT INTO job_events (job_id, event, to_status, attempt, actor, at)
        SELECT ins.job_id, 'created', 'pending', 0, p_actor, p_now FROM inserted ins
    )
    SELECT i.ord, ob.new_outbox_id, false, false, ins.job
    FROM input i
    JOIN inserted ins ON ins.job_id = i.id
    JOIN outbox_rows ob ON ob.outbox_job_id = i.id;

    GET DIAGNOSTICS v_inserted = ROW_COUNT;
    IF v_inserted = cardinality(p_ids) THEN
        RETURN;
    END IF;

    -- The inputs not inserted (their ids exist nowhere): their key is taken.
    RETURN QUERY
    WITH input AS (
        SELECT t.*,
               jobline_request_hash(t.job_type, t.payload, t.priority, t.run_after_given,
                                    t.delay, t.max_attempts_given, t.correlation_id) AS hash
        FROM unnest(p_ids, p_types, p_payloads, p_priorities, p_run_afters, p_delays,
                    p_max_attempts, p_correlation_ids, p_keys, p_legacy_hashes)
             WITH ORDINALITY
             AS t (id, job_type, payload, priority, run_after_given, delay,
                   max_attempts_given, correlation_id, idempotency_key, legacy_hash, ord)
        WHERE NOT EXISTS (SELECT 1 FROM jobs x WHERE x.id = t.id)
    )
    SELECT i.ord, NULL::bigint, true,
           CASE WHEN owner.id IS NULL THEN false
                WHEN owner.request_hash LIKE 'v2:%' THEN owner.request_hash <> i.hash
                ELSE owner.request_hash IS DISTINCT FROM i.legacy_hash END,
           CASE WHEN owner.id IS NULL THEN NULL ELSE owner END
    FROM input i
    LEFT JOIN jobs owner ON owner.tenant_id = p_tenant AND owner.idempotency_key = i.idempotency_key;
END
$$;

-- Which tenants a login role may enqueue for by SQL (a role's members
-- inherit its tenants). Managed by the operators; nobody else reads it.
-- By the role's OID (regrole): a binding names a role that exists when it
-- is made, and a role created later under a dropped role's name inherits
-- nothing.
CREATE TABLE app_role_tenants (
    app_role   regrole     NOT NULL,
    tenant_id  text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 128),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_role, tenant_id)
);

-- May the session's login role enqueue for p_tenant? Yes when it could
-- write jobs itself (the owner, an operator), or when it (or a role it
-- belongs to) is bound to the tenant.
CREATE FUNCTION jobline_may_enqueue(p_tenant text) RETURNS boolean
LANGUAGE sql STABLE
AS $$
    SELECT has_table_privilege(session_user, 'jobs'::regclass, 'INSERT')
        OR EXISTS (
            SELECT 1
            FROM app_role_tenants t
            JOIN pg_roles r ON r.oid = t.app_role
            WHERE t.tenant_id = p_tenant AND pg_has_role(session_user, r.oid, 'MEMBER')
        )
$$;

-- enqueue_job: one job, in the caller's transaction.
--   p_options: the HTTP create body's other fields: priority (0-3 or
--   "P0"-"P3"), run_after (a timestamp string) or delay_seconds (0 to a
--   year), max_attempts (1-100), correlation_id and idempotency_key (at most
--   256 characters each). Anything else is refused.
-- Errors (nothing is written; the caller's transaction is aborted, as by
-- any error):
--   SQLSTATE 22023, message 'validation_failed: <field>: <problem>', the
--     field also in the error's COLUMN
--   SQLSTATE JL409, message 'idempotency_conflict: ...', CONSTRAINT
--     'idempotency_conflict': the key was used with another request
--   SQLSTATE 42501, message 'forbidden: ...': the login role is not bound
--     to the tenant
--   SQLSTATE 40001, message 'unavailable: ...': the key's owner vanished
--     meanwhile; try again
-- The same key and request again: the same job, already_existed true,
-- whether the first create came by SQL or by HTTP.
CREATE FUNCTION enqueue_job(p_tenant text, p_type text, p_payload jsonb, p_options jsonb DEFAULT '{}')
RETURNS TABLE (job_id uuid, status text, already_existed boolean)
LANGUAGE plpgsql SECURITY DEFINER
AS $$
DECLARE
    o jsonb := coalesce(p_options, '{}'::jsonb);
    v_key text;
    v_priority smallint := 2;
    v_run_after timestamptz;
    v_delay integer;
    v_max_attempts integer;
    v_correlation text;
    v_idempotency text;
    v_payload jsonb := coalesce(p_payload, '{}'::jsonb);
    v_actor text := 'sql:' || session_user;
    -- Set on the function (ALTER FUNCTION ... SET, below), so a session's
    -- own SET cannot change them for the call.
    v_queue text := current_setting('jobline.queue_name', true);
    v_default_attempts text := current_setting('jobline.max_attempts', true);
    r record;
BEGIN
    IF p_tenant IS NULL OR length(p_tenant) NOT BETWEEN 1 AND 128 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', COLUMN = 'tenant',
            MESSAGE = 'validation_failed: tenant: must be 1 to 128 characters';
    END IF;
    IF NOT jobline_may_enqueue(p_tenant) THEN
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = pg_catalog.format('forbidden: role %s may not enqueue jobs for tenant %s', session_user, p_tenant),
            HINT = 'an operator binds it: INSERT INTO app_role_tenants (app_role, tenant_id) VALUES (...)';
    END IF;
    IF p_type IS NULL OR p_type !~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', COLUMN = 'type',
            MESSAGE = 'validation_failed: type: 1 to 64 letters, digits and _ . : - only, starting with a letter or digit';
    END IF;
    IF octet_length(v_payload::text) > 262144 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', COLUMN = 'payload',
            MESSAGE = 'validation_failed: payload: larger than 262144 bytes';
    END IF;
    IF jsonb_typeof(o) <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', COLUMN = 'options',
            MESSAGE = 'validation_failed: options: must be a JSON object';
    END IF;
    SELECT k INTO v_key FROM jsonb_object_keys(o) k
    WHERE k NOT IN ('priority', 'run_after', 'delay_seconds', 'max_attempts', 'correlation_id', 'idempotency_key')
    ORDER BY k LIMIT 1;
    IF v_key IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', COLUMN = v_key,
            MESSAGE = pg_catalog.format('validation_failed: %s: unknown option (priority, run_after, delay_seconds, max_attempts, correlation_id, idempotency_key)', v_key);
    END IF;

    IF o ? 'priority' AND o->'priority' <> 'null' THEN
        v_priority := CASE
            WHEN jsonb_typeof(o->'priority') = 'string' AND o->>'priority' IN ('P0', 'P1', 'P2', 'P3')
                THEN substr(o->>'priority', 2)::smallint
            WHEN jsonb_typeof(o->'priority') = 'number' AND o->>'priority' IN ('0', '1', '2', '3')
                THEN (o->>'priority')::smallint
        END;
        IF v_priority IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = '22023', COLUMN = 'priority',
                MESSAGE = 'validation_failed: priority: must be 0 to 3 or "P0" to "P3"';
        END IF;
    END IF;
    IF o ? 'run_after' AND o->'run_after' <> 'null' THEN
        BEGIN
            IF jsonb_typeof(o->'run_after') <> 'string'
               OR o->>'run_after' !~ '^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$' THEN
                RAISE EXCEPTION 'not rfc 3339';
            END IF;
            v_run_after := (o->>'run_after')::timestamptz;
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION USING ERRCODE = '22023', COLUMN = 'run_after',
                MESSAGE = 'validation_failed: run_after: must be an RFC 3339 timestamp string';
        END;
    END IF;
    IF o ? 'delay_seconds' AND o->'delay_seconds' <> 'null' THEN
        IF jsonb_typeof(o->'delay_seconds') <> 'number' OR o->>'delay_seconds' !~ '^\d{1,8}$'
           OR (o->>'delay_seconds')::bigint > 31536000 THEN
            RAISE EXCEPTION USING ERRCODE = '22023', COLUMN = 'delay_seconds',
                MESSAGE = 'validation_failed: delay_seconds: must be an integer from 0 to 31536000';
        END IF;
        v_delay := (o->>'delay_seconds')::integer;
        IF v_run_after IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = '22023', COLUMN = 'delay_seconds',
                MESSAGE = 'validation_failed: delay_seconds: give run_after or delay_seconds, not both';
        END IF;
    END IF;
    IF o ? 'max_attempts' AND o->'max_attempts' <> 'null' THEN
        IF jsonb_typeof(o->'max_attempts') <> 'number' OR o->>'max_attempts' !~ '^\d{1,3}$'
           OR (o->>'max_attempts')::integer NOT BETWEEN 1 AND 100 THEN
            RAISE EXCEPTION USING ERRCODE = '22023', COLUMN = 'max_attempts',
                MESSAGE = 'validation_failed: max_attempts: must be an integer from 1 to 100';
        END IF;
        v_max_attempts := (o->>'max_attempts')::integer;
    END IF;
    IF o ? 'correlation_id' AND o->'correlation_id' <> 'null' THEN
        IF jsonb_typeof(o->'correlation_id') <> 'string' OR length(o->>'correlation_id') NOT BETWEEN 1 AND 256 THEN
            RAISE EXCEPTION USING ERRCODE = '22023', COLUMN = 'correlation_id',
                MESSAGE = 'validation_failed: correlation_id: must be a string of 1 to 256 characters';
        END IF;
        v_correlation := o->>'correlation_id';
    END IF;
    IF o ? 'idempotency_key' AND o->'idempotency_key' <> 'null' THEN
        IF jsonb_typeof(o->'idempotency_key') <> 'string' OR length(o->>'idempotency_key') NOT BETWEEN 1 AND 256 THEN
            RAISE EXCEPTION USING ERRCODE = '22023', COLUMN = 'idempotency_key',
                MESSAGE = 'validation_failed: idempotency_key: must be a string of 1 to 256 characters';
        END IF;
        v_idempotency := o->>'idempotency_key';
    END IF;

    IF v_queue IS NULL OR v_queue !~ '^[A-Za-z0-9_-]{1,80}$'
       OR v_default_attempts IS NULL OR v_default_attempts !~ '^\d{1,3}$'
       OR v_default_attempts::integer NOT BETWEEN 1 AND 100 THEN
        RAISE EXCEPTION USING ERRCODE = 'F0000',
            MESSAGE = 'configuration: enqueue_job needs jobline.queue_name and jobline.max_attempts (1-100) set on the function';
    END IF;

    SELECT * INTO r
    FROM jobline_create_jobs(
        now(), p_tenant, v_queue, NULL, v_actor,
        v_default_attempts::integer,
        ARRAY[jobline_uuid_v7()], ARRAY[p_type], ARRAY[v_payload], ARRAY[v_priority],
        ARRAY[v_run_after], ARRAY[v_delay], ARRAY[v_max_attempts],
        ARRAY[v_correlation], ARRAY[v_idempotency], ARRAY[v_actor], ARRAY[NULL::text]);
    IF r.conflict THEN
        RAISE EXCEPTION USING ERRCODE = 'JL409', CONSTRAINT = 'idempotency_conflict',
            MESSAGE = pg_catalog.format('idempotency_conflict: idempotency key %s was already used with a different request (job %s)',
                             v_idempotency, (r.job).id);
    END IF;
    IF r.job IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '40001',
            MESSAGE = pg_catalog.format('unavailable: idempotency key %s was released by a concurrent request; try again', v_idempotency);
    END IF;
    IF NOT r.already_existed THEN
        -- Delivered when the caller commits, dropped when it rolls back.
        PERFORM pg_notify('jobline_outbox', '');
    END IF;
    job_id := (r.job).id;
    status := (r.job).status::text;
    already_existed := r.already_existed;
    RETURN NEXT;
END
$$;

-- What an application may read of its jobs: the status, not the machinery.
-- Rows of the tenants the login role is bound to (every row for a role
-- that may read jobs itself). security_barrier: a caller's own conditions
-- cannot see rows before the tenant filter.
CREATE VIEW app_jobs WITH (security_barrier) AS
SELECT j.id AS job_id, j.tenant_id, j.job_type, j.status::text AS status, j.attempts, j.max_attempts,
       j.stage, j.progress, j.result, j.result_uri, j.error_code, j.failure_reason,
       j.correlation_id, j.idempotency_key, j.run_after, j.created_at, j.started_at,
       j.updated_at, j.completed_at
FROM jobs j
-- 'jobs'::regclass is kept as the table's OID, never looked up again by
-- name (a caller's own or temporary `jobs` table cannot answer for it).
WHERE has_table_privilege(session_user, 'jobs'::regclass, 'SELECT')
   OR EXISTS (
       SELECT 1
       FROM app_role_tenants t
       JOIN pg_roles r ON r.oid = t.app_role
       WHERE t.tenant_id = j.tenant_id AND pg_has_role(session_user, r.oid, 'MEMBER')
   );

-- pending → processing for up to p_limit due jobs, in claim order: priority
-- (0 first), then run_after, then creation. SKIP LOCKED lets any number of
-- claimers run at once without waiting on each other or taking a job twice.
-- NO KEY UPDATE, not UPDATE: the claim changes no key, and a FOR UPDATE
-- lock conflicts with the KEY SHARE lock an insert referencing the job holds
-- (an outbox row's foreign key), so SKIP LOCKED passed over a job whose row
-- was being referenced right after its NOTIFY: a missed wake-up.
-- The claim's fencing token is the new `attempts`.
-- The first p_free_slots (the claimer's free slots; NULL: all of p_limit)
-- may be any due job; the rest (its local queue, claimed ahead) only jobs
-- that will have an attempt left after this one: a claim held ahead and
-- lost with its worker (kill -9) is released as a spent attempt, and must
-- not be a job's last, which never ran.
CREATE FUNCTION claim_jobs(
    p_worker text, p_limit integer DEFAULT 1, p_job_types text[] DEFAULT NULL,
    p_free_slots integer DEFAULT NULL, p_now timestamptz DEFAULT now()
) RETURNS SETOF jobs
LANGUAGE plpgsql
AS $$
BEGIN
    RETURN QUERY
    WITH free AS (
        SELECT id
        FROM jobs
        WHERE status = 'pending'
          AND run_after <= p_now
          AND attempts < max_attempts
          AND (p_job_types IS NULL OR job_type = ANY (p_job_types))
        ORDER BY priority, run_after, created_at, id
        LIMIT least(p_limit, coalesce(p_free_slots, p_limit))
        FOR NO KEY UPDATE SKIP LOCKED
    ),
    ahead AS (
        SELECT id
        FROM jobs
        WHERE status = 'pending'
          AND run_after <= p_now
          AND attempts + 1 < max_attempts
          AND (p_job_types IS NULL OR job_type = ANY (p_job_types))
          AND id NOT IN (SELECT id FROM free)
        ORDER BY priority, run_after, created_at, id
        LIMIT greatest(p_limit - coalesce(p_free_slots, p_limit), 0)
        FOR NO KEY UPDATE SKIP LOCKED
    ),
    picked AS (
        SELECT id FROM free UNION ALL SELECT id FROM ahead
    ),
    claimed AS (
        UPDATE jobs j
        SET status = 'processing', attempts = j.attempts + 1,
            locked_by = p_worker, locked_at = p_now, heartbeat_at = p_now, started_at = p_now, updated_at = p_now
        FROM picked
        WHERE j.id = picked.id
        RETURNING j.*
    ),
    events AS (
        INSERT INTO job_events (job_id, event, from_status, to_status, attempt, actor, at)
        SELECT c.id, 'claimed', 'pending', 'processing', c.attempts, p_worker, p_now FROM claimed c
    )
    SELECT c.* FROM claimed c ORDER BY c.priority, c.run_after, c.created_at, c.id;
END
$$;

-- pending → processing for the jobs some queue messages point at (a batch a
-- consumer received together), each only if it is due (and of one of the
-- worker's types, when it names them). A job not returned was not
-- claimable. An id given twice is claimed once.
CREATE FUNCTION claim_jobs_by_id(
    p_worker text, p_ids uuid[], p_job_types text[] DEFAULT NULL, p_now timestamptz DEFAULT now()
) RETURNS SETOF jobs
LANGUAGE plpgsql
AS $$
BEGIN
    RETURN QUERY
    WITH claimed AS (
        UPDATE jobs j
        SET status = 'processing', attempts = j.attempts + 1,
            locked_by = p_worker, locked_at = p_now, heartbeat_at = p_now, started_at = p_now, updated_at = p_now
        WHERE j.id = ANY (p_ids) AND j.status = 'pending' AND j.run_after <= p_now AND j.attempts < j.max_attempts
          AND (p_job_types IS NULL OR j.job_type = ANY (p_job_types))
        RETURNING j.*
    ),
    events AS (
        INSERT INTO job_events (job_id, event, from_status, to_status, attempt, actor, at)
        SELECT c.id, 'claimed', 'pending', 'processing', c.attempts, p_worker, p_now FROM claimed c
    )
    SELECT c.* FROM claimed c;
END
$$;

-- processing → completed for many claims in one statement, each only
-- through its own claim (its attempt and its holder): a job whose claim
-- moved on is left alone and simply not returned. One `completed` event per
-- completed job.
CREATE FUNCTION complete_jobs(
    p_now timestamptz, p_ids uuid[], p_attempts integer[], p_results jsonb[],
    p_result_uris text[], p_workers text[]
) RETURNS SETOF jobs
LANGUAGE plpgsql
AS $$
BEGIN
    RETURN QUERY
    WITH input AS (
        SELECT *
        FROM unnest(p_ids, p_attempts, p_results, p_result_uris, p_workers)
            AS i (id, attempt, result, result_uri, worker)
    ),
    done AS (
        UPDATE jobs j
        SET status = 'completed', result = i.result, result_uri = i.result_uri,
            completed_at = p_now, updated_at = p_now,
            locked_by = NULL, locked_at = NULL, heartbeat_at = NULL,
            failure_reason = NULL, error_code = NULL
        FROM input i
        WHERE j.id = i.id AND j.status = 'processing' AND j.attempts = i.attempt AND j.locked_by = i.worker
        RETURNING j AS job, i.worker AS completed_by
    ),
    events AS (
        INSERT INTO job_events (job_id, event, from_status, to_status, attempt, actor, at)
        SELECT (d.job).id, 'completed', 'processing', 'completed', (d.job).attempts, d.completed_by, p_now
        FROM done d
    )
    SELECT (d.job).* FROM done d;
END
$$;

-- One completion: complete_jobs with one claim. No row: the claim was not
-- current (released, cancelled, or finished elsewhere): nothing changed.
CREATE FUNCTION complete_job(
    p_job_id uuid, p_attempt integer, p_worker text, p_result jsonb DEFAULT NULL,
    p_result_uri text DEFAULT NULL, p_now timestamptz DEFAULT now()
) RETURNS SETOF jobs
LANGUAGE sql
AS $$
    SELECT * FROM complete_jobs(p_now, ARRAY[p_job_id], ARRAY[p_attempt], ARRAY[p_result],
                                ARRAY[p_result_uri], ARRAY[p_worker])
$$;

-- processing → pending (retry at p_retry_at) or failed (the dead letter),
-- only through the current claim. Failed when p_permanent or the attempts
-- are spent; otherwise pending again at p_retry_at, or, when that is NULL,
-- after the default backoff (JOBLINE_BACKOFF_BASE/MAX_SECONDS' defaults:
-- between half and all of min(600 s, 2 s * 2^(attempt-1))). jobline's own
-- workers pass the retry time their policy chose.
CREATE FUNCTION fail_job(
    p_job_id uuid, p_attempt integer, p_worker text, p_error_code text, p_message text,
    p_retry_at timestamptz DEFAULT NULL, p_permanent boolean DEFAULT false,
    p_now timestamptz DEFAULT now()
) RETURNS SETOF jobs
LANGUAGE plpgsql
AS $$
BEGIN
    RETURN QUERY
    WITH failed AS (
        UPDATE jobs j
        SET status = CASE WHEN p_permanent OR j.attempts >= j.max_attempts
                          THEN 'failed'::job_status ELSE 'pending'::job_status END,
            run_after = CASE WHEN p_permanent OR j.attempts >= j.max_attempts THEN j.run_after
                             ELSE coalesce(p_retry_at,
                                           p_now + make_interval(secs => least(600, 2 * 2 ^ least(greatest(j.attempts, 1) - 1, 30))
                                                                        * (0.5 + random() / 2)))
                        END,
            error_code = p_error_code, failure_reason = p_message,
            completed_at = CASE WHEN p_permanent OR j.attempts >= j.max_attempts THEN p_now END,
            updated_at = p_now, locked_by = NULL, locked_at = NULL, heartbeat_at = NULL
        WHERE j.id = p_job_id AND j.status = 'processing' AND j.attempts = p_attempt AND j.locked_by = p_worker
        RETURNING j.*
    ),
    events AS (
        INSERT INTO job_events (job_id, event, from_status, to_status, attempt, actor, detail, at)
        SELECT f.id, CASE WHEN f.status = 'failed' THEN 'failed' ELSE 'retry_scheduled' END,
               'processing', f.status, f.attempts, p_worker,
               pg_catalog.jsonb_build_object('error_code', f.error_code, 'message', f.failure_reason, 'run_after', f.run_after),
               p_now
        FROM failed f
    )
    SELECT f.* FROM failed f;
END
$$;

-- pending | processing → cancelled (p_tenant NULL: any tenant's job). A
-- worker holding the claim learns it at its next heartbeat; its late
-- complete or fail changes nothing. No row: not found, or already finished.
CREATE FUNCTION cancel_job(
    p_job_id uuid, p_tenant text DEFAULT NULL, p_actor text DEFAULT NULL, p_now timestamptz DEFAULT now()
) RETURNS SETOF jobs
LANGUAGE plpgsql
AS $$
BEGIN
    RETURN QUERY
    WITH target AS (
        SELECT j.id, j.status AS from_status
        FROM jobs j
        WHERE j.id = p_job_id AND (p_tenant IS NULL OR j.tenant_id = p_tenant)
        FOR UPDATE
    ),
    cancelled AS (
        UPDATE jobs j
        SET status = 'cancelled', completed_at = p_now, updated_at = p_now,
            locked_by = NULL, locked_at = NULL, heartbeat_at = NULL
        FROM target
        WHERE j.id = target.id AND target.from_status IN ('pending', 'processing')
        RETURNING j AS job, target.from_status
    ),
    events AS (
        INSERT INTO job_events (job_id, event, from_status, to_status, attempt, actor, at)
        SELECT (c.job).id, 'cancelled', c.from_status, 'cancelled', (c.job).attempts,
               coalesce(p_actor, 'sql:' || session_user), p_now
        FROM cancelled c
    )
    SELECT (c.job).* FROM cancelled c;
END
$$;

-- processing without a heartbeat for p_timeout_seconds → pending (attempts
-- left, with an outbox row to publish it again) or failed (spent), error
-- code HEARTBEAT_TIMEOUT, up to p_limit jobs per call. SKIP LOCKED and the
-- status re-check make parallel sweepers harmless. The candidates come from
-- `processing_jobs` (migration 0007: no index of processing jobs).
CREATE FUNCTION release_stale_jobs(
    p_timeout_seconds double precision DEFAULT 60, p_limit integer DEFAULT 500,
    p_queue text DEFAULT NULL, p_actor text DEFAULT NULL, p_now timestamptz DEFAULT now()
) RETURNS TABLE (job_id uuid, status text, stale_worker text)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_cutoff timestamptz := p_now - make_interval(secs => p_timeout_seconds);
    v_queue text := coalesce(p_queue, nullif(current_setting('jobline.queue_name', true), ''), 'generation_jobs');
    v_released integer;
BEGIN
    RETURN QUERY
    WITH stale AS (
        SELECT j.id, j.locked_by AS stale_worker, j.heartbeat_at AS last_heartbeat
        FROM jobs j
        WHERE j.id IN (SELECT p.id FROM processing_jobs p WHERE p.heartbeat_at < v_cutoff)
          AND j.status = 'processing' AND j.heartbeat_at < v_cutoff
        ORDER BY j.heartbeat_at
        LIMIT p_limit
        FOR NO KEY UPDATE OF j SKIP LOCKED -- not skipped for an outbox row being written (see claim_jobs)
    ),
    released AS (
        UPDATE jobs j
        SET status = CASE WHEN j.attempts >= j.max_attempts THEN 'failed'::job_status
                          ELSE 'pending'::job_status END,
            completed_at = CASE WHEN j.attempts >= j.max_attempts THEN p_now END,
            run_after = p_now,
            error_code = 'HEARTBEAT_TIMEOUT',
            -- No worker name here: tenants read this text (the worker is in the
            -- event's detail, shown to operators).
            failure_reason = 'no heartbeat since ' || stale.last_heartbeat,
            locked_by = NULL, locked_at = NULL, heartbeat_at = NULL, updated_at = p_now
        FROM stale
        WHERE j.id = stale.id AND j.status = 'processing'
        RETURNING j.id, j.status, j.attempts, stale.stale_worker
    ),
    events AS (
        INSERT INTO job_events (job_id, event, from_status, to_status, attempt, actor, detail, at)
        SELECT r.id, 'heartbeat_released', 'processing', r.status, r.attempts,
               coalesce(p_actor, 'sql:' || session_user),
               pg_catalog.jsonb_build_object('error_code', 'HEARTBEAT_TIMEOUT', 'worker', r.stale_worker), p_now
        FROM released r
    ),
    outbox_rows AS (
        INSERT INTO outbox (job_id, queue, message, next_attempt_at, created_at, updated_at)
        SELECT r.id, v_queue,
               pg_catalog.jsonb_build_object('jobId', r.id, 'timestamp', (extract(epoch FROM p_now) * 1000)::bigint),
               p_now, p_now, p_now
        FROM released r
        WHERE r.status = 'pending'
    )
    SELECT r.id, r.status::text, r.stale_worker FROM released r;
    GET DIAGNOSTICS v_released = ROW_COUNT;
    IF v_released > 0 THEN
        PERFORM pg_notify('jobline_outbox', '');
    END IF;
END
$$;

-- Renews a claim (fenced by its attempt), and records the handler's stage
-- and progress when given. false: the claim is gone (released, or the job
-- was cancelled or finished).
CREATE FUNCTION update_job_heartbeat(
    p_job_id uuid, p_attempt integer, p_stage text DEFAULT NULL, p_progress real DEFAULT NULL,
    p_now timestamptz DEFAULT now()
) RETURNS boolean
LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE jobs
    SET heartbeat_at = p_now, updated_at = p_now,
        stage = coalesce(p_stage, stage), progress = coalesce(p_progress, progress)
    WHERE id = p_job_id AND status = 'processing' AND attempts = p_attempt;
    RETURN FOUND;
END
$$;

-- Functions run with pg_catalog first and pg_temp last, in the schema
-- jobline was migrated into (a session's temporary table named `jobs` must
-- never stand in for the real one, least of all under SECURITY DEFINER).
-- Nobody may run them but their owner and whom the owner grants: EXECUTE
-- is revoked from PUBLIC and from every role a platform's default
-- privileges granted it to (Supabase grants new functions in `public` to
-- anon and authenticated, which PostgREST exposes to browsers); the same
-- for the new view and table.
--
-- A role that may create objects in this schema could plant a function
-- that a call here resolves to (an exact-type overload beats pg_catalog's
-- variadic ones) and have it run as the owner: the migration refuses when
-- PUBLIC may create in the schema (the default before PostgreSQL 15, and
-- after pg_upgrade from one). The variadic builders are called
-- schema-qualified all the same.
DO $$
DECLARE
    f text;
    grantee text;
BEGIN
    IF EXISTS (
        SELECT 1
        FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
        WHERE n.nspname = current_schema() AND a.grantee = 0 AND a.privilege_type = 'CREATE'
    ) THEN
        RAISE EXCEPTION 'jobline: PUBLIC may create objects in schema %, so anyone could plant a function the SQL API would run as its owner', current_schema()
            USING HINT = pg_catalog.format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC; then migrate again', current_schema());
    END IF;
    FOREACH f IN ARRAY ARRAY[
        'jobline_uuid_v7()',
        'jobline_request_hash(text, jsonb, smallint, timestamptz, integer, integer, text)',
        'jobline_create_jobs(timestamptz, text, text, timestamptz, text, integer, uuid[], text[], jsonb[], smallint[], timestamptz[], integer[], integer[], text[], text[], text[], text[])',
        'jobline_may_enqueue(text)',
        'enqueue_job(text, text, jsonb, jsonb)',
        'claim_jobs(text, integer, text[], integer, timestamptz)',
        'claim_jobs_by_id(text, uuid[], text[], timestamptz)',
        'complete_jobs(timestamptz, uuid[], integer[], jsonb[], text[], text[])',
        'complete_job(uuid, integer, text, jsonb, text, timestamptz)',
        'fail_job(uuid, integer, text, text, text, timestamptz, boolean, timestamptz)',
        'cancel_job(uuid, text, text, timestamptz)',
        'release_stale_jobs(double precision, integer, text, text, timestamptz)',
        'update_job_heartbeat(uuid, integer, text, real, timestamptz)'
    ] LOOP
        EXECUTE pg_catalog.format('ALTER FUNCTION %s SET search_path = pg_catalog, %I, pg_temp', f, current_schema());
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        FOR grantee IN
            SELECT DISTINCT a.grantee::regrole::text
            FROM pg_proc p, aclexplode(p.proacl) a
            WHERE p.oid = f::regprocedure AND a.grantee <> 0 AND a.grantee <> p.proowner
        LOOP
            EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM %s', f, grantee);
        END LOOP;
    END LOOP;
    FOR grantee IN
        SELECT DISTINCT a.grantee::regrole::text
        FROM pg_class c, aclexplode(c.relacl) a
        WHERE c.oid IN ('app_jobs'::regclass, 'app_role_tenants'::regclass)
          AND a.grantee <> 0 AND a.grantee <> c.relowner
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON app_jobs, app_role_tenants FROM %s', grantee);
    END LOOP;
    REVOKE ALL ON app_jobs, app_role_tenants FROM PUBLIC;
END
$$;

-- enqueue_job's settings, on the function so that no session changes them:
-- the queue its outbox rows name and the attempts of a job that gives none
-- (JOBLINE_MAX_ATTEMPTS's default). An operator changes them with
-- ALTER FUNCTION enqueue_job(text, text, jsonb, jsonb) SET jobline.max_attempts = '8'.
ALTER FUNCTION enqueue_job(text, text, jsonb, jsonb) SET jobline.queue_name = 'generation_jobs';
ALTER FUNCTION enqueue_job(text, text, jsonb, jsonb) SET jobline.max_attempts = '5';

-- The applications' role. Roles belong to the whole cluster: another
-- database's migration may have made it already (or be making it right
-- now). A migrator without CREATEROLE (some managed services) leaves it to
-- the operators; the README says what to run.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'jobline_app') THEN
        CREATE ROLE jobline_app NOLOGIN;
    END IF;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN
        NULL;
    WHEN insufficient_privilege THEN
        RAISE NOTICE 'jobline: could not create role jobline_app (no CREATEROLE); create it, then grant it EXECUTE on enqueue_job and SELECT on app_jobs';
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'jobline_app') THEN
        EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA %I TO jobline_app', current_schema());
        GRANT EXECUTE ON FUNCTION enqueue_job(text, text, jsonb, jsonb) TO jobline_app;
        GRANT SELECT ON app_jobs TO jobline_app;
    END IF;
END
$$;
