-- 0001: the job store. Append-only: never edit a migration that has shipped;
-- add the next number instead (the runner refuses a changed checksum).
--
-- Status machine (every transition is one guarded UPDATE in shared/src/store/sql):
--
--   pending ──claim──> processing ──complete──> completed
--      ▲                   │  ├──fail, attempts left──> pending (run_after = now + backoff)
--      │                   │  └──fail, spent or permanent──> failed   (the dead letter)
--      │                   └──heartbeat timeout──> pending | failed
--   pending | processing ──cancel──> cancelled
--   failed | cancelled ──retry (operator)──> pending

CREATE TYPE job_status AS ENUM ('pending', 'processing', 'completed', 'failed', 'cancelled');
CREATE TYPE outbox_status AS ENUM ('pending', 'sent', 'failed', 'dead_letter');

CREATE TABLE jobs (
    id              uuid        PRIMARY KEY,
    tenant_id       text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 128),
    job_type        text        NOT NULL CHECK (job_type ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$'),
    correlation_id  text        CHECK (length(correlation_id) BETWEEN 1 AND 256),
    status          job_status  NOT NULL DEFAULT 'pending',
    -- 0 = P0, the highest; 3 the lowest.
    priority        smallint    NOT NULL DEFAULT 2 CHECK (priority BETWEEN 0 AND 3),
    payload         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    result          jsonb,
    result_uri      text,
    failure_reason  text,
    error_code      text,
    -- attempts only grows: it is the fencing token of the current claim.
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts    integer     NOT NULL CHECK (max_attempts >= 1),
    run_after       timestamptz NOT NULL DEFAULT now(),
    idempotency_key text        CHECK (length(idempotency_key) BETWEEN 1 AND 256),
    -- sha256 of the normalized create request, to tell a replay from a conflict.
    request_hash    text,
    locked_by       text,
    locked_at       timestamptz,
    heartbeat_at    timestamptz,
    stage           text        CHECK (length(stage) <= 128),
    progress        real        CHECK (progress BETWEEN 0 AND 100),
    initiated_by    text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    completed_at    timestamptz,

    CONSTRAINT jobs_idempotency_key_per_tenant UNIQUE (tenant_id, idempotency_key),
    -- a claim exists exactly while the job is processing
    CONSTRAINT jobs_claim_only_while_processing CHECK (
        (status = 'processing') = (locked_by IS NOT NULL AND locked_at IS NOT NULL AND heartbeat_at IS NOT NULL)
    ),
    -- completed_at is set exactly when the job is terminal
    CONSTRAINT jobs_completed_at_iff_terminal CHECK (
        (status IN ('completed', 'failed', 'cancelled')) = (completed_at IS NOT NULL)
    ),
    CONSTRAINT jobs_processing_has_started CHECK (status <> 'processing' OR started_at IS NOT NULL),
    CONSTRAINT jobs_processing_within_budget CHECK (status <> 'processing' OR (attempts BETWEEN 1 AND max_attempts)),
    CONSTRAINT jobs_failed_says_why CHECK (status <> 'failed' OR (error_code IS NOT NULL AND failure_reason IS NOT NULL)),
    CONSTRAINT jobs_result_only_when_completed CHECK (status = 'completed' OR (result IS NULL AND result_uri IS NULL))
);

-- The claim path: pending jobs in claim order. A partial index stays small
-- (only the backlog) and is walked in order, so claiming is an index scan at
-- any table size.
CREATE INDEX jobs_claim_order ON jobs (priority, run_after, created_at, id) WHERE status = 'pending';
-- Stale release: processing jobs by heartbeat age.
CREATE INDEX jobs_processing_heartbeat ON jobs (heartbeat_at) WHERE status = 'processing';
-- Listing a tenant's jobs newest first (keyset pagination on (created_at, id)).
CREATE INDEX jobs_tenant_recent ON jobs (tenant_id, created_at DESC, id DESC);
CREATE INDEX jobs_tenant_status_recent ON jobs (tenant_id, status, created_at DESC, id DESC);
CREATE INDEX jobs_tenant_correlation ON jobs (tenant_id, correlation_id) WHERE correlation_id IS NOT NULL;

CREATE TABLE outbox (
    id              bigint        GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id          uuid          NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    queue           text          NOT NULL,
    message         jsonb         NOT NULL,
    status          outbox_status NOT NULL DEFAULT 'pending',
    attempts        integer       NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz   NOT NULL DEFAULT now(),
    last_error      text,
    replay_token    text,
    created_at      timestamptz   NOT NULL DEFAULT now(),
    updated_at      timestamptz   NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    CONSTRAINT outbox_sent_at_iff_sent CHECK ((status = 'sent') = (sent_at IS NOT NULL))
);

-- The relay's work list: rows still to publish, by due time.
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status IN ('pending', 'failed');
CREATE INDEX outbox_dead_letter ON outbox (id) WHERE status = 'dead_letter';
CREATE INDEX outbox_job ON outbox (job_id);

CREATE TABLE job_events (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id      uuid        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    event       text        NOT NULL CHECK (event IN (
                    'created', 'published', 'claimed', 'heartbeat_released', 'retry_scheduled',
                    'completed', 'failed', 'cancelled', 'retried', 'replayed')),
    from_status job_status,
    to_status   job_status,
    attempt     integer,
    actor       text,
    detail      jsonb,
    at          timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX job_events_timeline ON job_events (job_id, id);

CREATE TABLE api_keys (
    id           uuid        PRIMARY KEY,
    tenant_id    text        NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 128),
    name         text,
    -- sha256 of the secret part; the key itself is never stored
    secret_hash  bytea       NOT NULL,
    scopes       text[]      NOT NULL CHECK (scopes <@ ARRAY['jobs:read', 'jobs:write', 'admin']::text[]),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

CREATE INDEX api_keys_tenant ON api_keys (tenant_id);
