-- Moves alert $1 to state $2 when it is in another (or has none yet);
-- answers one row, with the state it had (NULL: none yet), only when it
-- moved. Run inside the transaction that posts the alert: a second sweeper
-- waits for the row, then finds it already moved and answers nothing.
-- $1 key · $2 state · $3 now
WITH previous AS (
    SELECT state FROM alert_state WHERE key = $1
),
moved AS (
    INSERT INTO alert_state (key, state, changed_at) VALUES ($1, $2, $3)
    ON CONFLICT (key) DO UPDATE SET state = EXCLUDED.state, changed_at = EXCLUDED.changed_at
    WHERE alert_state.state <> EXCLUDED.state
    RETURNING 1
)
SELECT (SELECT state FROM previous) AS previous FROM moved
