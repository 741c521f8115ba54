DROP TABLE IF EXISTS agent_configs;
