-- Leader election: one row per singleton duty. Embedded mode has one process, which is the
-- leader of every duty; it still bumps the epoch at each start, so fenced writes behave as in
-- fleet mode (PostgreSQL advisory locks there).

CREATE TABLE leader_epochs (
    duty VARCHAR(100) NOT NULL PRIMARY KEY,
    epoch BIGINT NOT NULL CHECK (epoch > 0),
    holder VARCHAR(200) NOT NULL,
    acquired_at TEXT NOT NULL,
    renewed_at TEXT NOT NULL
);
