-- processing without a heartbeat for $2 seconds → pending (attempts left)
-- or failed (spent), error code HEARTBEAT_TIMEOUT, up to $3 jobs per call:
-- release_stale_jobs (migration 0010). SKIP LOCKED and the status re-check
-- make parallel sweepers harmless.
-- $1 now · $2 timeout seconds · $3 limit · $4 queue · $5 actor
SELECT job_id AS id, status, stale_worker FROM release_stale_jobs($2, $3::integer, $4, $5, $1)
