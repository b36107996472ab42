CREATE EXTENSION IF NOT EXISTS btree_gist;

-- Users are created on first sight of a valid token.
CREATE TABLE users (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    created_us BIGINT NOT NULL
);

CREATE TABLE boardrooms (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    capacity   BIGINT NOT NULL CHECK (capacity > 0),
    location   TEXT,
    created_us BIGINT NOT NULL
);

-- Instants are microseconds since the Unix epoch on both backends.
CREATE TABLE bookings (
    id           BIGSERIAL PRIMARY KEY,
    boardroom_id BIGINT NOT NULL REFERENCES boardrooms (id),
    user_id      TEXT NOT NULL REFERENCES users (id),
    title        TEXT NOT NULL,
    start_us     BIGINT NOT NULL,
    end_us       BIGINT NOT NULL,
    attendees    TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'cancelled')),
    created_us   BIGINT NOT NULL,
    updated_us   BIGINT NOT NULL,
    CHECK (end_us > start_us),
    -- The database itself refuses overlapping active bookings of one boardroom.
    CONSTRAINT bookings_no_overlap EXCLUDE USING gist (
        boardroom_id WITH =,
        int8range(start_us, end_us) WITH &&
    ) WHERE (status = 'active')
);

-- The event log: one row per emitted change, appended in the change's transaction.
CREATE TABLE events (
    seq        BIGSERIAL PRIMARY KEY,
    event_id   TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    booking_id BIGINT NOT NULL,
    body       TEXT NOT NULL,
    -- W3C trace context of the change, copied into the emitted payload.
    traceparent TEXT,
    created_us BIGINT NOT NULL
);

CREATE TABLE event_rooms (
    room TEXT NOT NULL,
    seq  BIGINT NOT NULL REFERENCES events (seq),
    PRIMARY KEY (room, seq)
);
CREATE INDEX event_rooms_seq ON event_rooms (seq);

CREATE TABLE idempotency_keys (
    user_id      TEXT NOT NULL,
    key          TEXT NOT NULL,
    request      TEXT NOT NULL,
    status       BIGINT NOT NULL,
    body         TEXT NOT NULL,
    created_us   BIGINT NOT NULL,
    PRIMARY KEY (user_id, key)
);
