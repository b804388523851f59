-- The sweeper's last audit, kept for the metrics (`jobline_audit_violations`
-- on `jobline serve`'s /metrics): the violation counts as JSON, in the row
-- `audit_counts` of alert_state (the alert's own verdict is the row `audit`).
-- $1 counts (JSON text) · $2 now
INSERT INTO alert_state (key, state, changed_at) VALUES ('audit_counts', $1, $2)
ON CONFLICT (key) DO UPDATE SET state = EXCLUDED.state, changed_at = EXCLUDED.changed_at
