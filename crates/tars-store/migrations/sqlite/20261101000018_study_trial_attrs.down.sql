ALTER TABLE study_trials DROP COLUMN system_attrs;
