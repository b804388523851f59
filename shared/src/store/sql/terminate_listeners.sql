-- Ends jobline's LISTEN sessions on this database (application_name
-- `jobline-listen`, never another application's): the
-- reliability drill's "consumer state destroyed" fault (the postgres
-- adapter's listeners must reconnect by themselves). Answers how many.
SELECT count(*) AS terminated
FROM (
    SELECT pg_terminate_backend(pid)
    FROM pg_stat_activity
    WHERE datname = current_database()
      AND application_name = 'jobline-listen'
      AND pid <> pg_backend_pid()
) t
