-- Logout: the session is gone. $1 token hash
DELETE FROM dashboard_sessions WHERE token_hash = $1 RETURNING 1
