-- The rest of a trial's sampler and pruner state (e.g. successive halving's rung values), as
-- Optuna's system attributes: {"name": value}. Kept so a resumed study prunes as the
-- uninterrupted one would.

ALTER TABLE study_trials ADD COLUMN system_attrs JSONB NOT NULL DEFAULT '{}';
