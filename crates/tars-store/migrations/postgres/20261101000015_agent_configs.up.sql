-- The live configuration of each agent type, one row per version (1, 2, 3… per agent type).
-- The active configuration is the highest version. A write is a compare-and-set: it inserts
-- version = expected + 1, and the primary key refuses a second writer of the same version.
-- A rollback is a new version that restores an earlier one (`restored_version`), so the
-- history is never rewritten.

CREATE TABLE agent_configs (
    agent_type VARCHAR(50) NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 1),
    hyperparameters JSONB NOT NULL,
    checkpoint_id VARCHAR(500),
    environment VARCHAR(100),
    action VARCHAR(16) NOT NULL CHECK (action IN ('set', 'apply', 'rollback')),
    proposal_id UUID REFERENCES proposals (id) ON DELETE SET NULL,
    restored_version INTEGER,
    actor VARCHAR(200) NOT NULL,
    reason TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (agent_type, version)
);
