-- HyperSync proposals: a hyperparameter change for one agent type, gated by the evaluation
-- engine and an approval. `status` moves pending → evaluating → rejected | awaiting_approval →
-- approved → applied → rolled_back; every move is a row of proposal_events, with its actor.

CREATE TABLE proposals (
    id UUID PRIMARY KEY,
    agent_type VARCHAR(50) NOT NULL,
    status VARCHAR(20) NOT NULL
        CHECK (status IN ('pending', 'evaluating', 'rejected', 'awaiting_approval',
                          'approved', 'applied', 'rolled_back')),
    hyperparameters JSONB NOT NULL,
    -- environments, evaluate_before_apply, auto_apply, num_episodes, quick_mode, seed…
    request JSONB NOT NULL,
    -- Why the proposer wants it.
    reason TEXT,
    -- Why the last transition happened (e.g. the regression detector's reason).
    status_reason TEXT,
    evaluation_id UUID REFERENCES eval_runs (id) ON DELETE SET NULL,
    checkpoint_id VARCHAR(500),
    applied_version INTEGER,
    created_by VARCHAR(200) NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX idx_proposals_agent_status ON proposals (agent_type, status, created_at);
CREATE INDEX idx_proposals_status ON proposals (status, created_at);

CREATE TABLE proposal_events (
    proposal_id UUID NOT NULL REFERENCES proposals (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    from_status VARCHAR(20),
    to_status VARCHAR(20) NOT NULL,
    actor VARCHAR(200) NOT NULL,
    reason TEXT,
    at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (proposal_id, seq)
);
