-- Users are created on first sight of a valid token.
CREATE TABLE users (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    created_us INTEGER NOT NULL
);

CREATE TABLE boardrooms (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL UNIQUE,
    capacity   INTEGER NOT NULL CHECK (capacity > 0),
    location   TEXT,
    created_us INTEGER NOT NULL
);

-- Instants are microseconds since the Unix epoch on both backends.
CREATE TABLE bookings (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    boardroom_id INTEGER NOT NULL REFERENCES boardrooms (id),
    user_id      TEXT NOT NULL REFERENCES users (id),
    title        TEXT NOT NULL,
    start_us     INTEGER NOT NULL,
    end_us       INTEGER NOT NULL,
    attendees    TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'cancelled')),
    created_us   INTEGER NOT NULL,
    updated_us   INTEGER NOT NULL,
    CHECK (end_us > start_us)
);
CREATE INDEX bookings_boardroom_start ON bookings (boardroom_id, start_us);

-- The database itself refuses overlapping active bookings of one boardroom, whichever
-- process writes: SQLite runs the trigger under the write lock.
CREATE TRIGGER bookings_no_overlap_insert
BEFORE INSERT ON bookings
WHEN NEW.status = 'active' AND EXISTS (
    SELECT 1 FROM bookings b
    WHERE b.boardroom_id = NEW.boardroom_id AND b.status = 'active'
      AND b.start_us < NEW.end_us AND NEW.start_us < b.end_us)
BEGIN
    SELECT RAISE(ABORT, 'booking_overlap');
END;

CREATE TRIGGER bookings_no_overlap_update
BEFORE UPDATE OF boardroom_id, start_us, end_us, status ON bookings
WHEN NEW.status = 'active' AND EXISTS (
    SELECT 1 FROM bookings b
    WHERE b.id <> NEW.id AND b.boardroom_id = NEW.boardroom_id AND b.status = 'active'
      AND b.start_us < NEW.end_us AND NEW.start_us < b.end_us)
BEGIN
    SELECT RAISE(ABORT, 'booking_overlap');
END;

-- The event log: one row per emitted change, appended in the change's transaction.
CREATE TABLE events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id   TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    booking_id INTEGER NOT NULL,
    body       TEXT NOT NULL,
    -- W3C trace context of the change, copied into the emitted payload.
    traceparent TEXT,
    created_us INTEGER NOT NULL
);

CREATE TABLE event_rooms (
    room TEXT NOT NULL,
    seq  INTEGER NOT NULL REFERENCES events (seq),
    PRIMARY KEY (room, seq)
);
CREATE INDEX event_rooms_seq ON event_rooms (seq);

CREATE TABLE idempotency_keys (
    user_id      TEXT NOT NULL,
    key          TEXT NOT NULL,
    request      TEXT NOT NULL,
    status       INTEGER NOT NULL,
    body         TEXT NOT NULL,
    created_us   INTEGER NOT NULL,
    PRIMARY KEY (user_id, key)
);
