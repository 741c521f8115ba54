-- Every change to a baseline row, kept: one row per changed baseline row, never updated.
-- `id` is an identity so that "newest first" is insertion order even within one transaction
-- (created_at is the transaction's start time there). `baseline_id` has no foreign key: the
-- history outlives deleted baselines.

CREATE TABLE baseline_history (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    baseline_id UUID NOT NULL,
    agent_type VARCHAR(50) NOT NULL,
    environment VARCHAR(100) NOT NULL,
    rank INTEGER NOT NULL,
    version INTEGER NOT NULL,
    mean_reward DOUBLE PRECISION NOT NULL,
    std_reward DOUBLE PRECISION NOT NULL,
    success_rate DOUBLE PRECISION NOT NULL,
    hyperparameters JSONB NOT NULL,
    action VARCHAR(20) NOT NULL CHECK (action IN ('insert', 'promote', 'demote', 'delete')),
    eval_result_id UUID,
    actor VARCHAR(200),
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE INDEX idx_baseline_history_agent_env ON baseline_history (agent_type, environment, id);
