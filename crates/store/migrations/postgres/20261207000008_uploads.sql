-- Not a view: resumable (tus) uploads in progress (docs/architecture.md,
-- "Resumable uploads"). No event writes these rows and replay leaves
-- them alone, like gc_claims: an upload is recorded as a file, by its
-- v1.file.ingested event, only once its last byte is in. A row reserves
-- its path in its package until the upload completes, is terminated or
-- expires.
CREATE TABLE uploads (
    id              TEXT PRIMARY KEY,
    package_id      TEXT NOT NULL,
    relative_path   TEXT NOT NULL,
    path_key        TEXT NOT NULL,
    media_type      TEXT NOT NULL,
    upload_length   BIGINT NOT NULL,
    expected_sha256 TEXT,
    expected_blake3 TEXT,
    -- Upload-Metadata as the client sent it (HEAD answers it back).
    metadata        TEXT NOT NULL,
    actor           TEXT NOT NULL,
    backend_id      TEXT NOT NULL,
    -- The backend's handle on the staged bytes (a staging file, a
    -- multipart upload).
    staging         TEXT NOT NULL,
    part_bytes      BIGINT NOT NULL,
    -- Bytes received durably.
    upload_offset   BIGINT NOT NULL,
    -- Digests of the whole parts (core::resumable::PartDigests).
    digest_state    BYTEA NOT NULL,
    -- The backend's receipt for each whole part, one per line.
    part_receipts   TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    -- Who is writing to it (one request at a time, across replicas), and
    -- until when unless renewed.
    locked_by       TEXT,
    locked_until    TEXT
);
CREATE INDEX uploads_by_package ON uploads (package_id);
CREATE INDEX uploads_by_expiry ON uploads (expires_at);
