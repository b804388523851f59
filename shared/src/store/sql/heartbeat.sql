-- Renews a claim, and records the handler's stage and progress when given.
-- Zero rows: the claim is gone (released, or the job was cancelled).
-- $1 now · $2 job id · $3 attempt (fencing token) · $4 stage · $5 progress
UPDATE jobs
SET heartbeat_at = $1, updated_at = $1,
    stage = coalesce($4, stage), progress = coalesce($5, progress)
WHERE id = $2 AND status = 'processing' AND attempts = $3
RETURNING id
