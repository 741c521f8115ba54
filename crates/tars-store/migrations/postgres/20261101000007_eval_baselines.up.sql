-- The seed's migration 007 (cognition/eval-engine/db/migrations/007_eval_baselines.sql, deployment
-- guide §3.1): ranked baselines per (agent_type, environment). Exactly the seed's columns,
-- constraint, indexes and trigger; later migrations add tables beside it, never columns to it.
-- The unique constraint stays NOT DEFERRABLE, as in the seed: promotions re-rank in two steps
-- through negative ranks instead (see src/promotion.rs).

CREATE TABLE eval_baselines (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_type VARCHAR(50) NOT NULL,
    environment VARCHAR(100) NOT NULL,
    mean_reward DOUBLE PRECISION NOT NULL,
    std_reward DOUBLE PRECISION NOT NULL,
    success_rate DOUBLE PRECISION NOT NULL,
    hyperparameters JSONB NOT NULL,
    version INTEGER NOT NULL,
    rank INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT eval_baselines_agent_env_rank_unique UNIQUE (agent_type, environment, rank)
);

CREATE INDEX idx_eval_baselines_agent_env ON eval_baselines (agent_type, environment);
CREATE INDEX idx_eval_baselines_rank ON eval_baselines (agent_type, environment, rank);

CREATE OR REPLACE FUNCTION update_eval_baselines_updated_at()
RETURNS TRIGGER AS $$
BEGIN
    NEW.updated_at = NOW();
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER eval_baselines_updated_at
    BEFORE UPDATE ON eval_baselines
    FOR EACH ROW
    EXECUTE FUNCTION update_eval_baselines_updated_at();
