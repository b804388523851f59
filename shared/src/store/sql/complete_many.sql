-- processing → completed for many claims in one statement, each row only
-- through its own claim (`attempts` is the fencing token, with the holder: an
-- attempt handed back unstarted is claimed again under the same number): a
-- job whose claim moved on is left alone and simply not returned. One
-- `completed` event per completed job: complete_jobs (migration 0010; the
-- SQL API's complete_job is it with one claim).
-- $1 now · $2 job ids · $3 attempts · $4 results · $5 result uris · $6 workers
SELECT JOB_COLUMNS FROM complete_jobs($1, $2, $3, $4, $5, $6)
