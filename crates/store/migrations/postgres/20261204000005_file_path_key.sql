-- Each file's collision key (artifactstore_core::path::collision_key: its
-- path in NFC, lowercased): two paths of a package may not share one, and
-- no file's key may be a folder of another's. Set by the file.ingested
-- handler; rows of older versions are filled in by Store::migrate.
-- COLLATE "C": the conflict check finds the files under a folder by a
-- range of keys, which must order bytewise (as SQLite always does).
ALTER TABLE files ADD COLUMN path_key TEXT COLLATE "C";
CREATE INDEX files_path_key ON files (package_id, path_key);
