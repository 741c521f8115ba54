-- Accounts of the HTTP API (see ../postgres/20261101000011_users.up.sql). The GLOB refuses any
-- character outside [A-Za-z0-9_.-], like the PostgreSQL regex.

CREATE TABLE users (
    id TEXT NOT NULL PRIMARY KEY,
    username VARCHAR(64) NOT NULL,
    password_hash TEXT NOT NULL,
    role VARCHAR(16) NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT users_username_unique UNIQUE (username),
    CONSTRAINT users_username_valid
        CHECK (length(username) BETWEEN 1 AND 64 AND username NOT GLOB '*[^A-Za-z0-9_.-]*'),
    CONSTRAINT users_role_valid CHECK (role IN ('viewer', 'operator', 'admin'))
);
