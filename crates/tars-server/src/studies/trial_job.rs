//! AutoML trials as jobs. The study's owner asks its sampler for a trial's parameters and
//! queues one `trial` job ([`TrialJob`]); whichever worker takes it (in fleet mode a
//! `tars worker`, not the API replica) trains and evaluates it ([`run`]) and writes each
//! intermediate value into the trial's row as it goes. The owner feeds those values, in
//! order, to the study's pruner ([`run_remote`]) and cancels the job when the pruner says to
//! prune, so every decision stays with the one process that holds the whole study — the same
//! decisions, in the same order, as a trial run in-process.
//!
//! A trial job is keyed by (study, number) (its `Idempotency-Key`), so asking twice queues it
//! once; a redelivered trial trains again to the same values (training is deterministic). A
//! worker writes only to a trial that is still `running`: once the owner has ended it
//! (complete, pruned, or failed by a resume), late writes change nothing, and the worker stops
//! at its next report (an orphan of a study another server took over trains no further).

use super::{Control, INTERRUPTED, OptimizeBody, lose, plan};
use crate::jobs::{Ending, Jobs, Live, SubmitError, Submitted};
use crate::service::Service;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tars_automl::Outcome;
use tars_automl::runner::TrialContext;
use tars_store::{JobKind, JobRow, JobStatus};
use uuid::Uuid;

/// How often the owner looks at a running trial's intermediate values.
const POLL: Duration = Duration::from_millis(100);

/// How long the owner waits before asking a full queue again.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(500);

/// The request of a trial job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrialJob {
    pub study_id: Uuid,
    pub number: u64,
    pub params: BTreeMap<String, Value>,
}

/// Worker side: trains and evaluates the trial's parameters with the study's objective,
/// writing each intermediate value to the trial's row; stops when the job is cancelled (the
/// owner pruned it or the study stopped) or the process shuts down.
pub async fn run(service: &Arc<Service>, row: &JobRow, live: &Arc<Live>) -> Ending {
    let job: TrialJob = match serde_json::from_value(row.request.clone()) {
        Ok(job) => job,
        Err(err) => return Ending::failed(format!("stored request is invalid: {err}")),
    };
    let store = &service.store;
    let study = match store.study(job.study_id).await {
        Ok(Some(study)) => study,
        Ok(None) => return Ending::failed(format!("study {} does not exist", job.study_id)),
        Err(err) => return Ending::Retry(format!("reading study {}: {err}", job.study_id)),
    };
    if study.status != "running" {
        return Ending::failed(format!(
            "study {} is {}; only a running study's trials run",
            study.id, study.status
        ));
    }
    let objective = match serde_json::from_value::<OptimizeBody>(study.request)
        .map_err(|e| e.to_string())
        .and_then(|request| plan(request).map_err(|e| e.message))
    {
        Ok(plan) => plan.objective,
        Err(err) => return Ending::failed(format!("study {}: {err}", job.study_id)),
    };
    let store = store.clone();
    let runtime = tokio::runtime::Handle::current();
    let worker_live = live.clone();
    let (study_id, number) = (job.study_id, job.number);
    let evaluated = tokio::task::spawn_blocking(move || {
        let mut reported = Map::new();
        let mut ended = false;
        let outcome = objective.evaluate(&job.params, &mut |step, value| {
            worker_live.note("trial", json!({"step": step, "value": value}));
            reported.insert(step.to_string(), json!(value));
            let values = Value::Object(reported.clone());
            match runtime.block_on(store.report_trial_values(study_id, number, &values)) {
                // The trial is no longer running: its study's owner ended it, or a server
                // that took the study over failed it and re-queued its parameters. Nobody
                // reads this run any more.
                Ok(false) => ended = true,
                Ok(true) => {}
                Err(err) => tracing::warn!(study = %study_id, trial = number, error = %err,
                    "cannot store a trial's intermediate value"),
            }
            ended || worker_live.stop_requested()
        });
        (outcome, ended)
    })
    .await;
    match evaluated {
        Ok((_, true)) => Ending::Done {
            status: JobStatus::Cancelled,
            run_id: None,
            result: None,
            error: Some(format!(
                "trial {number} of study {study_id} was already ended (by its study's \
                 owner, or failed by a server that took the study over); stopped"
            )),
        },
        Ok((Outcome::Complete(value), false)) => Ending::Done {
            status: JobStatus::Succeeded,
            run_id: None,
            result: Some(json!({"value": value})),
            error: None,
        },
        Ok((Outcome::Pruned, false)) => live.stopped(),
        Ok((Outcome::Failed(error), false)) => Ending::failed(error),
        Err(err) => Ending::failed(format!("the trial's thread failed: {err}")),
    }
}

/// Owner side: queues the trial as a job and follows it to its outcome, feeding its
/// intermediate values to the pruner. Runs on the study's blocking thread.
pub(super) fn run_remote(
    runtime: &tokio::runtime::Handle,
    jobs: &Jobs,
    study_id: Uuid,
    principal: &str,
    context: &TrialContext<'_>,
    control: &Control,
) -> Outcome {
    let store = &jobs.service().store;
    let number = context.number();
    let request = json!(TrialJob {
        study_id,
        number,
        params: context.params().clone(),
    });
    let key = format!("trial-{study_id}-{number}");
    let job_id = loop {
        // A stopping process runs no new job: the study is left for whoever resumes it.
        if jobs.is_stopping() {
            lose(control);
            return cut(control, 0);
        }
        let submitted =
            runtime.block_on(jobs.submit_chained(JobKind::Trial, request.clone(), principal, &key));
        match submitted {
            Ok(Submitted::New(row) | Submitted::Existing(row)) => break row.id,
            // The queue, or the principal's share of it, frees up as jobs end.
            Err(SubmitError::QueueFull | SubmitError::PrincipalBusy { .. })
                if !control.abort.load(Ordering::SeqCst) =>
            {
                std::thread::sleep(QUEUE_FULL_BACKOFF);
            }
            Err(SubmitError::QueueFull | SubmitError::PrincipalBusy { .. }) => {
                return cut(control, 0);
            }
            Err(SubmitError::Store(err)) => {
                return Outcome::Failed(format!("queueing the trial failed: {err}"));
            }
            Err(SubmitError::KeyReused { kind, .. }) => {
                return Outcome::Failed(format!("trial key {key} names a {kind} job"));
            }
            Err(SubmitError::Invalid(err)) => return Outcome::Failed(err.to_string()),
        }
    };
    let mut fed_up_to = 0u64;
    let mut pruned = false;
    let mut cut_at = None;
    loop {
        // This process is stopping (its job workers first, its studies next): the trial is
        // cut now, not failed by a job that will not run here.
        if jobs.is_stopping() && !control.shutdown.load(Ordering::SeqCst) {
            lose(control);
        }
        if cut_at.is_none() && !pruned && control.abort.load(Ordering::SeqCst) {
            cut_at = Some(fed_up_to);
            cancel(runtime, jobs, job_id);
        }
        // The job's status first, its values second: values stored before it ended are seen.
        let job = match runtime.block_on(jobs.wait(job_id, POLL)) {
            Ok(Some(job)) => job,
            Ok(None) => return Outcome::Failed(format!("the trial's job {job_id} vanished")),
            Err(err) => {
                tracing::warn!(study = %study_id, trial = number, error = %err, "cannot read a trial's job");
                std::thread::sleep(POLL);
                continue;
            }
        };
        if !pruned && cut_at.is_none() {
            let values = match runtime.block_on(store.trial(study_id, number as i32)) {
                Ok(Some(trial)) => steps(&trial.intermediate_values),
                Ok(None) => Vec::new(),
                Err(err) => {
                    tracing::warn!(study = %study_id, trial = number, error = %err, "cannot read a trial's values");
                    Vec::new()
                }
            };
            let last_fed = fed_up_to;
            for (step, value) in values.into_iter().filter(|(step, _)| *step > last_fed) {
                fed_up_to = step;
                if context.report(step, value) {
                    pruned = true;
                    if !job.status.is_final() {
                        cancel(runtime, jobs, job_id);
                    }
                    break;
                }
            }
        }
        if !job.status.is_final() {
            continue;
        }
        return match (pruned, cut_at, job.status) {
            (true, _, _) => Outcome::Pruned,
            (false, Some(step), _) => cut(control, step),
            (false, None, JobStatus::Succeeded) => {
                match job.result.as_ref().and_then(|r| r["value"].as_f64()) {
                    Some(value) => Outcome::Complete(value),
                    None => {
                        Outcome::Failed(format!("trial job {job_id} succeeded without a value"))
                    }
                }
            }
            (false, None, JobStatus::Cancelled) => {
                Outcome::Failed(format!("the trial's job {job_id} was cancelled"))
            }
            (false, None, _) => Outcome::Failed(
                job.error
                    .unwrap_or_else(|| format!("the trial's job {job_id} failed")),
            ),
        };
    }
}

/// The outcome of a trial cut by a stop (or, left for the next start, by a shutdown).
fn cut(control: &Control, step: u64) -> Outcome {
    if control.shutdown.load(Ordering::SeqCst) {
        Outcome::Failed(INTERRUPTED.to_string())
    } else {
        Outcome::Failed(format!(
            "the study was stopped at step {step}, before this trial finished"
        ))
    }
}

fn cancel(runtime: &tokio::runtime::Handle, jobs: &Jobs, job_id: Uuid) {
    if let Err(err) = runtime.block_on(jobs.cancel(job_id)) {
        tracing::warn!(job = %job_id, error = %err, "cannot cancel a trial's job");
    }
}

/// A trial row's intermediate values (step as text → value), by step.
fn steps(values: &Value) -> Vec<(u64, f64)> {
    let mut steps: Vec<(u64, f64)> = values
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(step, value)| Some((step.parse().ok()?, value.as_f64()?)))
        .collect();
    steps.sort_by_key(|(step, _)| *step);
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_come_back_in_step_order() {
        let values = json!({"1000": 2.0, "200": 1.0, "30": 0.5, "bad": 1.0, "40": "x"});
        assert_eq!(steps(&values), vec![(30, 0.5), (200, 1.0), (1000, 2.0)]);
        assert!(steps(&json!({})).is_empty());
    }
}
