-- Results are idempotent by job: a job redelivered to another worker (fleet mode: the first
-- worker died, or its ack was lost) stores its run once. The column is NULL for runs that are
-- not a job's (`tars eval`, synchronous requests); a unique constraint allows many NULLs.

ALTER TABLE eval_runs ADD COLUMN job_id UUID;
ALTER TABLE eval_runs ADD CONSTRAINT eval_runs_job_id_unique UNIQUE (job_id);
