ALTER TABLE eval_jobs DROP COLUMN result;
ALTER TABLE eval_jobs DROP COLUMN kind;
