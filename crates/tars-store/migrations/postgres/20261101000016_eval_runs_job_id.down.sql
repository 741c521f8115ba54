ALTER TABLE eval_runs DROP CONSTRAINT IF EXISTS eval_runs_job_id_unique;
ALTER TABLE eval_runs DROP COLUMN IF EXISTS job_id;
