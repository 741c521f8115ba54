-- What the engines find and decide. `findings`: the Analysis engine's insights and the
-- Performance engine's alerts; one open row per (kind, rule, subject) while its condition
-- holds (re-seen: `last_seen_at`, message and details refreshed), resolved when it clears.
-- `auto_apply_pauses`: the agent types whose HyperSync auto-apply the Optimization engine
-- paused after repeated regressions; while `resumed_at` is NULL, a passing auto-apply proposal
-- waits for an admin instead of being applied. An admin's resume keeps the row (and when), so
-- only regressions after it count towards the next pause.

CREATE TABLE findings (
    id UUID PRIMARY KEY,
    kind VARCHAR(20) NOT NULL CHECK (kind IN ('insight', 'alert')),
    rule VARCHAR(100) NOT NULL,
    -- What it is about, e.g. "PPO/CartPole-v1" or "analysis".
    subject VARCHAR(200) NOT NULL,
    severity VARCHAR(20) NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    message TEXT NOT NULL,
    details JSONB NOT NULL,
    first_seen_at TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL,
    resolved_at TIMESTAMPTZ
);

CREATE UNIQUE INDEX findings_open_unique ON findings (kind, rule, subject) WHERE resolved_at IS NULL;
CREATE INDEX idx_findings_seen ON findings (kind, last_seen_at);

CREATE TABLE auto_apply_pauses (
    agent_type VARCHAR(50) PRIMARY KEY,
    reason TEXT NOT NULL,
    -- The proposals whose regressions caused it (a JSON array of ids).
    proposals JSONB NOT NULL,
    paused_by VARCHAR(200) NOT NULL,
    paused_at TIMESTAMPTZ NOT NULL,
    resumed_by VARCHAR(200),
    resumed_at TIMESTAMPTZ
);
