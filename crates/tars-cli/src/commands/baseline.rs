//! `tars baseline list|show|history|insert|promote|bootstrap`: the ranked baselines that
//! evaluations are compared with.

use serde_json::{Value, json};
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use tars_eval::EvalRequest;
use tars_eval::engine::Quiet;
use tars_server::config::{Config, ConfigArgs};
use tars_server::routes::{BaselineView, history_json};
use tars_server::service::Service;
use tars_store::{BaselineRow, NewBaseline};
use uuid::Uuid;

/// Arguments of `tars baseline`.
#[derive(Debug, clap::Args)]
pub struct BaselineArgs {
    #[command(subcommand)]
    command: BaselineCommand,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Debug, clap::Subcommand)]
enum BaselineCommand {
    /// List baselines, best rank first.
    List {
        #[arg(long)]
        agent: Option<String>,
        #[arg(long)]
        env: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one baseline (default rank 1) with its episode count.
    Show {
        #[arg(long)]
        agent: String,
        #[arg(long)]
        env: String,
        #[arg(long, default_value_t = 1)]
        rank: i32,
        #[arg(long)]
        json: bool,
    },
    /// Every change to the baselines of (agent, env), newest first.
    History {
        #[arg(long)]
        agent: String,
        #[arg(long)]
        env: String,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Insert a baseline from summary statistics, like the seed's SQL rows (the rank must be free).
    Insert {
        #[arg(long)]
        agent: String,
        #[arg(long)]
        env: String,
        #[arg(long)]
        mean: f64,
        #[arg(long)]
        std: f64,
        /// Success rate in [0, 1].
        #[arg(long)]
        success: f64,
        /// Hyperparameters as a JSON object.
        #[arg(long, default_value = "{}")]
        hyperparameters: String,
        /// The baseline's version (the seed's `version` column).
        #[arg(long, default_value_t = 1)]
        baseline_version: i32,
        #[arg(long, default_value_t = 1)]
        rank: i32,
    },
    /// Promote a stored evaluation result to a rank: its id (printed by `tars eval` and `tars
    /// runs list`) or the first characters of it.
    Promote {
        result_id: String,
        /// Rank to take (default: the rank its mean reward earns).
        #[arg(long)]
        rank: Option<i32>,
        /// Fail with a conflict unless the baselines are still at this version (0 = none yet).
        #[arg(long)]
        expected_version: Option<i32>,
        #[arg(long)]
        actor: Option<String>,
    },
    /// Measure a baseline: train with the tuned defaults, evaluate, promote to rank 1.
    Bootstrap {
        #[arg(long)]
        agent: String,
        #[arg(long)]
        env: String,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        episodes: Option<i64>,
        /// Training budget (default: the RL Zoo's).
        #[arg(long)]
        timesteps: Option<u64>,
    },
}

pub fn run(args: BaselineArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config)?;
    crate::runtime()?.block_on(async {
        let service = Service::open(config).await?;
        // Fleet mode: the replicas drop their cached listings at once.
        let publisher = tars_server::events_nats::publisher_of(&service).await?;
        let result = command(&service, args.command).await;
        if let Some(publisher) = publisher {
            publisher.close(std::time::Duration::from_secs(5)).await;
        }
        service.store.close().await;
        result
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn command(service: &Service, command: BaselineCommand) -> anyhow::Result<()> {
    let store = &service.store;
    let mut out = std::io::stdout().lock();
    match command {
        BaselineCommand::List { agent, env, json } => {
            let rows = store.baselines(agent.as_deref(), env.as_deref()).await?;
            if json {
                let rows: Vec<Value> = rows.iter().map(row_json).collect();
                writeln!(out, "{}", Value::from(rows))?;
            } else if rows.is_empty() {
                writeln!(
                    out,
                    "no baselines yet; create one with `tars baseline bootstrap --agent dqn --env CartPole-v1`"
                )?;
            } else {
                writeln!(
                    out,
                    "{:<6} {:<26} {:>4} {:>4} {:>10} {:>9} {:>8}  updated",
                    "agent", "environment", "rank", "ver", "mean", "std", "success"
                )?;
                for r in &rows {
                    writeln!(
                        out,
                        "{:<6} {:<26} {:>4} {:>4} {:>10.2} {:>9.2} {:>7.0}%  {}",
                        r.agent_type,
                        r.environment,
                        r.rank,
                        r.version,
                        r.mean_reward,
                        r.std_reward,
                        r.success_rate * 100.0,
                        r.updated_at.format("%Y-%m-%d %H:%M:%S")
                    )?;
                }
            }
        }
        BaselineCommand::Show {
            agent,
            env,
            rank,
            json,
        } => {
            let env = tars_envs::spec(&env)?.id;
            let row = store.baseline(&agent, env, rank).await?.ok_or_else(|| {
                anyhow::anyhow!(
                    "no rank-{rank} baseline for {} on {env}; `tars baseline list` shows what exists",
                    agent.to_uppercase()
                )
            })?;
            let returns = store.baseline_returns(row.id).await?;
            let mut value = row_json(&row);
            value["n_returns"] = json!(returns.as_ref().map_or(0, Vec::len));
            if json {
                value["episode_returns"] = json!(returns);
                writeln!(out, "{value}")?;
            } else {
                writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
            }
        }
        BaselineCommand::History {
            agent,
            env,
            limit,
            json,
        } => {
            let env = tars_envs::spec(&env)?.id;
            let rows = store.history(&agent, env, limit).await?;
            if json {
                let rows: Vec<Value> = rows.iter().map(history_json).collect();
                writeln!(out, "{}", Value::from(rows))?;
            } else {
                for h in &rows {
                    writeln!(
                        out,
                        "{}  v{:<3} rank {:<2} {:<8} {:>10.2} ± {:<8.2} {}{}",
                        h.created_at.format("%Y-%m-%d %H:%M:%S"),
                        h.version,
                        h.rank,
                        h.action.as_str(),
                        h.mean_reward,
                        h.std_reward,
                        h.actor
                            .as_deref()
                            .map_or(String::new(), |a| format!("by {a} ")),
                        h.eval_result_id
                            .map_or(String::new(), |id| format!("from result {id}")),
                    )?;
                }
            }
        }
        BaselineCommand::Insert {
            agent,
            env,
            mean,
            std,
            success,
            hyperparameters,
            baseline_version,
            rank,
        } => {
            let hyperparameters: Value = serde_json::from_str(&hyperparameters).map_err(|e| {
                anyhow::anyhow!(
                    "--hyperparameters must be a JSON object, e.g. '{{\"gamma\": 0.99}}': {e}"
                )
            })?;
            agent.parse::<tars_agents::Algo>()?;
            let row = service
                .insert_baseline(&NewBaseline {
                    agent_type: agent,
                    environment: tars_envs::spec(&env)?.id.to_string(),
                    mean_reward: mean,
                    std_reward: std,
                    success_rate: success,
                    hyperparameters,
                    version: baseline_version,
                    rank,
                })
                .await?;
            writeln!(out, "{}", row_json(&row))?;
        }
        BaselineCommand::Promote {
            result_id,
            rank,
            expected_version,
            actor,
        } => {
            let id =
                super::history::resolve_id(store, tars_store::IdOf::Result, "result", &result_id)
                    .await?;
            let expected = expected_version.map(|v| (v > 0).then_some(v));
            let row = service.promote(id, rank, expected, actor).await?;
            writeln!(out, "{}", row_json(&row))?;
        }
        BaselineCommand::Bootstrap {
            agent,
            env,
            seed,
            episodes,
            timesteps,
        } => {
            let mut hyperparameters = serde_json::Map::new();
            if let Some(timesteps) = timesteps {
                hyperparameters.insert("n_timesteps".into(), json!(timesteps));
            }
            let request = EvalRequest {
                agent_type: agent,
                agent_state: Value::Null,
                hyperparameters,
                environments: vec![env],
                num_episodes: episodes,
                quick_mode: false,
                compare_to_baseline: false,
                seed: Some(seed),
                include_episodes: false,
            };
            eprintln!("training and evaluating (this takes the RL Zoo budget)…");
            let outcome = service.evaluate(&request, Arc::new(Quiet)).await?;
            if let Some((path, err)) = outcome.unsaved {
                anyhow::bail!(
                    "the evaluation could not be stored ({err}), so it cannot be promoted; its result is in {}",
                    path.display()
                );
            }
            let result = &outcome.response.results[0];
            let id: Uuid = result.result_id.parse()?;
            let row = service
                .promote(id, Some(1), None, Some("bootstrap".into()))
                .await?;
            writeln!(out, "{}", row_json(&row))?;
        }
    }
    Ok(())
}

/// A baseline row as the API shows it.
fn row_json(row: &BaselineRow) -> Value {
    serde_json::to_value(BaselineView::from(row.clone())).expect("baseline rows serialize")
}
