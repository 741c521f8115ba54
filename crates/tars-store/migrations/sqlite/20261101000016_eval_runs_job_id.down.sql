DROP INDEX IF EXISTS eval_runs_job_id_unique;
ALTER TABLE eval_runs DROP COLUMN job_id;
