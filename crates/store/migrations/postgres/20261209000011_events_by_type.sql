-- The web UI's event log, filtered by type, newest first.
CREATE INDEX events_by_type ON events (event_type, sequence);
