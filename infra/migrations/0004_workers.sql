-- 0004: workers register themselves and keep their row fresh; operators
-- steer them through `desired_state` (the worker obeys within one poll).
CREATE TABLE workers (
    id            text        PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 200),
    host          text        NOT NULL,
    version       text        NOT NULL,
    queue         text        NOT NULL,
    concurrency   integer     NOT NULL CHECK (concurrency >= 1),
    started_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    in_flight     integer     NOT NULL DEFAULT 0,
    processed     bigint      NOT NULL DEFAULT 0,
    failed        bigint      NOT NULL DEFAULT 0,
    -- what the operator asked for
    desired_state text        NOT NULL DEFAULT 'running'
                  CHECK (desired_state IN ('running', 'paused', 'draining')),
    -- what the worker last reported doing
    state         text        NOT NULL DEFAULT 'running'
                  CHECK (state IN ('running', 'paused', 'draining', 'stopped'))
);

CREATE INDEX workers_last_seen ON workers (last_seen_at DESC);
