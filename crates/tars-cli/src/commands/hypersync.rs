//! `tars propose`, `tars proposals list|show|approve|reject`, `tars rollback` and
//! `tars agents config show|history`: HyperSync on the configured database, in this process.
//! A running `tars serve` on the same database picks up the changes within `config_poll_ms`.

use serde_json::{Value, json};
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tars_server::config::{Config, ConfigArgs};
use tars_server::hypersync::{ConfigView, HyperSync, ProposalBody};
use tars_server::service::Service;
use tars_store::ProposalRow;
use uuid::Uuid;

/// Arguments of `tars propose`.
#[derive(Debug, clap::Args)]
pub struct ProposeArgs {
    /// DQN, A2C, PPO, DDPG or TD3.
    #[arg(long)]
    agent: String,
    /// Proposed hyperparameters as a JSON object.
    #[arg(long, default_value = "{}")]
    hyperparameters: String,
    /// Environments to evaluate on (repeatable); default: the active config's, else CartPole-v1.
    #[arg(long = "env")]
    environments: Vec<String>,
    /// Skip the evaluation against the baseline (it then awaits approval).
    #[arg(long)]
    no_evaluate: bool,
    /// Apply at once when it passes.
    #[arg(long)]
    auto_apply: bool,
    #[arg(long)]
    reason: Option<String>,
    #[arg(long)]
    episodes: Option<i64>,
    /// The quick training budget and 50 episodes.
    #[arg(long)]
    quick: bool,
    #[arg(long)]
    seed: Option<u64>,
    /// A stored checkpoint trained with these hyperparameters.
    #[arg(long)]
    checkpoint: Option<String>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    config: ConfigArgs,
}

/// Arguments of `tars proposals`.
#[derive(Debug, clap::Args)]
pub struct ProposalsArgs {
    #[command(subcommand)]
    command: ProposalsCommand,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Debug, clap::Subcommand)]
enum ProposalsCommand {
    /// Proposals, newest first.
    List {
        #[arg(long)]
        agent: Option<String>,
        /// pending, evaluating, rejected, awaiting_approval, approved, applied or rolled_back.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// One proposal with its history.
    Show {
        id: Uuid,
        #[arg(long)]
        json: bool,
    },
    /// Approve a proposal awaiting approval; it is applied at once.
    Approve {
        id: Uuid,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Reject a proposal that is not decided yet.
    Reject {
        id: Uuid,
        #[arg(long)]
        reason: Option<String>,
    },
}

/// Arguments of `tars rollback`.
#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// The agent type whose live configuration goes back: DQN, A2C, PPO, DDPG or TD3.
    #[arg(long)]
    agent: String,
    /// The version to restore. Default: the version before the active one.
    #[arg(long)]
    to_version: Option<i32>,
    /// Why, for the audit trail (`tars agents config history`).
    #[arg(long)]
    reason: Option<String>,
    /// Print the new configuration as JSON (as `tars agents config show --json`).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    config: ConfigArgs,
}

/// Arguments of `tars agents`.
#[derive(Debug, clap::Args)]
pub struct AgentsArgs {
    #[command(subcommand)]
    command: AgentsCommand,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Debug, clap::Subcommand)]
enum AgentsCommand {
    /// The live configuration of agent types.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, clap::Subcommand)]
enum ConfigCommand {
    /// The active config of an agent type.
    Show {
        #[arg(long)]
        agent: String,
        #[arg(long)]
        json: bool,
    },
    /// Every config version of an agent type, oldest first.
    History {
        #[arg(long)]
        agent: String,
        #[arg(long)]
        json: bool,
    },
}

/// Who the command line acts as in the audit trail.
fn actor() -> String {
    let user = std::env::var("USER").unwrap_or_default();
    if user.is_empty() {
        "cli".to_string()
    } else {
        format!("cli:{user}")
    }
}

/// Opens the service and the orchestrator, runs `f`, then waits for background work
/// (evaluations, post-apply watches) before the process exits.
fn with_hypersync<T>(
    config: &ConfigArgs,
    f: impl AsyncFnOnce(&Arc<HyperSync>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let config = Config::load(config)?;
    crate::runtime()?.block_on(async {
        let service = Arc::new(Service::open(config).await?);
        // Fleet mode: the replicas hear of this command's writes at once.
        let publisher = tars_server::events_nats::publisher_of(&service).await?;
        let hypersync = HyperSync::new(service.clone());
        let out = f(&hypersync).await;
        hypersync.settle().await;
        if let Some(publisher) = publisher {
            publisher.close(Duration::from_secs(5)).await;
        }
        service.store.close().await;
        out
    })
}

pub fn propose(args: ProposeArgs) -> anyhow::Result<ExitCode> {
    let hyperparameters: Value = serde_json::from_str(&args.hyperparameters)
        .map_err(|e| anyhow::anyhow!("--hyperparameters must be a JSON object: {e}"))?;
    let Value::Object(proposed_hyperparameters) = hyperparameters else {
        anyhow::bail!(
            "--hyperparameters must be a JSON object, e.g. '{{\"learning_rate\": 0.001}}'"
        );
    };
    let body = ProposalBody {
        agent_type: args.agent,
        proposed_hyperparameters,
        evaluate_before_apply: !args.no_evaluate,
        environments: args.environments,
        reason: args.reason,
        auto_apply: args.auto_apply,
        num_episodes: args.episodes,
        quick_mode: args.quick,
        seed: args.seed,
        checkpoint_id: args.checkpoint,
    };
    let row = with_hypersync(&args.config, async |hs| {
        let row = hs.propose(body, &actor(), true).await?;
        if row.status == "evaluating" {
            eprintln!("evaluating proposal {} against the baseline…", row.id);
        }
        let row = hs
            .wait(row.id, std::time::Duration::from_secs(86_400))
            .await?;
        hs.settle().await;
        Ok(hs.proposal(row.id).await?)
    })?;
    print_proposal(&row, args.json)?;
    Ok(match row.status.as_str() {
        "rejected" => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    })
}

pub fn proposals(args: ProposalsArgs) -> anyhow::Result<ExitCode> {
    with_hypersync(&args.config, async |hs| {
        match args.command {
            ProposalsCommand::List {
                agent,
                status,
                limit,
                json,
            } => {
                if let Some(status) = &status {
                    tars_hypersync::ProposalStatus::parse(status).map_err(anyhow::Error::msg)?;
                }
                let agent = agent
                    .as_deref()
                    .map(tars_server::hypersync::parse_agent)
                    .transpose()?;
                let rows = hs
                    .service()
                    .store
                    .proposals(agent.map(|a| a.name()), status.as_deref(), limit)
                    .await?;
                let mut out = std::io::stdout().lock();
                if json {
                    let rows: Vec<_> = rows.iter().map(proposal_json).collect();
                    writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
                } else {
                    writeln!(
                        out,
                        "{:<36}  {:<5}  {:<17}  {:>7}  created",
                        "id", "agent", "status", "version"
                    )?;
                    for row in &rows {
                        let version = row.applied_version.map_or("-".into(), |v| format!("v{v}"));
                        writeln!(
                            out,
                            "{:<36}  {:<5}  {:<17}  {:>7}  {}",
                            row.id,
                            row.agent_type,
                            row.status,
                            version,
                            row.created_at.format("%Y-%m-%d %H:%M:%S")
                        )?;
                    }
                }
            }
            ProposalsCommand::Show { id, json } => {
                let row = hs.proposal(id).await?;
                let events = hs.service().store.proposal_events(id).await?;
                if json {
                    let mut value = proposal_json(&row);
                    value["history"] = events
                        .iter()
                        .map(|e| json!({"from": e.from_status, "to": e.to_status, "actor": e.actor, "reason": e.reason, "at": e.at.to_rfc3339()}))
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&value)?);
                } else {
                    print_proposal(&row, false)?;
                    for e in &events {
                        println!(
                            "  {}  {:<17} by {}{}",
                            e.at.format("%Y-%m-%d %H:%M:%S"),
                            e.to_status,
                            e.actor,
                            e.reason
                                .as_deref()
                                .map(|r| format!(": {r}"))
                                .unwrap_or_default()
                        );
                    }
                }
            }
            ProposalsCommand::Approve { id, reason } => {
                let row = hs.approve(id, &actor(), reason).await?;
                print_proposal(&row, false)?;
                eprintln!("post-apply evaluation of the new config…");
            }
            ProposalsCommand::Reject { id, reason } => {
                print_proposal(&hs.reject(id, &actor(), reason).await?, false)?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn rollback(args: RollbackArgs) -> anyhow::Result<ExitCode> {
    let row = with_hypersync(&args.config, async |hs| {
        Ok(hs
            .rollback(&args.agent, args.to_version, args.reason, &actor())
            .await?)
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&ConfigView::from(row))?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} is at config v{} (restores v{})",
        row.agent_type,
        row.version,
        row.restored_version.unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn agents(args: AgentsArgs) -> anyhow::Result<ExitCode> {
    let AgentsCommand::Config { command } = args.command;
    with_hypersync(&args.config, async |hs| {
        let (rows, json) = match command {
            ConfigCommand::Show { agent, json } => (vec![hs.config(&agent).await?], json),
            ConfigCommand::History { agent, json } => {
                let algo = tars_server::hypersync::parse_agent(&agent)?;
                (hs.service().store.config_history(algo.name()).await?, json)
            }
        };
        let views: Vec<ConfigView> = rows.into_iter().map(ConfigView::from).collect();
        let mut out = std::io::stdout().lock();
        if json {
            writeln!(out, "{}", serde_json::to_string_pretty(&views)?)?;
        } else {
            for v in &views {
                writeln!(
                    out,
                    "v{:<3} {:<8} {}  by {}  checkpoint {}  {}{}",
                    v.version,
                    v.action,
                    v.created_at,
                    v.actor,
                    v.checkpoint_id.as_deref().unwrap_or("-"),
                    v.hyperparameters,
                    v.reason
                        .as_deref()
                        .map(|r| format!("  ({r})"))
                        .unwrap_or_default()
                )?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn proposal_json(row: &ProposalRow) -> Value {
    json!({
        "id": row.id, "agent_type": row.agent_type, "status": row.status,
        "reason": row.status_reason, "proposer_reason": row.reason,
        "proposed_hyperparameters": row.hyperparameters, "request": row.request,
        "evaluation_id": row.evaluation_id, "checkpoint_id": row.checkpoint_id,
        "applied_version": row.applied_version, "created_by": row.created_by,
        "created_at": row.created_at.to_rfc3339(), "updated_at": row.updated_at.to_rfc3339(),
    })
}

fn print_proposal(row: &ProposalRow, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&proposal_json(row))?);
        return Ok(());
    }
    println!("proposal {}  {}  {}", row.id, row.agent_type, row.status);
    println!("  hyperparameters {}", row.hyperparameters);
    if let Some(reason) = &row.status_reason {
        println!("  reason: {reason}");
    }
    if let Some(version) = row.applied_version {
        println!("  applied as config v{version}");
    }
    Ok(())
}
