-- The event a guarded request logged, so a retry is answered with the same Event-Seq header.
ALTER TABLE idempotency_keys ADD COLUMN event_seq BIGINT;
