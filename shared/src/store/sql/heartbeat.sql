-- Renews a claim, and records the handler's stage and progress when given:
-- update_job_heartbeat (migration 0010). Zero rows: the claim is gone
-- (released, or the job was cancelled).
-- $1 now · $2 job id · $3 attempt (fencing token) · $4 stage · $5 progress
SELECT $2 AS id WHERE update_job_heartbeat($2, $3, $4, $5, $1)
