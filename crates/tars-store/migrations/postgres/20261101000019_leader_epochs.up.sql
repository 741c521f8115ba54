-- Leader election (fleet mode): one row per singleton duty (e.g. the job reaper). A candidate
-- that takes the duty's session-level advisory lock bumps `epoch` and becomes its holder; the
-- duty's writes check the epoch they were started under in the same transaction, so a deposed
-- leader's late write is refused (fencing). `renewed_at` moves while the holder is alive.

CREATE TABLE leader_epochs (
    duty VARCHAR(100) NOT NULL PRIMARY KEY,
    epoch BIGINT NOT NULL CHECK (epoch > 0),
    holder VARCHAR(200) NOT NULL,
    acquired_at TIMESTAMPTZ NOT NULL,
    renewed_at TIMESTAMPTZ NOT NULL
);
