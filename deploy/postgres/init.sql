-- Run once by the postgres image on a new data volume (deploy/compose.yaml mounts this file in
-- /docker-entrypoint-initdb.d): postgres_exporter's --collector.stat_statements reads this
-- extension's view, which PostgreSQLSlowQueries (deploy/prometheus/alerts-exporters.yml) needs.
-- The server loads the library at start (shared_preload_libraries in the compose command).
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
