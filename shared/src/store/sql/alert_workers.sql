-- Registered workers that went silent (not seen since $1 and not stopped)
-- and were not reported yet: marked `silent` and answered, once. A worker
-- seen again, stopped or forgotten loses its mark, so its next silence is
-- reported again. Run inside the transaction that posts the alert.
-- $1 gone cutoff · $2 now
WITH silent AS (
    SELECT id FROM workers WHERE state <> 'stopped' AND last_seen_at < $1
),
back AS (
    DELETE FROM alert_state a
    WHERE a.key LIKE 'worker:%' AND substr(a.key, 8) NOT IN (SELECT id FROM silent)
),
fresh AS (
    INSERT INTO alert_state (key, state, changed_at)
    SELECT 'worker:' || id, 'silent', $2 FROM silent
    ON CONFLICT (key) DO NOTHING
    RETURNING substr(key, 8) AS id
)
SELECT id FROM fresh ORDER BY id
