DROP TABLE IF EXISTS proposal_events;
DROP TABLE IF EXISTS proposals;
