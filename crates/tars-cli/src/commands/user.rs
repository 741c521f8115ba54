//! `tars user add|list|passwd|remove`: the accounts of the HTTP API, in the configured database
//! (the one `tars serve` uses). A password comes from the first line of stdin
//! (`--password-stdin`), else from `TARS_USER_PASSWORD`, else it is generated and printed once;
//! never from a flag, which every user of the machine could read in the process list.

use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::io::{BufRead, Write};
use std::process::ExitCode;
use tars_server::auth::{self, AuthError, Role};
use tars_server::config::{Config, ConfigArgs};
use tars_store::{Store, StoreError, UserRow};

/// Arguments of `tars user`.
#[derive(Debug, clap::Args)]
pub struct UserArgs {
    #[command(subcommand)]
    command: UserCommand,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Debug, clap::Subcommand)]
enum UserCommand {
    /// Create a user.
    Add {
        /// 1 to 64 characters from A-Z, a-z, 0-9, '_', '.' and '-'.
        name: String,
        /// viewer (reads), operator (also evaluates), admin (also writes baselines).
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List the users and their roles.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Set a user's password; this ends every session of the user.
    Passwd {
        name: String,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete a user and their sessions.
    Remove { name: String },
}

pub fn run(args: UserArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config)?;
    crate::runtime()?.block_on(async {
        let store = Store::connect(config.database_url())
            .await
            .with_context(|| format!("opening the database {}", config.database_url()))?;
        let result = command(&store, args.command).await;
        store.close().await;
        result
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn command(store: &Store, command: UserCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        UserCommand::Add {
            name,
            role,
            password_stdin,
        } => {
            let (password, generated) = password(password_stdin)?;
            auth::create_user(store, &name, role, &password)
                .await
                .map_err(|error| user_error(error, &name))
                .with_context(|| format!("adding user {name}"))?;
            writeln!(out, "added user {name} ({role})")?;
            if generated {
                print_generated(&mut out, &name, &password)?;
            }
        }
        UserCommand::List { json } => {
            let users = store.users().await.context("listing the users")?;
            if json {
                let users: Vec<Value> = users.iter().map(user_json).collect();
                writeln!(out, "{}", Value::from(users))?;
            } else if users.is_empty() {
                writeln!(
                    out,
                    "no users yet; `tars serve` creates admin on its first start, or add one with \
                     `tars user add NAME --role admin`"
                )?;
            } else {
                writeln!(out, "{:<24} {:<8}  created", "user", "role")?;
                for user in &users {
                    writeln!(
                        out,
                        "{:<24} {:<8}  {}",
                        user.username,
                        user.role,
                        user.created_at.format("%Y-%m-%d %H:%M UTC")
                    )?;
                }
            }
        }
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            let (password, generated) = password(password_stdin)?;
            auth::set_password(store, &name, &password)
                .await
                .map_err(|error| user_error(error, &name))
                .with_context(|| format!("changing the password of {name}"))?;
            writeln!(
                out,
                "changed the password of {name}; their sessions are ended"
            )?;
            if generated {
                print_generated(&mut out, &name, &password)?;
            }
        }
        UserCommand::Remove { name } => {
            store
                .delete_user(&name)
                .await
                .map_err(|error| user_error(AuthError::Store(error), &name))
                .with_context(|| format!("removing user {name}"))?;
            writeln!(out, "removed user {name} and their sessions")?;
        }
    }
    Ok(())
}

fn parse_role(text: &str) -> Result<Role, String> {
    text.parse().map_err(|error: AuthError| error.to_string())
}

/// The new password and whether it was generated: stdin's first line, `TARS_USER_PASSWORD`, or
/// a generated one.
fn password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        let password = line.trim_end_matches(['\n', '\r']);
        if password.is_empty() {
            bail!(
                "--password-stdin read an empty line; pipe the password in, e.g. \
                 `printf '%s\\n' \"$PASSWORD\" | tars user add NAME --role viewer --password-stdin`"
            );
        }
        return Ok((password.to_string(), false));
    }
    match std::env::var("TARS_USER_PASSWORD") {
        Ok(password) if !password.is_empty() => Ok((password, false)),
        Ok(_) => {
            bail!("TARS_USER_PASSWORD is empty; set a password, or unset it to get one generated")
        }
        Err(_) => Ok((auth::generate_password()?, true)),
    }
}

fn print_generated(out: &mut impl Write, name: &str, password: &str) -> std::io::Result<()> {
    writeln!(
        out,
        "password: {password}\n(generated and shown only this once; change it with `tars user passwd {name}`)"
    )
}

/// Names an unknown user the way the CLI talks about users.
fn user_error(error: AuthError, name: &str) -> anyhow::Error {
    match error {
        AuthError::Store(StoreError::NotFound { what: "user", .. }) => {
            anyhow::anyhow!("unknown user '{name}'; `tars user list` shows the users")
        }
        error => error.into(),
    }
}

/// A user as `tars user list --json` prints it: never the password hash.
fn user_json(user: &UserRow) -> Value {
    json!({
        "username": user.username,
        "role": user.role,
        "created_at": user.created_at.to_rfc3339(),
        "updated_at": user.updated_at.to_rfc3339(),
    })
}
