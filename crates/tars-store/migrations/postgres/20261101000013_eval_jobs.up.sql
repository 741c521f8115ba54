-- Evaluation jobs: stored before they are queued, so a restart loses none. A job is claimed by
-- moving it from 'queued' to 'running' in one UPDATE (the winner sees one affected row).
-- (agent auth uses 20261101000011/12.)

CREATE TABLE eval_jobs (
    id UUID PRIMARY KEY,
    status VARCHAR(16) NOT NULL
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    request JSONB NOT NULL,
    principal VARCHAR(200) NOT NULL,
    idempotency_key VARCHAR(200),
    run_id UUID REFERENCES eval_runs (id) ON DELETE SET NULL,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    CONSTRAINT eval_jobs_idempotency_unique UNIQUE (principal, idempotency_key)
);

CREATE INDEX idx_eval_jobs_status ON eval_jobs (status, created_at);
