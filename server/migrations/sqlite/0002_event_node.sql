-- The server node that committed each event (several servers may share one database).
ALTER TABLE events ADD COLUMN node TEXT;
