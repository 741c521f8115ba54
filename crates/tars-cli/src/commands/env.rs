//! `tars env list | step | rollout`: the environments from the shell, with exact JSON
//! interfaces that other tools script against.

use anyhow::Context;
use serde_json::{Value, json};
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Instant;
use tars_envs::{Action, Actions, EnvSpec, HeuristicAction, RandomActions, Space, VecEnv};

/// Arguments of `tars env`.
#[derive(Debug, clap::Args)]
pub struct EnvArgs {
    #[command(subcommand)]
    command: EnvCommand,
}

#[derive(Debug, clap::Subcommand)]
enum EnvCommand {
    /// List environments: ids, spaces, max steps, reward threshold.
    List {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Step from given states: reads JSON lines `{"state": [...], "action": ...}` on stdin and
    /// writes `{"state", "obs", "reward", "terminated"}` per line (`{"error"}` for a bad line).
    Step {
        /// Gymnasium id, e.g. CartPole-v1.
        env_id: String,
    },
    /// Run random actions (resets included) and report episodes, mean return and steps/s.
    Rollout {
        /// Gymnasium id, e.g. CartPole-v1.
        env_id: String,
        /// Total environment steps, summed over all environments.
        #[arg(long, default_value_t = 100_000)]
        steps: u64,
        /// Environments stepped together in one VecEnv.
        #[arg(long, default_value_t = 1)]
        num_envs: usize,
        /// Seed of the environments and of the random actions.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Actions: random (uniform), or heuristic (gymnasium's LunarLander controller).
        #[arg(long, default_value = "random")]
        policy: String,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: EnvArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        EnvCommand::List { json } => list(json),
        EnvCommand::Step { env_id } => step(&env_id),
        EnvCommand::Rollout {
            env_id,
            steps,
            num_envs,
            seed,
            policy,
            json,
        } => rollout(&env_id, steps, num_envs, seed, &policy, json),
    }
}

fn space_json(space: &Space) -> Value {
    match space {
        Space::Discrete { n } => json!({"type": "Discrete", "n": n}),
        Space::Box { low, high } => {
            json!({"type": "Box", "shape": [low.len()], "low": low, "high": high})
        }
    }
}

fn spec_json(spec: &EnvSpec) -> Value {
    json!({
        "id": spec.id,
        "aliases": spec.aliases,
        "observation_space": space_json(&spec.observation_space),
        "action_space": space_json(&spec.action_space),
        "max_episode_steps": spec.max_episode_steps,
        "reward_threshold": spec.reward_threshold,
        "state": spec.state_layout,
    })
}

fn list(json: bool) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    if json {
        let all: Vec<Value> = tars_envs::specs().map(spec_json).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&all)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<26} {:<34} {:<22} {:>9} {:>10}",
        "ID", "OBSERVATION", "ACTION", "MAX STEPS", "THRESHOLD"
    )?;
    for spec in tars_envs::specs() {
        let threshold = spec
            .reward_threshold
            .map_or("none".to_string(), |t| t.to_string());
        let mut id = spec.id.to_string();
        if !spec.aliases.is_empty() {
            id = format!("{id} (alias {})", spec.aliases.join(", "));
        }
        let obs = match spec.observation_space {
            Space::Box { low, .. } => format!("Box({},) float32", low.len()),
            Space::Discrete { n } => format!("Discrete({n})"),
        };
        writeln!(
            out,
            "{id:<26} {obs:<34} {:<22} {:>9} {threshold:>10}",
            spec.action_space.describe(),
            spec.max_episode_steps
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One line of `tars env step`: parse, set the state on a fresh env, step once.
fn step_line(env_id: &str, line: &str) -> Result<Value, String> {
    let request: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let state: Vec<f64> = match request.get("state") {
        Some(Value::Array(values)) => values
            .iter()
            .map(|v| {
                v.as_f64()
                    .ok_or_else(|| format!("\"state\" must hold only numbers, found {v}"))
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(format!(
                "\"state\" must be an array of numbers, found {other}"
            ));
        }
        None => return Err("missing \"state\" (an array of numbers)".to_string()),
    };
    let mut env = tars_envs::make(env_id).map_err(|e| e.to_string())?;
    let continuous: Vec<f32>;
    let action = match request.get("action") {
        None => return Err("missing \"action\" (an integer or an array of numbers)".to_string()),
        Some(Value::Number(n)) if n.is_u64() => Action::Discrete(n.as_u64().unwrap_or(0) as usize),
        Some(Value::Number(n)) if n.is_i64() => {
            let n_actions = match env.spec().action_space {
                Space::Discrete { n } => n.to_string(),
                _ => "a discrete space".to_string(),
            };
            return Err(format!(
                "action {n} is out of range; actions are non-negative integers below {n_actions}"
            ));
        }
        Some(Value::Array(values)) => {
            continuous = values
                .iter()
                .map(|v| {
                    v.as_f64()
                        .map(|x| x as f32)
                        .ok_or_else(|| format!("\"action\" must hold only numbers, found {v}"))
                })
                .collect::<Result<_, _>>()?;
            Action::Continuous(&continuous)
        }
        Some(other) => {
            return Err(format!(
                "\"action\" must be an integer or an array of numbers, found {other}"
            ));
        }
    };
    env.spec()
        .action_space
        .check_action(action)
        .map_err(|e| e.to_string())?;
    env.set_state(&state).map_err(|e| e.to_string())?;
    let transition = env.step(action);
    let mut obs = vec![0.0f32; env.spec().observation_space.dim()];
    env.observe(&mut obs);
    let obs: Vec<f64> = obs.into_iter().map(f64::from).collect();
    Ok(
        json!({"state": env.state(), "obs": obs, "reward": transition.reward, "terminated": transition.terminated}),
    )
}

fn step(env_id: &str) -> anyhow::Result<ExitCode> {
    tars_envs::spec(env_id)?;
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut any_failed = false;
    for (line_idx, line) in stdin.lines().enumerate() {
        let line = line.with_context(|| format!("reading stdin line {}", line_idx + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let response = step_line(env_id, &line).unwrap_or_else(|error| {
            any_failed = true;
            json!({"error": format!("line {}: {error}", line_idx + 1)})
        });
        writeln!(out, "{response}")?;
    }
    out.flush()?;
    Ok(if any_failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Counts of a rollout.
pub struct RolloutStats {
    pub steps: u64,
    pub episodes: u64,
    pub mean_return: Option<f64>,
    pub seconds: f64,
}

/// Which actions a rollout takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutPolicy {
    Random,
    /// gymnasium's `heuristic()` controller for LunarLander.
    Heuristic,
}

impl RolloutPolicy {
    fn parse(name: &str, env_id: &str) -> anyhow::Result<Self> {
        match name {
            "random" => Ok(RolloutPolicy::Random),
            "heuristic" if env_id.starts_with("LunarLander") => Ok(RolloutPolicy::Heuristic),
            "heuristic" => anyhow::bail!(
                "--policy heuristic exists only for LunarLander-v3 and LunarLanderContinuous-v3; use --policy random for {env_id}"
            ),
            other => anyhow::bail!("unknown --policy '{other}'; valid: random, heuristic"),
        }
    }
}

/// Steps `num_envs` environments for `steps` env-steps in total with `policy`'s actions.
pub fn run_rollout(
    env_id: &str,
    steps: u64,
    num_envs: usize,
    seed: u64,
    policy: RolloutPolicy,
) -> anyhow::Result<RolloutStats> {
    anyhow::ensure!(
        num_envs >= 1,
        "--num-envs must be at least 1, got {num_envs}"
    );
    let mut vec_env = VecEnv::make(env_id, num_envs, seed)?;
    let spec = vec_env.spec();
    let obs_dim = vec_env.obs_dim();
    let mut random = RandomActions::new(spec.action_space, num_envs, seed ^ 0x5EED);
    let mut discrete = vec![0usize; num_envs];
    let mut continuous = vec![0.0f32; num_envs * spec.action_space.dim()];
    let batches = steps.div_ceil(num_envs as u64);
    let (mut episodes, mut return_sum) = (0u64, 0.0);
    let start = Instant::now();
    for _ in 0..batches {
        match policy {
            RolloutPolicy::Random => vec_env.step(random.sample()),
            RolloutPolicy::Heuristic => {
                for (env_idx, obs) in vec_env.obs.chunks_exact(obs_dim).enumerate() {
                    match tars_envs::heuristic(spec, obs) {
                        HeuristicAction::Discrete(a) => discrete[env_idx] = a,
                        HeuristicAction::Continuous(a) => {
                            continuous[env_idx * 2..env_idx * 2 + 2].copy_from_slice(&a)
                        }
                    }
                }
                if spec.action_space.is_discrete() {
                    vec_env.step(Actions::Discrete(&discrete));
                } else {
                    vec_env.step(Actions::Continuous(&continuous));
                }
            }
        }
        for env_idx in 0..num_envs {
            if vec_env.done(env_idx) {
                episodes += 1;
                return_sum += vec_env.episode_returns[env_idx];
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let mean_return = (episodes > 0).then(|| return_sum / episodes as f64);
    Ok(RolloutStats {
        steps: batches * num_envs as u64,
        episodes,
        mean_return,
        seconds,
    })
}

fn rollout(
    env_id: &str,
    steps: u64,
    num_envs: usize,
    seed: u64,
    policy_name: &str,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let env_id = tars_envs::spec(env_id)?.id;
    let policy = RolloutPolicy::parse(policy_name, env_id)?;
    let stats = run_rollout(env_id, steps, num_envs, seed, policy)?;
    let steps_per_second = stats.steps as f64 / stats.seconds.max(1e-9);
    let mut out = std::io::stdout().lock();
    if json {
        let value = json!({
            "env": env_id, "num_envs": num_envs, "seed": seed, "policy": policy_name,
            "steps": stats.steps, "episodes": stats.episodes,
            "mean_episode_return": stats.mean_return,
            "seconds": stats.seconds, "steps_per_second": steps_per_second,
        });
        writeln!(out, "{value}")?;
    } else {
        let mean = stats
            .mean_return
            .map_or("n/a (no episode finished)".to_string(), |m| {
                format!("{m:.3}")
            });
        writeln!(
            out,
            "env                  {env_id} ({num_envs} env(s), seed {seed}, {policy_name} actions)"
        )?;
        writeln!(out, "steps                {}", stats.steps)?;
        writeln!(out, "episodes             {}", stats.episodes)?;
        writeln!(out, "mean episode return  {mean}")?;
        writeln!(out, "steps/s              {steps_per_second:.0}")?;
    }
    Ok(ExitCode::SUCCESS)
}
