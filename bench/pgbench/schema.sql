-- The physical limit's minimal copy of jobline's schema (infra/migrations):
-- the columns one job's life touches, the jobs primary key, the partial claim
-- index, and the outbox with its foreign key. No timeline (job_events), no
-- tenant/listing indexes, no CHECK constraints: this is the floor jobline's
-- own statements are compared against. Lives in its own schema of the bench
-- database; scripts/bench recreates it.
DROP SCHEMA IF EXISTS limit_bench CASCADE;
CREATE SCHEMA limit_bench;
CREATE TYPE limit_bench.job_status AS ENUM ('pending', 'processing', 'completed', 'failed', 'cancelled');

CREATE TABLE limit_bench.jobs (
    id           uuid                   PRIMARY KEY,
    job_type     text                   NOT NULL,
    status       limit_bench.job_status NOT NULL DEFAULT 'pending',
    priority     smallint               NOT NULL DEFAULT 2,
    payload      jsonb                  NOT NULL DEFAULT '{}'::jsonb,
    result       jsonb,
    attempts     integer                NOT NULL DEFAULT 0,
    max_attempts integer                NOT NULL DEFAULT 5,
    run_after    timestamptz            NOT NULL DEFAULT now(),
    locked_by    text,
    locked_at    timestamptz,
    heartbeat_at timestamptz,
    created_at   timestamptz            NOT NULL DEFAULT now(),
    updated_at   timestamptz            NOT NULL DEFAULT now(),
    started_at   timestamptz,
    completed_at timestamptz
);
CREATE INDEX jobs_claim_order ON limit_bench.jobs (priority, run_after, created_at, id) WHERE status = 'pending';

CREATE TABLE limit_bench.outbox (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id     uuid        NOT NULL REFERENCES limit_bench.jobs (id) ON DELETE CASCADE,
    message    jsonb       NOT NULL,
    status     text        NOT NULL DEFAULT 'pending',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_job ON limit_bench.outbox (job_id);
