DROP TABLE IF EXISTS baseline_history;
