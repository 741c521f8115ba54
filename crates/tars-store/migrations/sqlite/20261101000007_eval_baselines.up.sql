-- SQLite twin of the seed's migration 007 (see ../postgres/20261101000007_eval_baselines.up.sql):
-- same columns, constraint, index and trigger names. UUIDs are hyphenated lower-case TEXT (the
-- default makes a random v4 one, like gen_random_uuid()), JSON is TEXT, timestamps are RFC 3339
-- TEXT in UTC with milliseconds.

CREATE TABLE eval_baselines (
    id TEXT NOT NULL PRIMARY KEY DEFAULT (lower(
        hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2)
        || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2)
        || '-' || hex(randomblob(6))
    )),
    agent_type VARCHAR(50) NOT NULL,
    environment VARCHAR(100) NOT NULL,
    mean_reward DOUBLE PRECISION NOT NULL,
    std_reward DOUBLE PRECISION NOT NULL,
    success_rate DOUBLE PRECISION NOT NULL,
    hyperparameters TEXT NOT NULL CHECK (json_valid(hyperparameters)),
    version INTEGER NOT NULL,
    rank INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT eval_baselines_agent_env_rank_unique UNIQUE (agent_type, environment, rank)
);

CREATE INDEX idx_eval_baselines_agent_env ON eval_baselines (agent_type, environment);
CREATE INDEX idx_eval_baselines_rank ON eval_baselines (agent_type, environment, rank);

-- SQLite has no BEFORE UPDATE assignment to NEW: the AFTER trigger updates the row again
-- (recursive triggers are off, so this does not fire itself).
CREATE TRIGGER eval_baselines_updated_at
    AFTER UPDATE ON eval_baselines
    FOR EACH ROW
BEGIN
    UPDATE eval_baselines
    SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE id = NEW.id;
END;
