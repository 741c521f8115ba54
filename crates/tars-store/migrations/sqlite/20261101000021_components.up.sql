-- The runtime's registry: one row per live component (an engine or a job worker in some
-- process), refreshed by its heartbeat. A component whose heartbeat is older than
-- `heartbeat_interval_ms` × the reader's missed-heartbeat limit counts as dead. Every replica
-- reads the same rows, so in fleet mode each one sees every worker and engine.

CREATE TABLE components (
    id TEXT NOT NULL PRIMARY KEY,
    kind VARCHAR(20) NOT NULL CHECK (kind IN ('engine', 'worker')),
    name VARCHAR(100) NOT NULL,
    -- Which process: host and pid, e.g. "node-1:4242".
    instance VARCHAR(200) NOT NULL,
    -- A JSON array of strings, e.g. ["evaluate", "train"].
    capabilities TEXT NOT NULL,
    status VARCHAR(20) NOT NULL CHECK (status IN ('healthy', 'degraded', 'unhealthy', 'stopped')),
    running_tasks INTEGER NOT NULL CHECK (running_tasks >= 0),
    max_concurrent_tasks INTEGER NOT NULL CHECK (max_concurrent_tasks >= 0),
    queue_size INTEGER NOT NULL CHECK (queue_size >= 0),
    heartbeat_interval_ms BIGINT NOT NULL CHECK (heartbeat_interval_ms > 0),
    -- What the component says about itself (health message, counters).
    details TEXT NOT NULL,
    started_at TEXT NOT NULL,
    last_heartbeat TEXT NOT NULL
);

CREATE INDEX idx_components_kind ON components (kind, name);
