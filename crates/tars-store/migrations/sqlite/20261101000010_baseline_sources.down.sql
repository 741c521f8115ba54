DROP TABLE IF EXISTS baseline_sources;
