-- A principal's queued and running jobs, counted on each submission (max_queued_per_principal).
CREATE INDEX eval_jobs_active_by_principal ON eval_jobs (principal) WHERE status IN ('queued', 'running');
