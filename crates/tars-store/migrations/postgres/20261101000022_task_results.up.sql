-- Every engine task's outcome (seed 002's `task_results`): which engine ran it, its kind and
-- priority, how it ended (completed, failed, timed_out, or rejected when the queue was full),
-- how long it ran, its error or result, and a routing decision's confidence.

CREATE TABLE task_results (
    id UUID PRIMARY KEY,
    engine VARCHAR(100) NOT NULL,
    -- The component (engine instance) that ran or refused it.
    component_id UUID,
    task_type VARCHAR(100) NOT NULL,
    priority INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 3),
    status VARCHAR(20) NOT NULL
        CHECK (status IN ('completed', 'failed', 'timed_out', 'rejected')),
    duration_seconds DOUBLE PRECISION,
    error TEXT,
    result JSONB,
    confidence DOUBLE PRECISION CHECK (confidence BETWEEN 0 AND 1),
    created_at TIMESTAMPTZ NOT NULL,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX idx_task_results_created ON task_results (created_at);
CREATE INDEX idx_task_results_engine ON task_results (engine, created_at);
