-- The jobs a worker holds right now (through `processing_jobs`, migration
-- 0007). $1 worker id
SELECT JOB_COLUMNS FROM jobs
WHERE id IN (SELECT id FROM processing_jobs WHERE locked_by = $1)
  AND status = 'processing' AND locked_by = $1
