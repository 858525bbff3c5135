-- Purges (v1.package.purged): a purged package keeps its row, metadata,
-- manifest and events; these columns say when, by whom, by which rule.
ALTER TABLE packages ADD COLUMN purged_at TEXT;
ALTER TABLE retention_state ADD COLUMN purged_at TEXT;
ALTER TABLE retention_state ADD COLUMN purged_by TEXT;
ALTER TABLE retention_state ADD COLUMN purge_rule TEXT;
ALTER TABLE retention_state ADD COLUMN purge_reason TEXT;

-- Objects the collector deleted (v1.storage.object_deleted), one row per
-- deletion: an upload checks it to tell whether the bytes it stored may
-- have been deleted after it stored them (docs/architecture.md, Lifecycle).
CREATE TABLE object_deletions (
    sequence   BIGINT PRIMARY KEY,
    backend_id TEXT NOT NULL,
    object_key TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    reason     TEXT NOT NULL,
    deleted_at TEXT NOT NULL
);
CREATE INDEX object_deletions_key ON object_deletions (backend_id, object_key, sequence);
-- The collector asks which keys a backend's live files refer to.
CREATE INDEX storage_locations_key ON storage_locations (backend_id, object_key);

-- Not views: coordination, like log_head. No event writes them and replay
-- leaves them alone.
-- An object the collector is deleting: from the claim (under the log
-- lock, after checking nothing live refers to it) until its deletion
-- event commits. An upload of those bytes is refused meanwhile.
CREATE TABLE gc_claims (
    backend_id TEXT NOT NULL,
    object_key TEXT NOT NULL,
    claimed_by TEXT NOT NULL,
    claimed_at TEXT NOT NULL,
    PRIMARY KEY (backend_id, object_key)
);
-- Which process runs the lifecycle, until when (one at a time across
-- replicas; renewed while it runs).
CREATE TABLE lifecycle_lease (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    holder     TEXT,
    expires_at TEXT
);
INSERT INTO lifecycle_lease (id, holder, expires_at) VALUES (1, NULL, NULL);
