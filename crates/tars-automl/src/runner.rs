//! Runs a study's trials on worker threads: each worker asks for a trial (under the study's
//! lock), evaluates the objective outside the lock (reporting intermediate values and
//! checking the pruner through [`TrialContext`]), then tells the outcome. With several
//! workers the TPE's constant liar sees the running trials; with one worker the study is
//! reproducible for its seed. A panicking objective fails its trial; the study goes on.

use crate::Error;
use crate::study::{Outcome, Study, Trial, TrialHandle};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// What an objective sees of its trial.
pub struct TrialContext<'a> {
    handle: TrialHandle,
    study: &'a Mutex<Study>,
}

impl TrialContext<'_> {
    pub fn number(&self) -> u64 {
        self.handle.number
    }

    pub fn params(&self) -> &std::collections::BTreeMap<String, serde_json::Value> {
        &self.handle.params
    }

    /// Reports an intermediate value and returns whether the pruner says to stop.
    pub fn report(&self, step: u64, value: f64) -> bool {
        let mut study = self.study.lock().expect("study lock");
        // Errors cannot happen: the trial is running until this worker tells it.
        study.report(self.handle.number, step, value).is_ok()
            && study.should_prune(self.handle.number).unwrap_or(false)
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Trials asked and told in this run.
    pub n_trials: usize,
    /// Why the run stopped before `n_trials` (e.g. the grid is exhausted, or stop was set).
    pub stopped: Option<String>,
}

/// Runs `n_trials` new trials of `study` with up to `n_workers` at a time. `on_told` is
/// called under the lock after each trial is told (progress bars, persistence). Setting
/// `stop` lets running trials finish and starts no new ones.
pub fn optimize<F>(
    study: &Mutex<Study>,
    n_trials: usize,
    n_workers: usize,
    stop: &AtomicBool,
    objective: F,
    on_told: &(dyn Fn(&Study, &Trial) + Sync),
) -> Summary
where
    F: Fn(&TrialContext) -> Outcome + Sync,
{
    let asked = Mutex::new(0usize);
    let stopped: Mutex<Option<String>> = Mutex::new(None);
    let worker = || {
        loop {
            let handle = {
                let mut n_asked = asked.lock().expect("counter lock");
                if *n_asked >= n_trials
                    || stop.load(Ordering::SeqCst)
                    || stopped.lock().expect("stop lock").is_some()
                {
                    return;
                }
                match study.lock().expect("study lock").ask() {
                    Ok(handle) => {
                        *n_asked += 1;
                        handle
                    }
                    Err(err) => {
                        stopped
                            .lock()
                            .expect("stop lock")
                            .get_or_insert(err.to_string());
                        return;
                    }
                }
            };
            let context = TrialContext { handle, study };
            let outcome = catch_unwind(AssertUnwindSafe(|| objective(&context)))
                .unwrap_or_else(|panic| Outcome::Failed(panic_message(&panic)));
            let mut study = study.lock().expect("study lock");
            if let Ok(trial) = study.tell(context.handle.number, outcome) {
                let trial = trial.clone();
                on_told(&study, &trial);
            }
        }
    };
    std::thread::scope(|scope| {
        for _ in 0..n_workers.max(1) {
            scope.spawn(worker);
        }
    });
    let n_asked = *asked.lock().expect("counter lock");
    let mut reason = stopped.into_inner().expect("stop lock");
    if reason.is_none() && stop.load(Ordering::SeqCst) && n_asked < n_trials {
        reason = Some("stopped".to_string());
    }
    Summary {
        n_trials: n_asked,
        stopped: reason,
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string());
    format!("the objective panicked: {text}")
}

/// Checks a requested number of trials: 1 to `max`.
pub fn check_n_trials(n_trials: i64, max: u64) -> Result<usize, Error> {
    if n_trials < 1 || n_trials as u64 > max {
        return Err(Error::InvalidSetting {
            name: "n_trials",
            value: n_trials.to_string(),
            expected: format!("an integer in [1, {max}]"),
        });
    }
    Ok(n_trials as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::TestFunction;
    use crate::study::{StudyConfig, TrialState};
    use crate::{PrunerConfig, SamplerConfig};

    fn branin_study(sampler: SamplerConfig, seed: u64) -> Mutex<Study> {
        let config = StudyConfig {
            sampler,
            ..StudyConfig::new(TestFunction::Branin.search_space(), seed)
        };
        Mutex::new(Study::new(config).unwrap())
    }

    fn branin(context: &TrialContext) -> Outcome {
        let x: Vec<f64> = context
            .params()
            .values()
            .map(|v| v.as_f64().unwrap())
            .collect();
        Outcome::Complete(TestFunction::Branin.eval(&x))
    }

    #[test]
    fn one_worker_is_reproducible_and_several_workers_run_every_trial() {
        let run = |n_workers| {
            let study = branin_study(SamplerConfig::default(), 8);
            let summary = optimize(
                &study,
                40,
                n_workers,
                &AtomicBool::new(false),
                branin,
                &|_, _| {},
            );
            assert_eq!(
                summary,
                Summary {
                    n_trials: 40,
                    stopped: None
                }
            );
            let study = study.into_inner().unwrap();
            assert_eq!(study.count(TrialState::Complete), 40);
            study
                .trials()
                .iter()
                .map(|t| t.params.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_eq!(run(3).len(), 40);
    }

    #[test]
    fn failures_and_panics_are_recorded_and_the_study_goes_on() {
        let study = branin_study(SamplerConfig::Random, 1);
        let told = Mutex::new(0);
        let summary = optimize(
            &study,
            6,
            2,
            &AtomicBool::new(false),
            |context| match context.number() {
                1 => Outcome::Failed("training diverged".into()),
                2 => panic!("boom"),
                _ => branin(context),
            },
            &|_, _| *told.lock().unwrap() += 1,
        );
        assert_eq!(summary.n_trials, 6);
        assert_eq!(*told.lock().unwrap(), 6);
        let study = study.into_inner().unwrap();
        assert_eq!(
            study.trials()[1].error.as_deref(),
            Some("training diverged")
        );
        assert_eq!(
            study.trials()[2].error.as_deref(),
            Some("the objective panicked: boom")
        );
        assert_eq!(study.count(TrialState::Complete), 4);
    }

    #[test]
    fn pruned_trials_stop_and_a_stop_request_keeps_finished_trials() {
        let study = Mutex::new(
            Study::new(StudyConfig {
                pruner: PrunerConfig::from_name("median").unwrap(),
                ..StudyConfig::new(TestFunction::Branin.search_space(), 2)
            })
            .unwrap(),
        );
        let stop = AtomicBool::new(false);
        optimize(
            &study,
            20,
            1,
            &stop,
            |context| {
                // A curve that settles at the objective value: worse trials are pruned.
                let x: Vec<f64> = context
                    .params()
                    .values()
                    .map(|v| v.as_f64().unwrap())
                    .collect();
                let value = TestFunction::Branin.eval(&x);
                for step in 1..=5 {
                    if context.report(step, value + 10.0 / step as f64) {
                        return Outcome::Pruned;
                    }
                }
                Outcome::Complete(value)
            },
            &|study, _| {
                if study.trials().len() >= 12 {
                    stop.store(true, Ordering::SeqCst);
                }
            },
        );
        let study = study.into_inner().unwrap();
        assert_eq!(study.trials().len(), 12, "no trial started after the stop");
        assert!(study.count(TrialState::Pruned) > 0);
        assert!(study.trials().iter().all(|t| t.is_finished()));
        assert_eq!(
            check_n_trials(0, 10_000).unwrap_err().to_string(),
            "n_trials = 0 is invalid: expected an integer in [1, 10000]"
        );
        assert!(check_n_trials(10_001, 10_000).is_err());
    }
}
