-- The jobs a worker holds right now. $1 worker id
SELECT JOB_COLUMNS FROM jobs WHERE status = 'processing' AND locked_by = $1
