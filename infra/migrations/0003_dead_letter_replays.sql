-- 0003: replay tokens. A dead-letter replay records its token first, so the
-- same token a second time changes nothing.
CREATE TABLE dead_letter_replays (
    tenant_id  text        NOT NULL,
    token      text        NOT NULL CHECK (length(token) BETWEEN 1 AND 128),
    actor      text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, token)
);
