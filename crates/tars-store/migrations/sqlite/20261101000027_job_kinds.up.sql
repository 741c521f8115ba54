-- Job kinds (see ../postgres/20261101000027_job_kinds.up.sql).

ALTER TABLE eval_jobs
    ADD COLUMN kind VARCHAR(16) NOT NULL DEFAULT 'evaluation'
        CHECK (kind IN ('evaluation', 'training', 'trial'));
ALTER TABLE eval_jobs ADD COLUMN result TEXT CHECK (result IS NULL OR json_valid(result));
