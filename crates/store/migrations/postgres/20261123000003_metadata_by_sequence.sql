-- Package listings filtered by metadata test each candidate package (in
-- creation order, from another filter's index) for its key and value:
-- keyed by the creation sequence, that test is one seek in this index,
-- with no visit to either table.
CREATE INDEX package_metadata_by_sequence ON package_metadata (created_sequence, key, value);
