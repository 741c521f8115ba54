//! `tars jobs list|show` and `tars runs list|show`: past work in the configured store (the one
//! `tars serve` uses), newest first, filtered like `GET /v1/jobs` and `GET /v1/runs` and
//! printed as a table or as the API's JSON.

use anyhow::Context;
use serde_json::json;
use std::io::Write;
use std::process::ExitCode;
use tars_server::config::{Config, ConfigArgs};
use tars_server::history::{job_summary, parse_kind, parse_status, run_summary};
use tars_store::{IdOf, JobFilter, Page, RunFilter, Store};
use uuid::Uuid;

/// The time range and page flags of a listing.
#[derive(Debug, clap::Args)]
struct PageArgs {
    /// Created at or after this time (RFC 3339, e.g. 2026-12-08T00:00:00Z).
    #[arg(long)]
    since: Option<String>,
    /// Created before this time (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    /// Rows to print, 1 to 200.
    #[arg(long, default_value_t = 20)]
    limit: i64,
    /// The cursor a previous listing printed, for the rows after it.
    #[arg(long)]
    cursor: Option<String>,
    /// Print the API's JSON page.
    #[arg(long)]
    json: bool,
}

impl PageArgs {
    fn page(&self) -> anyhow::Result<Page> {
        let (since, until) = (self.since.as_deref(), self.until.as_deref());
        Ok(Page::parse(
            since,
            until,
            self.cursor.as_deref(),
            self.limit,
        )?)
    }
}

/// Arguments of `tars jobs`.
#[derive(Debug, clap::Args)]
pub struct JobsArgs {
    #[command(subcommand)]
    command: JobsCommand,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Debug, clap::Subcommand)]
enum JobsCommand {
    /// Jobs, newest first.
    List {
        /// evaluation, training or trial.
        #[arg(long)]
        kind: Option<String>,
        /// queued, running, succeeded, failed or cancelled.
        #[arg(long)]
        status: Option<String>,
        /// DQN, A2C, PPO, DDPG or TD3.
        #[arg(long)]
        agent: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// One job: its state, error and result (JSON). The id or its first characters.
    Show { id: String },
}

/// Arguments of `tars runs`.
#[derive(Debug, clap::Args)]
pub struct RunsArgs {
    #[command(subcommand)]
    command: RunsCommand,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Debug, clap::Subcommand)]
enum RunsCommand {
    /// Stored evaluation runs, newest first, with each environment's result id.
    List {
        /// DQN, A2C, PPO, DDPG or TD3.
        #[arg(long)]
        agent: Option<String>,
        /// Runs with a result on this environment, e.g. CartPole-v1.
        #[arg(long)]
        env: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// One run: the evaluation's response as it was answered (JSON). The id or its first
    /// characters.
    Show { id: String },
}

fn with_store<T>(
    config: &ConfigArgs,
    work: impl AsyncFnOnce(&Store) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let config = Config::load(config)?;
    crate::runtime()?.block_on(async {
        let store = Store::connect(config.database_url())
            .await
            .with_context(|| format!("opening the database {}", config.database_url()))?;
        let result = work(&store).await;
        store.close().await;
        result
    })
}

/// A whole id, or the start of exactly one (git-style): `what` names it in errors.
pub(crate) async fn resolve_id(
    store: &Store,
    of: IdOf,
    what: &str,
    text: &str,
) -> anyhow::Result<Uuid> {
    if let Ok(id) = text.parse() {
        return Ok(id);
    }
    let found = store
        .ids_with_prefix(of, text)
        .await
        .with_context(|| format!("'{text}' is not a {what} id"))?;
    match found.as_slice() {
        [id] => Ok(*id),
        [] => anyhow::bail!("no {what} id starts with '{text}'"),
        many => {
            let listed: Vec<String> = many.iter().map(Uuid::to_string).collect();
            let count = if many.len() == 10 {
                "10 or more".to_string()
            } else {
                many.len().to_string()
            };
            anyhow::bail!(
                "'{text}' starts {count} {what} ids ({}); give more of it",
                listed.join(", ")
            )
        }
    }
}

pub fn jobs(args: JobsArgs) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match args.command {
        JobsCommand::List {
            kind,
            status,
            agent,
            page,
        } => {
            let filter = JobFilter {
                kind: kind
                    .as_deref()
                    .map(parse_kind)
                    .transpose()
                    .map_err(|e| anyhow::anyhow!(e.message))?,
                status: status
                    .as_deref()
                    .map(parse_status)
                    .transpose()
                    .map_err(|e| anyhow::anyhow!(e.message))?,
                agent_type: agent,
                page: page.page()?,
            };
            let listed = with_store(&args.config, async |store| {
                Ok(store.list_jobs(&filter).await?)
            })?;
            let next = listed.next.map(|c| c.encode());
            let jobs: Vec<_> = listed.rows.into_iter().map(job_summary).collect();
            if page.json {
                writeln!(out, "{}", json!({"jobs": jobs, "next_cursor": next}))?;
                return Ok(ExitCode::SUCCESS);
            }
            writeln!(
                out,
                "{:<36}  {:<10}  {:<9}  {:<5}  {:<25}  run or error",
                "job", "kind", "status", "agent", "created"
            )?;
            for job in &jobs {
                let outcome = match (&job.run_id, &job.error) {
                    (Some(run), _) => run.to_string(),
                    (None, Some(error)) => error.chars().take(60).collect(),
                    (None, None) => String::new(),
                };
                writeln!(
                    out,
                    "{:<36}  {:<10}  {:<9}  {:<5}  {:<25}  {outcome}",
                    job.job_id,
                    job.kind,
                    job.status,
                    job.agent_type.as_deref().unwrap_or("-"),
                    job.created_at
                )?;
            }
            if let Some(next) = next {
                writeln!(out, "more: --cursor {next}")?;
            }
        }
        JobsCommand::Show { id } => {
            let job = with_store(&args.config, async |store| {
                let id = resolve_id(store, IdOf::Job, "job", &id).await?;
                store
                    .job(id)
                    .await?
                    .with_context(|| format!("job {id} does not exist"))
            })?;
            let mut view = serde_json::to_value(job_summary(job.clone()))?;
            view["request"] = job.request;
            view["result"] = job.result.unwrap_or_default();
            writeln!(out, "{}", serde_json::to_string_pretty(&view)?)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn runs(args: RunsArgs) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match args.command {
        RunsCommand::List { agent, env, page } => {
            let filter = RunFilter {
                agent_type: agent,
                environment: env,
                page: page.page()?,
            };
            let listed = with_store(&args.config, async |store| {
                Ok(store.list_runs(&filter).await?)
            })?;
            let next = listed.next.map(|c| c.encode());
            let runs: Vec<_> = listed.rows.into_iter().map(run_summary).collect();
            if page.json {
                writeln!(out, "{}", json!({"runs": runs, "next_cursor": next}))?;
                return Ok(ExitCode::SUCCESS);
            }
            writeln!(
                out,
                "{:<36}  {:<5}  {:<25}  {:<36}  {:<22}  mean ± std",
                "run", "agent", "created", "result", "environment"
            )?;
            for run in &runs {
                for result in &run.results {
                    writeln!(
                        out,
                        "{:<36}  {:<5}  {:<25}  {:<36}  {:<22}  {:.2} ± {:.2}{}",
                        run.run_id,
                        run.agent_type,
                        run.created_at,
                        result.result_id,
                        result.environment,
                        result.mean_reward.unwrap_or(f64::NAN),
                        result.std_reward.unwrap_or(f64::NAN),
                        if result
                            .regression
                            .as_ref()
                            .is_some_and(|r| r["detected"] == true)
                        {
                            "  regression"
                        } else {
                            ""
                        }
                    )?;
                }
            }
            if let Some(next) = next {
                writeln!(out, "more: --cursor {next}")?;
            }
        }
        RunsCommand::Show { id } => {
            let run = with_store(&args.config, async |store| {
                let id = resolve_id(store, IdOf::Run, "run", &id).await?;
                store
                    .run(id)
                    .await?
                    .with_context(|| format!("run {id} does not exist"))
            })?;
            writeln!(out, "{}", serde_json::to_string_pretty(&run.response)?)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
