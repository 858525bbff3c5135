-- The web UI's event log, filtered by type, newest first.
CREATE INDEX events_by_type ON events (event_type, sequence);
-- Packages by exact name (GET /v1/packages?name=…, the web UI's search box).
CREATE INDEX packages_name ON packages (name, created_sequence);
