-- Results are idempotent by job (see ../postgres/20261101000016_eval_runs_job_id.up.sql).
-- SQLite cannot add a UNIQUE column; a unique index gives the same guarantee (NULLs distinct).

ALTER TABLE eval_runs ADD COLUMN job_id TEXT;
CREATE UNIQUE INDEX eval_runs_job_id_unique ON eval_runs (job_id);
