-- Rollback migration 007
DROP TRIGGER IF EXISTS eval_baselines_updated_at ON eval_baselines;
DROP FUNCTION IF EXISTS update_eval_baselines_updated_at();
DROP TABLE IF EXISTS eval_baselines;
