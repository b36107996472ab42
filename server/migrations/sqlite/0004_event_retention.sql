-- Retention (--event-retention): events up to `pruned_through` were removed; a replay from
-- before it is answered 410 with the oldest seq kept.
CREATE TABLE event_log_horizon (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    pruned_through BIGINT NOT NULL
);
INSERT INTO event_log_horizon (id, pruned_through) VALUES (1, 0);
CREATE INDEX events_created ON events (created_us);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_us);
