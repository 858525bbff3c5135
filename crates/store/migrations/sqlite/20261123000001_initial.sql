-- The append-only event log: the truth.
CREATE TABLE events (
    sequence       INTEGER PRIMARY KEY,
    event_type     TEXT    NOT NULL,
    subject_kind   TEXT    NOT NULL,
    subject_id     TEXT    NOT NULL,
    actor          TEXT    NOT NULL,
    payload        BLOB    NOT NULL,
    payload_digest BLOB    NOT NULL,
    created_at     TEXT    NOT NULL,
    chain_hash     BLOB    NOT NULL
);
CREATE INDEX events_subject ON events (subject_id, sequence);

-- One row: the last sequence and chain hash. Appenders lock it for the
-- length of their transaction, so sequences commit in order.
CREATE TABLE log_head (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    sequence   INTEGER NOT NULL,
    chain_hash BLOB    NOT NULL
);
INSERT INTO log_head (id, sequence, chain_hash) VALUES (1, 0, zeroblob(32));

-- Views below are written only by the event handlers.
CREATE TABLE packages (
    id                  TEXT    PRIMARY KEY,
    name                TEXT    NOT NULL,
    producer            TEXT    NOT NULL,
    subject             TEXT    NOT NULL,
    retention_class     TEXT    NOT NULL,
    metadata            TEXT    NOT NULL,
    metadata_schema_id  TEXT,
    status              TEXT    NOT NULL,
    manifest_digest     TEXT,
    created_at          TEXT    NOT NULL,
    created_by          TEXT    NOT NULL,
    created_sequence    INTEGER NOT NULL UNIQUE,
    finalized_at        TEXT,
    expires_at          TEXT,
    last_event_sequence INTEGER NOT NULL
);
CREATE INDEX packages_producer ON packages (producer, created_sequence);
CREATE INDEX packages_subject ON packages (subject, created_sequence);
CREATE INDEX packages_class ON packages (retention_class, created_sequence);
CREATE INDEX packages_status ON packages (status, created_sequence);

CREATE TABLE package_metadata (
    package_id       TEXT    NOT NULL,
    key              TEXT    NOT NULL,
    value            TEXT    NOT NULL,
    created_sequence INTEGER NOT NULL,
    PRIMARY KEY (package_id, key)
);
CREATE INDEX package_metadata_kv ON package_metadata (key, value, created_sequence);

CREATE TABLE files (
    id               TEXT    PRIMARY KEY,
    package_id       TEXT    NOT NULL,
    relative_path    TEXT    NOT NULL,
    media_type       TEXT    NOT NULL,
    size_bytes       INTEGER NOT NULL,
    blake3           TEXT    NOT NULL,
    sha256           TEXT    NOT NULL,
    created_at       TEXT    NOT NULL,
    created_sequence INTEGER NOT NULL,
    UNIQUE (package_id, relative_path)
);

CREATE TABLE storage_locations (
    id              TEXT PRIMARY KEY,
    file_id         TEXT NOT NULL,
    backend_id      TEXT NOT NULL,
    object_key      TEXT NOT NULL,
    content_address TEXT NOT NULL,
    retrieval_tier  TEXT NOT NULL,
    status          TEXT NOT NULL,
    verified_at     TEXT,
    failure         TEXT,
    created_at      TEXT NOT NULL
);
CREATE INDEX storage_locations_file ON storage_locations (file_id);
CREATE INDEX storage_locations_backend ON storage_locations (backend_id, id);
CREATE INDEX storage_locations_status ON storage_locations (status);

CREATE TABLE retention_state (
    package_id            TEXT    PRIMARY KEY,
    retention_class       TEXT    NOT NULL,
    expires_at            TEXT,
    eligible_for_deletion INTEGER NOT NULL,
    eligible_at           TEXT,
    updated_sequence      INTEGER NOT NULL
);
CREATE INDEX retention_state_due ON retention_state (eligible_for_deletion, expires_at);

CREATE TABLE retention_holds (
    hold_id        TEXT PRIMARY KEY,
    package_id     TEXT NOT NULL,
    reason         TEXT NOT NULL,
    applied_at     TEXT NOT NULL,
    applied_by     TEXT NOT NULL,
    released_at    TEXT,
    released_by    TEXT,
    release_reason TEXT
);
CREATE INDEX retention_holds_package ON retention_holds (package_id);

CREATE TABLE metadata_schemas (
    id         TEXT PRIMARY KEY,
    slug       TEXT NOT NULL UNIQUE,
    schema_jcs TEXT NOT NULL,
    created_at TEXT NOT NULL
);
