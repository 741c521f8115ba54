-- Job kinds: besides evaluations, trainings (a checkpoint) and AutoML trials (one trial of a
-- study) go through the same queue. `result` holds what a training or trial produced (an
-- evaluation's result is its run, `run_id`).

ALTER TABLE eval_jobs
    ADD COLUMN kind VARCHAR(16) NOT NULL DEFAULT 'evaluation'
        CHECK (kind IN ('evaluation', 'training', 'trial'));
ALTER TABLE eval_jobs ADD COLUMN result JSONB;
