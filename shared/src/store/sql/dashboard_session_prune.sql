-- The sweeper's share of keeping the dashboard's sessions bounded: up to $2
-- expired sessions deleted, oldest first (the expiry index).
-- $1 now · $2 limit
DELETE FROM dashboard_sessions
WHERE token_hash IN (
    SELECT token_hash FROM dashboard_sessions
    WHERE expires_at <= $1
    ORDER BY expires_at
    LIMIT $2
)
RETURNING 1
