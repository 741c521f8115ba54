-- Which evaluation result a baseline row was promoted from
-- (see ../postgres/20261101000010_baseline_sources.up.sql).

CREATE TABLE baseline_sources (
    baseline_id TEXT NOT NULL PRIMARY KEY REFERENCES eval_baselines (id) ON DELETE CASCADE,
    eval_result_id TEXT NOT NULL REFERENCES eval_results (id) ON DELETE CASCADE
);

CREATE INDEX idx_baseline_sources_eval_result ON baseline_sources (eval_result_id);
