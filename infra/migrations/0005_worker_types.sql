-- 0005: a worker registers the job types it serves (NULL: every type), so
-- the sweeper re-wakes only jobs some consumer could take and stats can name
-- the types nobody serves.
ALTER TABLE workers ADD COLUMN job_types text[];
