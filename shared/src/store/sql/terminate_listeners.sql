-- Ends every LISTEN session on this database but the caller's own: the
-- reliability drill's "consumer state destroyed" fault (the postgres
-- adapter's listeners must reconnect by themselves). Answers how many.
SELECT count(*) AS terminated
FROM (
    SELECT pg_terminate_backend(pid)
    FROM pg_stat_activity
    WHERE datname = current_database()
      AND query ILIKE 'LISTEN%'
      AND pid <> pg_backend_pid()
) t
