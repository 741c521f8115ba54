//! The Optimization engine: rules that act.
//!
//! - `stale_baseline_study`: a (agent type, environment) whose baselines have not changed for
//!   `baseline_stale_days` gets an AutoML study of `stale_study_trials` trials on that
//!   environment — unless a study of the agent on it is running, or started after the
//!   baseline's last change.
//! - `pause_auto_apply`: when the latest `auto_apply_pause_after` decided proposals of an
//!   agent type all regressed (rejected by their evaluation, or rolled back by the post-apply
//!   watch), HyperSync's auto-apply is paused for it (`auto_apply_pauses`): a passing
//!   auto-apply proposal then waits for an admin. Only regressions after an admin's resume
//!   count towards the next pause.

use super::{Actions, LastScan, current_baselines, subject};
use crate::{BoxFuture, Engine, Health, Priority, Schedule, Task, TaskOutput};
use chrono::Utc;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tars_store::{ProposalRow, Store, StoreError};

/// The actor HyperSync records for its own moves (evaluation verdicts, automatic rollbacks);
/// `tars-server`'s `hypersync::SYSTEM_ACTOR`.
pub const HYPERSYNC_ACTOR: &str = "hypersync";
/// The actor of this engine's actions.
pub const ACTOR: &str = "optimization";

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptimizationConfig {
    pub every: Duration,
    pub stale_after: Duration,
    /// Trials of a stale baseline's study (0: start none).
    pub stale_study_trials: u32,
    /// Consecutive regressions that pause auto-apply (0: never).
    pub pause_after: u32,
}

pub struct Optimization {
    store: Store,
    actions: Arc<dyn Actions>,
    config: OptimizationConfig,
    last: LastScan,
}

/// How a decided proposal counts for the pause rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Rejected by its evaluation, or rolled back by the post-apply watch.
    Regression,
    /// Passed its evaluation (awaiting approval, approved, applied).
    Passed,
    /// Not judged by the service (pending, evaluating, rejected by a person or because the
    /// evaluation could not run): neither continues nor breaks a streak.
    Ignored,
}

impl Optimization {
    pub fn new(
        store: Store,
        actions: Arc<dyn Actions>,
        config: OptimizationConfig,
    ) -> Arc<Optimization> {
        Arc::new(Optimization {
            store,
            actions,
            config,
            last: LastScan::default(),
        })
    }

    pub async fn scan(&self) -> Result<Value, String> {
        let result = self.try_scan().await;
        self.last.record(&result);
        result
    }

    async fn try_scan(&self) -> Result<Value, String> {
        let studies = self.stale_baseline_studies().await?;
        let paused = self.pause_auto_apply().await.map_err(|e| e.to_string())?;
        Ok(json!({"studies_started": studies, "auto_apply_paused": paused}))
    }

    /// Rule `stale_baseline_study`; returns the studies it started.
    async fn stale_baseline_studies(&self) -> Result<Vec<Value>, String> {
        if self.config.stale_study_trials == 0 {
            return Ok(Vec::new());
        }
        let baselines = self
            .store
            .baselines(None, None)
            .await
            .map_err(|e| e.to_string())?;
        let now = Utc::now();
        let mut started = Vec::new();
        let mut failures = Vec::new();
        for (baseline, changed) in current_baselines(&baselines) {
            if (now - changed).to_std().unwrap_or_default() <= self.config.stale_after {
                continue;
            }
            let studies = self
                .store
                .studies(Some(&baseline.agent_type), None, 200)
                .await
                .map_err(|e| e.to_string())?;
            let covered = studies.iter().any(|study| {
                let on_env = study.request["environments"]
                    .as_array()
                    .is_some_and(|envs| envs.iter().any(|e| e == &json!(baseline.environment)));
                on_env && (study.status == "running" || study.created_at > changed)
            });
            if covered {
                continue;
            }
            let pair = subject(&baseline.agent_type, &baseline.environment);
            match self
                .actions
                .start_study(
                    baseline.agent_type.clone(),
                    baseline.environment.clone(),
                    self.config.stale_study_trials,
                    ACTOR,
                )
                .await
            {
                Ok(id) => {
                    tracing::info!(pair = %pair, study = %id, "started a study for a stale baseline");
                    metrics::counter!("tars_optimization_actions_total", "rule" => "stale_baseline_study")
                        .increment(1);
                    started.push(json!({"pair": pair, "study_id": id,
                        "last_update": changed.to_rfc3339()}));
                }
                Err(error) => failures.push(format!("{pair}: {error}")),
            }
        }
        if !failures.is_empty() {
            return Err(format!(
                "could not start a study for {}",
                failures.join("; ")
            ));
        }
        Ok(started)
    }

    /// Rule `pause_auto_apply`; returns the agent types it paused.
    async fn pause_auto_apply(&self) -> Result<Vec<Value>, StoreError> {
        let k = self.config.pause_after as usize;
        if k == 0 {
            return Ok(Vec::new());
        }
        let proposals = self
            .store
            .proposals(None, None, tars_store::MAX_PROPOSALS_LISTED)
            .await?;
        let mut by_agent: BTreeMap<String, Vec<ProposalRow>> = BTreeMap::new();
        for row in proposals {
            by_agent
                .entry(row.agent_type.clone())
                .or_default()
                .push(row);
        }
        let mut paused = Vec::new();
        for (agent, mut rows) in by_agent {
            let since = match self.store.auto_apply_pause(&agent).await? {
                Some(pause) if pause.is_active() => continue,
                Some(pause) => pause.resumed_at,
                None => None,
            };
            rows.sort_by_key(|row| std::cmp::Reverse(row.updated_at));
            let mut streak = Vec::new();
            for row in rows
                .iter()
                .filter(|r| since.is_none_or(|t| r.updated_at > t))
            {
                match self.verdict(row).await? {
                    Verdict::Regression => streak.push(row.id),
                    Verdict::Passed => break,
                    Verdict::Ignored => continue,
                }
                if streak.len() == k {
                    break;
                }
            }
            if streak.len() < k {
                continue;
            }
            let reason = format!(
                "the last {k} evaluated proposals of {agent} regressed; auto-apply paused until \
                 an admin resumes it"
            );
            let (pause, made) = self
                .store
                .pause_auto_apply(&agent, &reason, &streak, ACTOR)
                .await?;
            if made {
                tracing::warn!(agent_type = %agent, "auto-apply paused after repeated regressions");
                metrics::counter!("tars_optimization_actions_total", "rule" => "pause_auto_apply")
                    .increment(1);
                paused.push(json!({"agent_type": pause.agent_type, "proposals": pause.proposals}));
            }
        }
        Ok(paused)
    }

    /// Whether a proposal regressed, from its status and who made its last move.
    async fn verdict(&self, row: &ProposalRow) -> Result<Verdict, StoreError> {
        let status = row.status.as_str();
        let by_service = if matches!(status, "rejected" | "rolled_back") {
            let events = self.store.proposal_events(row.id).await?;
            events
                .last()
                .is_some_and(|e| e.to_status == status && e.actor == HYPERSYNC_ACTOR)
        } else {
            false
        };
        Ok(match status {
            // Rejected by the verdict of its evaluation (a failed evaluation records none).
            "rejected" if row.evaluation_id.is_some() && by_service => Verdict::Regression,
            "rolled_back" if by_service => Verdict::Regression,
            // A person's rollback of an applied change: it had passed its evaluation.
            "awaiting_approval" | "approved" | "applied" | "rolled_back" => Verdict::Passed,
            _ => Verdict::Ignored,
        })
    }
}

impl Engine for Optimization {
    fn name(&self) -> &'static str {
        "optimization"
    }

    fn capabilities(&self) -> Vec<String> {
        vec!["optimization".into(), "automl".into()]
    }

    fn subscriptions(&self) -> Vec<Schedule> {
        super::scan_schedule(self.config.every, Priority::Normal)
    }

    fn handle_task(self: Arc<Self>, task: Task) -> BoxFuture<'static, Result<TaskOutput, String>> {
        Box::pin(async move { super::scan_task("optimization", task, self.scan()).await })
    }

    fn health(&self) -> Health {
        self.last.health()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tars_store::{NewBaseline, NewProposal, Transition};
    use uuid::Uuid;

    /// Records the studies asked for; the store gets a real study row so the next scan sees it.
    struct Recorder {
        store: Store,
        asked: Mutex<Vec<(String, String, u32)>>,
    }

    impl Actions for Recorder {
        fn start_study(
            &self,
            agent_type: String,
            environment: String,
            n_trials: u32,
            actor: &'static str,
        ) -> BoxFuture<'static, Result<Uuid, String>> {
            self.asked
                .lock()
                .unwrap()
                .push((agent_type.clone(), environment.clone(), n_trials));
            let store = self.store.clone();
            Box::pin(async move {
                let row = store
                    .insert_study(&tars_store::NewStudy {
                        id: Uuid::new_v4(),
                        agent_type,
                        request: json!({"environments": [environment]}),
                        config: json!({}),
                        n_trials: n_trials as i32,
                        created_by: actor.to_string(),
                        owner: None,
                        lease_until: None,
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(row.id)
            })
        }
    }

    fn config(stale_after: Duration) -> OptimizationConfig {
        OptimizationConfig {
            every: Duration::from_secs(60),
            stale_after,
            stale_study_trials: 5,
            pause_after: 2,
        }
    }

    #[tokio::test]
    async fn a_stale_baseline_gets_one_study() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        store
            .insert_baseline(&NewBaseline {
                agent_type: "PPO".into(),
                environment: "CartPole-v1".into(),
                mean_reward: 200.0,
                std_reward: 10.0,
                success_rate: 0.0,
                hyperparameters: json!({}),
                version: 1,
                rank: 1,
            })
            .await
            .unwrap();
        let recorder = Arc::new(Recorder {
            store: store.clone(),
            asked: Mutex::default(),
        });
        // Fresh: nothing to do.
        let fresh = Optimization::new(
            store.clone(),
            recorder.clone(),
            config(Duration::from_secs(3_600)),
        );
        assert_eq!(fresh.scan().await.unwrap()["studies_started"], json!([]));
        // Stale: one study, and the next scan sees it running.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let stale = Optimization::new(
            store.clone(),
            recorder.clone(),
            config(Duration::from_millis(10)),
        );
        let first = stale.scan().await.unwrap();
        assert_eq!(first["studies_started"][0]["pair"], "PPO/CartPole-v1");
        stale.scan().await.unwrap();
        assert_eq!(
            *recorder.asked.lock().unwrap(),
            [("PPO".to_string(), "CartPole-v1".to_string(), 5)]
        );
    }

    async fn proposal(store: &Store, moves: &[(&str, &str, &str)], evaluated: bool) -> Uuid {
        let id = Uuid::new_v4();
        let evaluation = store
            .save_run(&tars_store::NewRun {
                id: None,
                job_id: None,
                agent_type: "DQN".into(),
                request: json!({}),
                response: json!({}),
                seed: 0,
                duration_seconds: 1.0,
                results: Vec::new(),
            })
            .await
            .unwrap();
        store
            .insert_proposal(&NewProposal {
                id,
                agent_type: "DQN".into(),
                hyperparameters: json!({}),
                request: json!({}),
                reason: None,
                created_by: "alice".into(),
            })
            .await
            .unwrap();
        for (from, to, actor) in moves {
            store
                .transition_proposal(&Transition {
                    id,
                    from: from.to_string(),
                    to: to.to_string(),
                    actor: actor.to_string(),
                    reason: None,
                    evaluation_id: (evaluated && *to != "evaluating").then_some(evaluation),
                    checkpoint_id: None,
                })
                .await
                .unwrap();
        }
        id
    }

    const REGRESSED: &[(&str, &str, &str)] = &[
        ("pending", "evaluating", HYPERSYNC_ACTOR),
        ("evaluating", "rejected", HYPERSYNC_ACTOR),
    ];
    const PASSED: &[(&str, &str, &str)] = &[
        ("pending", "evaluating", HYPERSYNC_ACTOR),
        ("evaluating", "awaiting_approval", HYPERSYNC_ACTOR),
    ];

    #[tokio::test]
    async fn consecutive_regressions_pause_auto_apply_once() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let recorder = Arc::new(Recorder {
            store: store.clone(),
            asked: Mutex::default(),
        });
        let engine = Optimization::new(store.clone(), recorder, config(Duration::from_secs(3_600)));
        let paused = |v: &Value| v["auto_apply_paused"].as_array().unwrap().len();

        proposal(&store, REGRESSED, true).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        proposal(&store, PASSED, true).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        let first = proposal(&store, REGRESSED, true).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        // A failed evaluation (no evaluation recorded) and a person's rejection do not count.
        proposal(&store, REGRESSED, false).await;
        proposal(&store, &[("pending", "rejected", "bob")], true).await;
        assert_eq!(
            paused(&engine.scan().await.unwrap()),
            0,
            "one regression only"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
        let second = proposal(&store, REGRESSED, true).await;
        let scan = engine.scan().await.unwrap();
        assert_eq!(paused(&scan), 1);
        let pause = store.auto_apply_pause("DQN").await.unwrap().unwrap();
        assert!(pause.is_active());
        assert_eq!(pause.proposals, [second, first]);
        assert_eq!(pause.paused_by, ACTOR);
        assert_eq!(paused(&engine.scan().await.unwrap()), 0, "paused once");

        // After an admin resumes, the old regressions no longer count.
        store.resume_auto_apply("DQN", "admin").await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(paused(&engine.scan().await.unwrap()), 0);
        proposal(&store, REGRESSED, true).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        proposal(&store, REGRESSED, true).await;
        assert_eq!(paused(&engine.scan().await.unwrap()), 1);
    }
}
