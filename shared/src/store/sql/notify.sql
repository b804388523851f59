-- Wake the listeners of each channel once (the `postgres` queue adapter),
-- for every publisher waiting on it.
-- $1 channels
SELECT pg_notify(channel, '') FROM (SELECT DISTINCT unnest($1::text[]) AS channel) c
