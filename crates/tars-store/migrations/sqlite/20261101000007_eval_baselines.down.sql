-- Rollback migration 007 (SQLite has no trigger function to drop)
DROP TRIGGER IF EXISTS eval_baselines_updated_at;
DROP TABLE IF EXISTS eval_baselines;
