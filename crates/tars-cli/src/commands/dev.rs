//! `tars dev fleet`: a local fleet for development — N `tars serve` replicas (API only) and M
//! `tars worker`s, child processes of this very executable, against the PostgreSQL, NATS and
//! Redis servers of this machine, under a fresh `nats_prefix` (so nothing collides with
//! another fleet on the same NATS server).
//!
//! Each replica listens on a free port (`--port 0`); once every replica listens, the URLs are
//! printed on stdout, one per line. The children's logs go to stderr, each line prefixed with
//! the child's name. SIGINT (Ctrl-C) or SIGTERM stops the fleet: each child gets SIGTERM and
//! shuts down gracefully (`tars serve`/`tars worker`), and the command exits 0 once every
//! child exited cleanly; a child that exits on its own, or not cleanly, stops the others and
//! makes the command fail.

use anyhow::Context as _;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Arguments of `tars dev`.
#[derive(Debug, clap::Args)]
pub struct DevArgs {
    #[command(subcommand)]
    command: DevCommand,
}

#[derive(Debug, clap::Subcommand)]
enum DevCommand {
    /// Start a local fleet: replicas and workers as child processes; Ctrl-C stops them all.
    Fleet(FleetArgs),
}

/// Arguments of `tars dev fleet`.
#[derive(Debug, clap::Args)]
pub struct FleetArgs {
    /// API replicas (`tars serve`, job_workers = 0), each on a free port.
    #[arg(long, default_value_t = 2)]
    replicas: usize,
    /// Worker processes (`tars worker`, one job at a time each).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// The shared PostgreSQL database.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    database_url: String,
    /// The shared NATS JetStream server.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// The shared Redis server (handed to the children as TARS_REDIS_URL).
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Names the fleet's NATS streams and subjects; default: a fresh `dev<random>`.
    #[arg(long)]
    nats_prefix: Option<String>,
    /// The children's shared data directory (checkpoints); default: `tars-dev-fleet` here.
    #[arg(long, default_value = "tars-dev-fleet")]
    data_dir: std::path::PathBuf,
}

/// How long the replicas get to listen.
const START_LIMIT: Duration = Duration::from_secs(60);

/// How long the children get to exit after SIGTERM (their drain time is
/// `shutdown_timeout_seconds`, 30 s by default, plus a margin).
const STOP_LIMIT: Duration = Duration::from_secs(45);

pub fn run(args: DevArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        DevCommand::Fleet(args) => fleet(args),
    }
}

fn fleet(args: FleetArgs) -> anyhow::Result<ExitCode> {
    let prefix = args.nats_prefix.clone().unwrap_or_else(fresh_prefix);
    let spec = Spec {
        replicas: args.replicas,
        workers: args.workers,
        database_url: args.database_url,
        nats_url: args.nats_url,
        redis_url: Some(args.redis_url),
        prefix: prefix.clone(),
        data_dir: args.data_dir,
        env: Vec::new(),
        echo: true,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let runtime = crate::runtime()?;
    {
        let stop = stop.clone();
        runtime.spawn(async move {
            tars_server::app::shutdown_signal().await;
            stop.store(true, Ordering::Relaxed);
        });
    }
    let Some(mut fleet) = Fleet::start(&spec, &stop)? else {
        return Ok(fleet_stopped(&mut Fleet::default()));
    };
    for (name, url, pid) in fleet.members() {
        match url {
            Some(url) => println!("{name} {url} pid {pid}"),
            None => println!("{name} pid {pid}"),
        }
    }
    println!(
        "fleet up: {} replica(s), {} worker(s), nats_prefix {prefix}; Ctrl-C stops it",
        spec.replicas, spec.workers
    );
    while !stop.load(Ordering::Relaxed) {
        if let Some(failure) = fleet.exited() {
            eprintln!("{failure}; stopping the fleet");
            fleet_stopped(&mut fleet);
            return Ok(ExitCode::FAILURE);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(fleet_stopped(&mut fleet))
}

/// A fresh `nats_prefix`: `dev` and 8 random hex digits.
pub(crate) fn fresh_prefix() -> String {
    format!("dev{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// Stops the fleet after a signal; success when every child exited cleanly.
fn fleet_stopped(fleet: &mut Fleet) -> ExitCode {
    eprintln!(
        "stopping the fleet: SIGTERM to {} children",
        fleet.members.len()
    );
    let unclean = fleet.stop();
    if unclean.is_empty() {
        eprintln!("fleet stopped: every child exited cleanly");
        ExitCode::SUCCESS
    } else {
        for failure in &unclean {
            eprintln!("error: {failure}");
        }
        ExitCode::FAILURE
    }
}

/// What fleet to start.
pub(crate) struct Spec {
    pub replicas: usize,
    pub workers: usize,
    pub database_url: String,
    pub nats_url: String,
    pub redis_url: Option<String>,
    pub prefix: String,
    pub data_dir: std::path::PathBuf,
    /// More environment for every child (`TARS_*` settings).
    pub env: Vec<(String, String)>,
    /// Copy the children's log lines to stderr, prefixed with their names.
    pub echo: bool,
}

/// One child of the fleet.
struct Member {
    name: String,
    child: Child,
    /// A replica's URL, once it listens.
    url: Option<String>,
}

/// The running children; dropping it stops them.
#[derive(Default)]
pub(crate) struct Fleet {
    members: Vec<Member>,
}

impl Fleet {
    /// Starts every child and waits until every replica listens. `None` when `stop` was set
    /// meanwhile (the children are stopped then).
    pub fn start(spec: &Spec, stop: &AtomicBool) -> anyhow::Result<Option<Fleet>> {
        anyhow::ensure!(
            spec.replicas >= 1,
            "--replicas must be at least 1 (the API the fleet serves)"
        );
        anyhow::ensure!(
            spec.workers >= 1,
            "--workers must be at least 1: the replicas run no job themselves"
        );
        anyhow::ensure!(
            !spec.prefix.is_empty()
                && spec
                    .prefix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "--nats-prefix must be letters, digits and '_' (it names NATS subjects and streams), not {:?}",
            spec.prefix
        );
        let exe = std::env::current_exe().context("finding the tars executable")?;
        std::fs::create_dir_all(&spec.data_dir)
            .with_context(|| format!("creating {}", spec.data_dir.display()))?;
        let (reports, reported) = mpsc::channel();
        let mut fleet = Fleet::default();
        let roles = (0..spec.replicas)
            .map(|i| ("replica", i))
            .chain((0..spec.workers).map(|i| ("worker", i)));
        for (role, i) in roles {
            let name = format!("{role}-{}", i + 1);
            let mut command = Command::new(&exe);
            if role == "replica" {
                command
                    .args(["serve", "--port", "0"])
                    .env("TARS_JOB_WORKERS", "0");
            } else {
                command.arg("worker").env("TARS_JOB_WORKERS", "1");
            }
            command
                .env("TARS_DATABASE_URL", &spec.database_url)
                .env("TARS_NATS_URL", &spec.nats_url)
                .env("TARS_NATS_PREFIX", &spec.prefix)
                .env("TARS_DATA_DIR", &spec.data_dir)
                .envs(spec.env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            if let Some(url) = &spec.redis_url {
                command.env("TARS_REDIS_URL", url);
            }
            let mut child = command
                .spawn()
                .with_context(|| format!("starting {name} ({})", exe.display()))?;
            let stderr = child.stderr.take().expect("stderr is piped");
            let reports = reports.clone();
            let index = fleet.members.len();
            let label = name.clone();
            let echo = spec.echo;
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(rest) = line.split("listening on ").nth(1)
                        && let Some(url) = rest.split_whitespace().next()
                    {
                        let _ = reports.send((index, url.to_string()));
                    }
                    if echo {
                        eprintln!("[{label}] {line}");
                    }
                }
            });
            fleet.members.push(Member {
                name,
                child,
                url: None,
            });
        }
        // Every replica listens, or the fleet is stopped with the reason.
        let deadline = Instant::now() + START_LIMIT;
        while fleet.members[..spec.replicas]
            .iter()
            .any(|m| m.url.is_none())
        {
            if let Some(failure) = fleet.exited() {
                anyhow::bail!("{failure} before the fleet was up; its log is above");
            }
            if stop.load(Ordering::Relaxed) {
                fleet.stop();
                return Ok(None);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the replicas did not all listen within {START_LIMIT:?}"
            );
            if let Ok((index, url)) = reported.recv_timeout(Duration::from_millis(100)) {
                fleet.members[index].url = Some(url);
            }
        }
        Ok(Some(fleet))
    }

    /// (name, URL of a replica, process id) of every child.
    pub fn members(&self) -> Vec<(String, Option<String>, u32)> {
        self.members
            .iter()
            .map(|m| (m.name.clone(), m.url.clone(), m.child.id()))
            .collect()
    }

    /// (name, URL) of every replica.
    pub fn replica_urls(&self) -> Vec<(String, String)> {
        self.members
            .iter()
            .filter_map(|m| Some((m.name.clone(), m.url.clone()?)))
            .collect()
    }

    /// The first child that exited, as a sentence.
    pub fn exited(&mut self) -> Option<String> {
        self.members.iter_mut().find_map(|member| {
            let status = member.child.try_wait().ok()??;
            Some(format!("{} exited ({status})", member.name))
        })
    }

    /// SIGTERM to every child still running, then waits for all; SIGKILL to those still
    /// running after [`STOP_LIMIT`]. Returns the children that did not exit cleanly.
    pub fn stop(&mut self) -> Vec<String> {
        for member in &mut self.members {
            if matches!(member.child.try_wait(), Ok(None)) {
                let pid = member.child.id() as libc::pid_t;
                // SAFETY: kill(2) on our own child's pid, not reaped yet (try_wait said so).
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
        }
        let deadline = Instant::now() + STOP_LIMIT;
        let mut unclean = Vec::new();
        for member in self.members.drain(..) {
            let Member {
                name, mut child, ..
            } = member;
            loop {
                match child.try_wait() {
                    Ok(Some(status)) if status.success() => break,
                    Ok(Some(status)) => {
                        unclean.push(format!("{name} exited with {status}"));
                        break;
                    }
                    Ok(None) if Instant::now() > deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        unclean.push(format!(
                            "{name} was still running {STOP_LIMIT:?} after SIGTERM and was killed"
                        ));
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                    Err(err) => {
                        unclean.push(format!("{name}: {err}"));
                        break;
                    }
                }
            }
        }
        unclean
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if !self.members.is_empty() {
            self.stop();
        }
    }
}
