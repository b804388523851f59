-- 0006: the job types some consumer serves, in one place for the sweeper's
-- re-wake (rewake_due.sql) and the stats (stats.sql). NULL means every type:
-- a live worker serves every type (its job_types is NULL), or nothing is
-- known at all (no live worker and no configured consumer types). Live:
-- seen since `live_since` and not stopped. `consumer_types`: the types of
-- consumers that do not register (JOBLINE_CONSUMER_JOB_TYPES), or NULL.
-- PL/pgSQL, not SQL: a SQL function is inlined into the caller's plan and
-- was then evaluated per candidate row (9x slower over a 100,000-job
-- backlog); this one runs once per statement.
CREATE FUNCTION jobline_served_types(live_since timestamptz, consumer_types text[])
RETURNS text[] LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (
        WITH live AS (
            SELECT job_types FROM workers WHERE last_seen_at >= live_since AND state <> 'stopped'
        )
        SELECT CASE
                   WHEN EXISTS (SELECT 1 FROM live WHERE job_types IS NULL)
                        OR (consumer_types IS NULL AND NOT EXISTS (SELECT 1 FROM live)) THEN NULL
                   ELSE ARRAY(SELECT unnest(job_types) FROM live
                              UNION SELECT unnest(coalesce(consumer_types, '{}')))
               END
    );
END
$$;
