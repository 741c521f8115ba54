-- Evaluation runs and their per-environment results (see ../postgres/20261101000009_eval_runs.up.sql).

CREATE TABLE eval_runs (
    id TEXT NOT NULL PRIMARY KEY,
    agent_type VARCHAR(50) NOT NULL,
    request TEXT NOT NULL CHECK (json_valid(request)),
    response TEXT NOT NULL CHECK (json_valid(response)),
    seed BIGINT NOT NULL,
    duration_seconds DOUBLE PRECISION NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE INDEX idx_eval_runs_created_at ON eval_runs (created_at DESC, id DESC);

CREATE TABLE eval_results (
    id TEXT NOT NULL PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES eval_runs (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    environment VARCHAR(100) NOT NULL,
    metrics TEXT NOT NULL CHECK (json_valid(metrics)),
    episode_returns TEXT NOT NULL CHECK (json_valid(episode_returns)),
    episode_lengths TEXT NOT NULL CHECK (json_valid(episode_lengths)),
    hyperparameters TEXT NOT NULL CHECK (json_valid(hyperparameters)),
    regression TEXT CHECK (regression IS NULL OR json_valid(regression)),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT eval_results_run_position_unique UNIQUE (run_id, position)
);
