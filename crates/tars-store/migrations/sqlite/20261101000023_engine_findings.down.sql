DROP TABLE IF EXISTS auto_apply_pauses;
DROP TABLE IF EXISTS findings;
