-- The jobs of these ids, any tenant (a consumer saying why a message's job
-- was not claimable). $1 job ids
SELECT JOB_COLUMNS FROM jobs WHERE id = ANY ($1)
