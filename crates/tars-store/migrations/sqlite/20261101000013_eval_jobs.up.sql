-- Evaluation jobs (see ../postgres/20261101000013_eval_jobs.up.sql).

CREATE TABLE eval_jobs (
    id TEXT NOT NULL PRIMARY KEY,
    status VARCHAR(16) NOT NULL
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    request TEXT NOT NULL CHECK (json_valid(request)),
    principal VARCHAR(200) NOT NULL,
    idempotency_key VARCHAR(200),
    run_id TEXT REFERENCES eval_runs (id) ON DELETE SET NULL,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    started_at TEXT,
    finished_at TEXT,
    CONSTRAINT eval_jobs_idempotency_unique UNIQUE (principal, idempotency_key)
);

CREATE INDEX idx_eval_jobs_status ON eval_jobs (status, created_at);
