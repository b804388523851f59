-- Dead-lettered outbox rows without their tenant (dead-lettered by a
-- release before migration 0011 while a rolling deploy ran, or by hand):
-- each sweep gives up to $1 of them their job's tenant, so that tenant's
-- dashboard, counts and replay see them. The NULL end of
-- outbox_dead_letter_tenant.
-- $1 limit
UPDATE outbox o
SET tenant_id = j.tenant_id
FROM jobs j
WHERE o.id IN (SELECT id FROM outbox WHERE status = 'dead_letter' AND tenant_id IS NULL LIMIT $1)
  AND j.id = o.job_id AND o.status = 'dead_letter' AND o.tenant_id IS NULL
RETURNING o.id
