-- AutoML studies (`POST /v1/optimize`) and their trials. `status` moves running → completed |
-- stopped | failed; a study left running by a restart is resumed from its trials. A trial row
-- is written when the trial starts (state running) and again when it ends.

CREATE TABLE studies (
    id UUID PRIMARY KEY,
    agent_type VARCHAR(50) NOT NULL,
    status VARCHAR(20) NOT NULL
        CHECK (status IN ('running', 'stopped', 'completed', 'failed')),
    -- The API body with its defaults filled in.
    request JSONB NOT NULL,
    -- The serialised tars_automl::StudyConfig (direction, search space, sampler, pruner, seed).
    config JSONB NOT NULL,
    n_trials INTEGER NOT NULL CHECK (n_trials > 0),
    -- Why a study failed, or how it ended (stopped, timed out, grid exhausted).
    error TEXT,
    created_by VARCHAR(200) NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    stop_requested BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE INDEX idx_studies_created ON studies (created_at);
CREATE INDEX idx_studies_status ON studies (status, created_at);

CREATE TABLE study_trials (
    study_id UUID NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    number INTEGER NOT NULL CHECK (number >= 0),
    state VARCHAR(20) NOT NULL CHECK (state IN ('running', 'complete', 'pruned', 'failed')),
    params JSONB NOT NULL,
    value DOUBLE PRECISION,
    -- {"step": value, ...}
    intermediate_values JSONB NOT NULL,
    error TEXT,
    duration_seconds DOUBLE PRECISION,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    PRIMARY KEY (study_id, number)
);
