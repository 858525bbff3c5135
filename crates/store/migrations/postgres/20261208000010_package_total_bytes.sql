-- Each package's total file bytes beside its file count (both kept by the
-- file.ingested handler), so a list of packages shows them without
-- reading the files.
ALTER TABLE packages ADD COLUMN total_bytes BIGINT NOT NULL DEFAULT 0;
UPDATE packages SET total_bytes = COALESCE((SELECT SUM(size_bytes) FROM files WHERE files.package_id = packages.id), 0);
