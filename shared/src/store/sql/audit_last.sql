-- The sweeper's last audit (audit_record.sql): its counts and when.
SELECT state, changed_at FROM alert_state WHERE key = 'audit_counts'
