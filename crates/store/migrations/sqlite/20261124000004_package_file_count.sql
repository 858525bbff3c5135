-- Each package's number of files, kept by the file.ingested handler.
-- Checking an upload against max_files_per_package used to count the
-- package's files, twice per upload: a cost that grew with every file, so
-- filling one package with n files cost O(n^2).
ALTER TABLE packages ADD COLUMN file_count INTEGER NOT NULL DEFAULT 0;
UPDATE packages SET file_count = (SELECT COUNT(*) FROM files WHERE files.package_id = packages.id);
