-- API tokens (view of v1.token.created / v1.token.revoked). Only the BLAKE3
-- of each secret is kept.
CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    scope         TEXT NOT NULL,
    producers     TEXT NOT NULL,
    expires_at    TEXT,
    secret_blake3 TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    revoked_at    TEXT,
    revoked_by    TEXT
);
