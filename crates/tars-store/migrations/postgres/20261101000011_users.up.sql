-- Accounts of the HTTP API (`tars user …`, POST /auth/login). `password_hash` is an argon2id PHC
-- string, never the password. The server orders the roles viewer < operator < admin.

CREATE TABLE users (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    username VARCHAR(64) NOT NULL,
    password_hash TEXT NOT NULL,
    role VARCHAR(16) NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT users_username_unique UNIQUE (username),
    CONSTRAINT users_username_valid CHECK (username ~ '^[A-Za-z0-9_.-]{1,64}$'),
    CONSTRAINT users_role_valid CHECK (role IN ('viewer', 'operator', 'admin'))
);
