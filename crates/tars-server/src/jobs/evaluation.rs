//! Evaluation jobs: the run path of an `evaluation` job ([`Jobs::evaluate`]: trains and
//! evaluates, stores the run, keeps a proposal's checkpoint) and the caller that waits for one
//! on the queue ([`Jobs::evaluate_queued`]: HyperSync's gate and post-apply watch, Nash's
//! missing score pairs).

use super::{Ending, Jobs, Live, SubmitError, Submitted};
use std::sync::Arc;
use std::time::Duration;
use tars_eval::EvalRequest;
use tars_store::{JobKind, JobRow, JobStatus};

/// The field of an evaluation job's stored request (never of a client's) naming the checkpoint
/// to keep ([`Jobs::evaluate_queued`]).
const SAVE_CHECKPOINT: &str = "tars_save_checkpoint";

impl Jobs {
    /// Runs an evaluation job: trains and evaluates on a blocking thread, stores the run, and
    /// (a proposal's evaluation) keeps the policy trained on the first environment as the
    /// checkpoint the job names.
    pub(super) async fn evaluate(&self, row: JobRow, live: Arc<Live>) -> Ending {
        let mut stored = row.request;
        let save_as = stored
            .as_object_mut()
            .and_then(|fields| fields.remove(SAVE_CHECKPOINT))
            .and_then(|name| name.as_str().map(String::from));
        let request = match serde_json::from_value::<EvalRequest>(stored) {
            Ok(request) => request,
            Err(err) => return Ending::failed(format!("stored request is invalid: {err}")),
        };
        match self
            .service
            .evaluate_job(&request, live.clone(), Some(row.id))
            .await
        {
            Ok(outcome) => {
                record_metrics(&outcome.response);
                metrics::gauge!("tars_eval_policy_cache_entries")
                    .set(self.service.engine.cached_policies() as f64);
                match outcome.unsaved {
                    None => {
                        if let Some(name) = save_as
                            && let Err(err) =
                                self.service.save_trained_checkpoint(&request, &name).await
                        {
                            return Ending::Retry(format!(
                                "the evaluation is stored but its checkpoint {name} is not: {err:#}"
                            ));
                        }
                        Ending::Done {
                            status: JobStatus::Succeeded,
                            run_id: outcome.response.evaluation_id.parse().ok(),
                            result: None,
                            error: None,
                        }
                    }
                    Some((path, err)) => Ending::Retry(format!(
                        "the evaluation finished but could not be stored ({err}); its result is in {}",
                        path.display()
                    )),
                }
            }
            Err(err)
                if err
                    .downcast_ref::<tars_eval::EvalError>()
                    .is_some_and(|e| matches!(e, tars_eval::EvalError::Cancelled)) =>
            {
                live.stopped()
            }
            Err(err) => Ending::failed(format!("{err:#}")),
        }
    }

    /// Evaluates `request` as a job on the queue — in fleet mode on a worker, not in this
    /// process — and waits for its stored run. `save_checkpoint` names the checkpoint the
    /// worker keeps of the policy trained on the first environment. The `key` makes a repeated
    /// call (a resumed proposal) find the same job.
    pub async fn evaluate_queued(
        &self,
        request: &EvalRequest,
        save_checkpoint: Option<&str>,
        principal: &str,
        key: String,
    ) -> anyhow::Result<crate::service::Outcome> {
        request.validate(self.service.engine.config(), 0)?;
        let mut body = serde_json::to_value(request).expect("requests serialize");
        if let (Some(name), Some(fields)) = (save_checkpoint, body.as_object_mut()) {
            fields.insert(SAVE_CHECKPOINT.into(), name.into());
        }
        let row = match self
            .submit_chained(JobKind::Evaluation, body, principal, &key)
            .await
        {
            Ok(Submitted::New(row) | Submitted::Existing(row)) => row,
            Err(SubmitError::QueueFull) => anyhow::bail!("the job queue is full; retry later"),
            Err(SubmitError::PrincipalBusy { limit }) => anyhow::bail!(
                "{principal} already has {limit} jobs queued or running (max_queued_per_principal); retry when one ends"
            ),
            Err(SubmitError::Store(err)) => return Err(err.into()),
            Err(SubmitError::Invalid(err)) => return Err(err.into()),
            Err(SubmitError::KeyReused { key, kind }) => {
                anyhow::bail!("job key {key} names a {kind} job")
            }
        };
        let row = loop {
            match self.wait(row.id, Duration::from_secs(3600)).await? {
                Some(row) if row.status.is_final() => break row,
                Some(_) if self.is_stopping() => {
                    anyhow::bail!("the server is stopping; job {} stays queued", row.id)
                }
                Some(_) => continue,
                None => anyhow::bail!("job {} vanished", row.id),
            }
        };
        match (row.status, row.run_id) {
            (JobStatus::Succeeded, Some(run_id)) => {
                let store = &self.service.store;
                let run = (self.service.postgres())
                    .store(|| store.run(run_id))
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("the run {run_id} of job {} is gone", row.id))?;
                Ok(crate::service::Outcome {
                    response: serde_json::from_value(run.response)?,
                    unsaved: None,
                })
            }
            (status, _) => anyhow::bail!(
                "job {} {status}: {}",
                row.id,
                row.error.as_deref().unwrap_or("no error recorded")
            ),
        }
    }
}

/// The evaluation metrics of a finished job: evaluations, regressions by severity, durations
/// and episodes, per agent type and environment.
fn record_metrics(response: &tars_eval::EvalResponse) {
    for result in &response.results {
        let labels = [
            ("agent_type", response.agent_type.clone()),
            ("environment", result.environment.clone()),
        ];
        let status = match &result.regression {
            Some(r) if r.detected => "regression",
            _ => "ok",
        };
        let mut with_status = labels.to_vec();
        with_status.push(("status", status.to_string()));
        metrics::counter!("tars_eval_evaluations_total", &with_status).increment(1);
        if let Some(r) = result.regression.as_ref().filter(|r| r.detected) {
            let mut with_severity = labels.to_vec();
            with_severity.push(("severity", r.severity.as_str().to_string()));
            metrics::counter!("tars_eval_regression_detected_total", &with_severity).increment(1);
        }
        metrics::histogram!("tars_eval_duration_seconds", &labels).record(result.duration_seconds);
        // A checkpoint's policy is not looked up in the cache.
        let lookup = match result.training.source.as_str() {
            "cache" => Some("hit"),
            "trained" => Some("miss"),
            _ => None,
        };
        if let Some(lookup) = lookup {
            metrics::counter!("tars_eval_policy_cache_lookups_total", "result" => lookup)
                .increment(1);
        }
        metrics::counter!("tars_eval_episodes_total", &labels)
            .increment(result.metrics.metrics.n_episodes as u64);
    }
}
