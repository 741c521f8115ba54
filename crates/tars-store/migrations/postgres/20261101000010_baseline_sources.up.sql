-- Which evaluation result a baseline row was promoted from, so that its raw episode returns
-- can be compared with a candidate's. A side table because eval_baselines keeps exactly the
-- seed's columns.

CREATE TABLE baseline_sources (
    baseline_id UUID PRIMARY KEY REFERENCES eval_baselines (id) ON DELETE CASCADE,
    eval_result_id UUID NOT NULL REFERENCES eval_results (id) ON DELETE CASCADE
);

CREATE INDEX idx_baseline_sources_eval_result ON baseline_sources (eval_result_id);
