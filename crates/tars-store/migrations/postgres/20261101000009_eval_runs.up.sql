-- Evaluation runs and their per-environment results. A run is saved with all its results in
-- one transaction; `position` keeps the request's environment order.

CREATE TABLE eval_runs (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_type VARCHAR(50) NOT NULL,
    request JSONB NOT NULL,
    response JSONB NOT NULL,
    seed BIGINT NOT NULL,
    duration_seconds DOUBLE PRECISION NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE INDEX idx_eval_runs_created_at ON eval_runs (created_at DESC, id DESC);

CREATE TABLE eval_results (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    run_id UUID NOT NULL REFERENCES eval_runs (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    environment VARCHAR(100) NOT NULL,
    metrics JSONB NOT NULL,
    episode_returns JSONB NOT NULL,
    episode_lengths JSONB NOT NULL,
    hyperparameters JSONB NOT NULL,
    regression JSONB,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT eval_results_run_position_unique UNIQUE (run_id, position)
);
