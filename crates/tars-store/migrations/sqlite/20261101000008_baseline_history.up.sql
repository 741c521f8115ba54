-- Every change to a baseline row, kept (see ../postgres/20261101000008_baseline_history.up.sql).

CREATE TABLE baseline_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    baseline_id TEXT NOT NULL,
    agent_type VARCHAR(50) NOT NULL,
    environment VARCHAR(100) NOT NULL,
    rank INTEGER NOT NULL,
    version INTEGER NOT NULL,
    mean_reward DOUBLE PRECISION NOT NULL,
    std_reward DOUBLE PRECISION NOT NULL,
    success_rate DOUBLE PRECISION NOT NULL,
    hyperparameters TEXT NOT NULL CHECK (json_valid(hyperparameters)),
    action VARCHAR(20) NOT NULL CHECK (action IN ('insert', 'promote', 'demote', 'delete')),
    eval_result_id TEXT,
    actor VARCHAR(200),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE INDEX idx_baseline_history_agent_env ON baseline_history (agent_type, environment, id);
