-- An operator's instruction to a worker. $1 id · $2 desired state
UPDATE workers SET desired_state = $2 WHERE id = $1 RETURNING id
