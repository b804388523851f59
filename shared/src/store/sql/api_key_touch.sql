-- Records that a key was used (at most about once a minute per key; the
-- caller decides when). Never moves the time back.
-- $1 key id · $2 when
UPDATE api_keys SET last_used_at = $2
WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)
