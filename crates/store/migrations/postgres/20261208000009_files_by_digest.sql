-- Files by digest (GET /v1/files?sha256=… or ?blake3=…), in creation
-- order: one seek per page, however many packages hold the same bytes.
CREATE INDEX files_sha256 ON files (sha256, created_sequence);
CREATE INDEX files_blake3 ON files (blake3, created_sequence);
