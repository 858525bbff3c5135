-- Signed checkpoints of the log's Merkle tree (v1.log.checkpoint_signed):
-- a view, one row per checkpoint, the note exactly as served.
CREATE TABLE log_checkpoints (
    tree_size INTEGER PRIMARY KEY,
    root_hash TEXT NOT NULL,
    origin    TEXT NOT NULL,
    note      TEXT NOT NULL,
    sequence  INTEGER NOT NULL,
    signed_at TEXT NOT NULL
);

-- Not views: the Merkle tree's nodes, derived from the events alone by the
-- tree builder (docs/architecture.md, "The Merkle tree"). Replay leaves
-- them alone; dropped, they are rebuilt from the log.
-- A tile: up to 256 nodes of one tree level (level * 8), concatenated.
CREATE TABLE log_tiles (
    level      INTEGER NOT NULL,
    tile_index INTEGER NOT NULL,
    hashes     BLOB NOT NULL,
    PRIMARY KEY (level, tile_index)
);
-- How many leaves the tiles hold.
CREATE TABLE log_tree (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    size INTEGER NOT NULL
);
INSERT INTO log_tree (id, size) VALUES (1, 0);
