-- A package's events of given types (its retention history, read by the
-- package's page and GET /v1/packages/{id}/retention; the web UI's event
-- log filtered by subject and type) without reading every other event of
-- the package: through `events_subject` alone, a package of 100,000
-- files read 100,000 file events to find its retention events, twice per
-- page (docs/benchmarks.md, web UI).
CREATE INDEX events_subject_type ON events (subject_id, event_type, sequence);
