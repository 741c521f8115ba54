//! The effective configuration: defaults < `tars.toml` < `TARS_*` environment variables <
//! command-line flags, each value remembering where it came from (`tars config show`).
//!
//! Keys are flat names; the detector thresholds also read as a `[thresholds]` table in
//! `tars.toml`. The environment variable of a key is `TARS_` + its upper-cased name
//! (`thresholds.failure_rate` → `TARS_FAILURE_RATE`), its flag `--` + the name with dashes.
//! The file is `--config`, else `TARS_CONFIG`, else `./tars.toml` when it exists.

use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use tars_eval::{EngineConfig, Thresholds};

mod keys;

use keys::{KEYS, Key, Kind};

/// One configured value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Text(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(v) => write!(f, "{v}"),
            Value::Float(v) => write!(f, "{v}"),
            Value::Text(v) => f.write_str(v),
        }
    }
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Default,
    /// Derived from another key (e.g. `database_url` from `data_dir`).
    Derived(&'static str),
    File(PathBuf),
    Env(String),
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::Derived(key) => write!(f, "default, from {key}"),
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Env(var) => f.write_str(var),
            Source::Flag(flag) => f.write_str(flag),
        }
    }
}

/// The configuration flags: `--config FILE` and one flag per key (built from the key table, so
/// every key has one), on every command that reads the configuration.
#[derive(Debug, Default, Clone)]
pub struct ConfigArgs {
    pub config: Option<PathBuf>,
    /// `(key, raw value)` for each flag given.
    pub values: Vec<(&'static str, String)>,
}

impl ConfigArgs {
    /// Flags as if given on the command line, e.g. `ConfigArgs::with(&[("data_dir", "/tmp/x")])`.
    pub fn with(values: &[(&'static str, &str)]) -> ConfigArgs {
        ConfigArgs {
            config: None,
            values: values.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        }
    }
}

const HEADING: &str = "Configuration (flags > TARS_* env vars > tars.toml > defaults)";

impl clap::Args for ConfigArgs {
    fn augment_args(command: clap::Command) -> clap::Command {
        let mut command = command.next_help_heading(HEADING).arg(
            clap::Arg::new("config")
                .long("config")
                .value_name("FILE")
                .global(true)
                .value_parser(clap::value_parser!(PathBuf))
                .help("Configuration file [env: TARS_CONFIG] (default: ./tars.toml when present)"),
        );
        for key in KEYS.iter().filter(|key| !matches!(key.kind, Kind::Secret)) {
            let default = match key.kind {
                Kind::Int { default, .. } => format!(" (default {default})"),
                Kind::Float { default, .. } => format!(" (default {default})"),
                Kind::Text { default } if !default.is_empty() => format!(" (default {default})"),
                Kind::Text { .. } | Kind::Secret => String::new(),
            };
            command = command.arg(
                clap::Arg::new(key.name)
                    .long(key.flag()[2..].to_string())
                    .value_name("VALUE")
                    .global(true)
                    .help(format!(
                        "{}{default} [env: {}]",
                        capitalise(key.help),
                        key.env_var()
                    )),
            );
        }
        command
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}

impl clap::FromArgMatches for ConfigArgs {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut args = ConfigArgs::default();
        args.update_from_arg_matches(matches)?;
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        if let Some(path) = matches.get_one::<PathBuf>("config") {
            self.config = Some(path.clone());
        }
        for key in KEYS.iter().filter(|key| !matches!(key.kind, Kind::Secret)) {
            if let Some(raw) = matches.get_one::<String>(key.name) {
                self.values.push((key.name, raw.clone()));
            }
        }
        Ok(())
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    values: BTreeMap<&'static str, (Value, Source)>,
}

impl Config {
    /// Loads defaults, the file, the environment and the flags, in that order.
    pub fn load(args: &ConfigArgs) -> anyhow::Result<Config> {
        Self::load_from(args, |var| std::env::var(var).ok())
    }

    fn load_from(
        args: &ConfigArgs,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Config> {
        let mut values = BTreeMap::new();
        for key in KEYS {
            let value = match key.kind {
                Kind::Int { default, .. } => Value::Int(default),
                Kind::Float { default, .. } => Value::Float(default),
                Kind::Text { default } => Value::Text(default.to_string()),
                Kind::Secret => Value::Text(String::new()),
            };
            values.insert(key.name, (value, Source::Default));
        }
        let file = match (&args.config, env("TARS_CONFIG")) {
            (Some(path), _) => Some(path.clone()),
            (None, Some(path)) => Some(PathBuf::from(path)),
            (None, None) => Some(PathBuf::from("tars.toml")).filter(|p| p.exists()),
        };
        if let Some(path) = file {
            for (name, raw) in read_file(&path)? {
                let key = find(&name).with_context(|| format!("in {}", path.display()))?;
                let value = key.parse(&raw, &Source::File(path.clone()))?;
                values.insert(key.name, (value, Source::File(path.clone())));
            }
        }
        for key in KEYS {
            if let Some(raw) = env(&key.env_var()) {
                let source = Source::Env(key.env_var());
                values.insert(key.name, (key.parse(&raw, &source)?, source));
            }
        }
        for (name, raw) in &args.values {
            let key = find(name)?;
            let source = Source::Flag(key.flag());
            values.insert(key.name, (key.parse(raw, &source)?, source));
        }

        // Derived defaults: the data directory, and the SQLite file inside it.
        if values["data_dir"].0 == Value::Text(String::new()) {
            let dir = default_data_dir(&env);
            values.insert("data_dir", (Value::Text(dir), Source::Default));
        }
        if values["database_url"].0 == Value::Text(String::new()) {
            let dir = PathBuf::from(values["data_dir"].0.to_string());
            let url = format!("sqlite://{}", dir.join("tars.db").display());
            values.insert(
                "database_url",
                (Value::Text(url), Source::Derived("data_dir")),
            );
        }
        let config = Config { values };
        if !matches!(config.text("log_format"), "text" | "json") {
            bail!(
                "invalid log_format = '{}' (from {}): expected text or json",
                config.text("log_format"),
                config.values["log_format"].1
            );
        }
        if !matches!(config.text("jwt_algorithm"), "HS256" | "RS256") {
            bail!(
                "invalid jwt_algorithm = '{}' (from {}): expected HS256 or RS256",
                config.text("jwt_algorithm"),
                config.values["jwt_algorithm"].1
            );
        }
        let nats = config.nats_url();
        if !(nats.is_empty() || nats.starts_with("nats://")) {
            bail!(
                "invalid nats_url = '{}' (from {}): expected nats://HOST:PORT, or empty for the in-process queue",
                mask_url(nats),
                config.values["nats_url"].1
            );
        }
        let prefix = config.text("nats_prefix");
        if prefix.is_empty()
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            bail!(
                "invalid nats_prefix = '{prefix}' (from {}): expected letters, digits, _ and -",
                config.values["nats_prefix"].1
            );
        }
        let redis = config.text("redis_url");
        if !(redis.is_empty() || redis.starts_with("redis://")) {
            bail!(
                "invalid redis_url = '{}' (from {}): expected redis://[:PASSWORD@]HOST[:PORT][/DB], or empty to run without Redis",
                mask_url(redis),
                config.values["redis_url"].1
            );
        }
        let prefix = config.text("redis_prefix");
        if prefix.is_empty()
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            bail!(
                "invalid redis_prefix = '{prefix}' (from {}): expected letters, digits, _ and -",
                config.values["redis_prefix"].1
            );
        }
        if nats.is_empty() && config.int("job_workers") == 0 {
            bail!(
                "invalid job_workers = 0 (from {}): without nats_url this process is the only worker; use 1 or more",
                config.values["job_workers"].1
            );
        }
        let url = config.database_url();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            bail!(
                "invalid database_url = '{}' (from {}): expected sqlite://PATH or postgres://USER@HOST/DB",
                mask_url(url),
                config.values["database_url"].1
            );
        }
        Ok(config)
    }

    fn int(&self, name: &str) -> i64 {
        match self.values[name].0 {
            Value::Int(v) => v,
            _ => unreachable!("{name} is an integer key"),
        }
    }

    fn float(&self, name: &str) -> f64 {
        match self.values[name].0 {
            Value::Float(v) => v,
            _ => unreachable!("{name} is a number key"),
        }
    }

    fn text(&self, name: &str) -> &str {
        match &self.values[name].0 {
            Value::Text(v) => v,
            _ => unreachable!("{name} is a text key"),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        PathBuf::from(self.text("data_dir"))
    }

    pub fn port(&self) -> u16 {
        self.int("port") as u16
    }

    pub fn host(&self) -> &str {
        self.text("host")
    }

    /// Integer settings of the service (`sync_wait_seconds`, `queue_capacity`, …).
    pub fn get_int(&self, name: &str) -> i64 {
        self.int(name)
    }

    pub fn get_float(&self, name: &str) -> f64 {
        self.float(name)
    }

    pub fn get_text(&self, name: &str) -> &str {
        self.text(name)
    }

    pub fn database_url(&self) -> &str {
        self.text("database_url")
    }

    /// The NATS server of fleet mode; empty in embedded mode.
    pub fn nats_url(&self) -> &str {
        self.text("nats_url")
    }

    /// `"HS256"` or `"RS256"`.
    pub fn jwt_algorithm(&self) -> &str {
        self.text("jwt_algorithm")
    }

    /// The HS256 key, when configured (else the server keeps one in `<data_dir>/jwt_secret`).
    pub fn jwt_secret(&self) -> Option<&str> {
        Some(self.text("jwt_secret")).filter(|secret| !secret.is_empty())
    }

    pub fn jwt_private_key_file(&self) -> Option<PathBuf> {
        Some(self.text("jwt_private_key_file"))
            .filter(|path| !path.is_empty())
            .map(PathBuf::from)
    }

    pub fn jwt_public_key_file(&self) -> Option<PathBuf> {
        Some(self.text("jwt_public_key_file"))
            .filter(|path| !path.is_empty())
            .map(PathBuf::from)
    }

    pub fn access_token_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.int("access_token_ttl") as u64)
    }

    pub fn refresh_token_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.int("refresh_token_ttl") as u64)
    }

    /// The first admin's password, when configured (else one is generated and printed once).
    pub fn admin_password(&self) -> Option<&str> {
        Some(self.text("admin_password")).filter(|password| !password.is_empty())
    }

    /// The most one job may use (`max_job_memory_bytes`, `max_job_env_steps`).
    pub fn job_budget(&self) -> tars_agents::Budget {
        tars_agents::Budget {
            memory_bytes: self.int("max_job_memory_bytes") as u64,
            env_steps: self.int("max_job_env_steps") as u64,
        }
    }

    /// This configuration without job budgets, for the CLI's own runs: a user on their own
    /// machine may choose to use all of it (the CLI warns instead of refusing).
    pub fn without_job_budget(mut self) -> Config {
        for key in ["max_job_memory_bytes", "max_job_env_steps"] {
            let source = Source::Flag("the command line's own run".to_string());
            self.values.insert(key, (Value::Int(i64::MAX), source));
        }
        self
    }

    /// The most one AutoML study may take, in environment steps (`max_study_env_steps`).
    pub fn study_env_steps(&self) -> u64 {
        self.int("max_study_env_steps") as u64
    }

    pub fn engine(&self) -> EngineConfig {
        EngineConfig {
            default_episodes: self.int("default_episodes") as u32,
            quick_mode_episodes: self.int("quick_mode_episodes") as u32,
            max_concurrent: self.int("max_concurrent") as usize,
            env_cache_size: self.int("env_cache_size") as usize,
            bootstrap_reps: self.int("bootstrap_reps") as usize,
            budget: self.job_budget(),
            thresholds: Thresholds {
                failure_rate: self.float("thresholds.failure_rate"),
                reward_drop_pct: self.float("thresholds.reward_drop_pct"),
                loss_trend_window: self.int("thresholds.loss_trend_window") as usize,
                variance_multiplier: self.float("thresholds.variance_multiplier"),
            },
        }
    }

    /// Every key with its value (secrets masked), source, env var and meaning, in key order.
    pub fn rows(&self) -> Vec<[String; 5]> {
        KEYS.iter()
            .map(|key| {
                let (value, source) = &self.values[key.name];
                let shown = match (key.name, key.kind) {
                    ("database_url" | "nats_url" | "redis_url", _) => mask_url(&value.to_string()),
                    (_, Kind::Secret) if *value != Value::Text(String::new()) => "***".into(),
                    _ => value.to_string(),
                };
                [
                    key.name.to_string(),
                    shown,
                    source.to_string(),
                    key.env_var(),
                    key.help.to_string(),
                ]
            })
            .collect()
    }
}

/// A commented `tars.toml` with every key at its default (`tars config init`): each key's
/// meaning, then its line commented out, the `thresholds.*` keys in their `[thresholds]` table.
pub fn template() -> String {
    let mut out = String::from(
        "# tars.toml: the configuration of T.A.R.S. Every key is listed at its default, commented\n\
         # out; uncomment a line to set it. TARS_* environment variables and flags override this\n\
         # file (`tars config show` says where each value came from).\n",
    );
    let entry = |key: &Key| {
        let value = match key.kind {
            Kind::Int { default, .. } => default.to_string(),
            Kind::Float { default, .. } => format!("{default:?}"),
            Kind::Text { default } => serde_json::Value::from(default).to_string(),
            Kind::Secret => "\"\"".to_string(),
        };
        let secret = if matches!(key.kind, Kind::Secret) {
            " (a secret: prefer its environment variable)"
        } else {
            ""
        };
        format!(
            "\n# {}{secret}\n# {} = {value}\n",
            key.help,
            key.short_name()
        )
    };
    let (thresholds, top): (Vec<&Key>, Vec<&Key>) = KEYS
        .iter()
        .partition(|key| key.name.starts_with("thresholds."));
    for key in top {
        out.push_str(&entry(key));
    }
    out.push_str("\n[thresholds]\n");
    for key in thresholds {
        out.push_str(&entry(key));
    }
    out
}

fn find(name: &str) -> anyhow::Result<&'static Key> {
    KEYS.iter()
        .find(|key| key.name == name || key.short_name() == name)
        .with_context(|| {
            let valid: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
            format!(
                "unknown configuration key '{name}'; valid keys: {}",
                valid.join(", ")
            )
        })
}

/// Reads `tars.toml` into flat `(key, raw value)` pairs; `[thresholds]` keys get its prefix.
fn read_file(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading configuration file {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("parsing configuration file {}", path.display()))?;
    let mut pairs = Vec::new();
    for (name, value) in table {
        match value {
            toml::Value::Table(section) if name == "thresholds" => {
                for (inner, value) in section {
                    pairs.push((format!("thresholds.{inner}"), raw(&value)));
                }
            }
            value => pairs.push((name, raw(&value))),
        }
    }
    Ok(pairs)
}

/// A scalar as text, parsed later like an environment variable; tables and arrays are not values.
fn raw(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        _ => "(a table, array or date)".to_string(),
    }
}

/// `TARS_DATA_DIR` is a key like any other; otherwise `$XDG_DATA_HOME/tars`, else
/// `~/.local/share/tars`.
fn default_data_dir(env: &impl Fn(&str) -> Option<String>) -> String {
    if let Some(xdg) = env("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("tars").display().to_string();
    }
    let home = env("HOME").unwrap_or_else(|| ".".to_string());
    PathBuf::from(home)
        .join(".local/share/tars")
        .display()
        .to_string()
}

/// Hides the password of a URL: `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(args: &ConfigArgs, env: &[(&str, &str)]) -> anyhow::Result<Config> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_from(args, |var| env.get(var).cloned())
    }

    #[test]
    fn defaults_are_the_seeds() {
        let config = load(&ConfigArgs::default(), &[("HOME", "/home/u")]).unwrap();
        assert_eq!(config.int("port"), 8099);
        let engine = config.engine();
        assert_eq!(engine, EngineConfig::default());
        assert_eq!(
            config.data_dir(),
            PathBuf::from("/home/u/.local/share/tars")
        );
        assert_eq!(
            config.database_url(),
            "sqlite:///home/u/.local/share/tars/tars.db"
        );
    }

    #[test]
    fn the_template_lists_every_key_at_its_default() {
        let template = template();
        // Uncommented, it is a valid file that sets every key to its default.
        let uncommented: String = template
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(assignment)
                    if assignment
                        .split(" = ")
                        .next()
                        .is_some_and(|name| find(name).is_ok())
                        && !assignment.ends_with("\"\"") =>
                {
                    assignment
                }
                _ => line,
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let dir = std::env::temp_dir().join(format!("tars-config-template-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tars.toml");
        std::fs::write(&file, uncommented).unwrap();
        let args = ConfigArgs {
            config: Some(file),
            ..ConfigArgs::default()
        };
        let from_file = load(&args, &[("HOME", "/home/u")]).unwrap();
        let defaults = load(&ConfigArgs::default(), &[("HOME", "/home/u")]).unwrap();
        for (file_row, default_row) in from_file.rows().iter().zip(defaults.rows()) {
            assert_eq!(file_row[0], default_row[0]);
            assert_eq!(file_row[1], default_row[1], "{}", file_row[0]);
            // Secrets and text keys unset by default (data_dir: from HOME) stay commented.
            let unset = matches!(
                find(&file_row[0]).unwrap().kind,
                Kind::Secret | Kind::Text { default: "" }
            );
            if !unset {
                assert!(
                    file_row[2].contains("tars.toml"),
                    "{} not set by the file",
                    file_row[0]
                );
            }
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn flags_beat_env_beat_file_beat_defaults() {
        let dir = std::env::temp_dir().join(format!("tars-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tars.toml");
        std::fs::write(
            &file,
            "port = 9000\nmax_concurrent = 2\n[thresholds]\nfailure_rate = 0.2\nreward_drop_pct = 0.3\n",
        )
        .unwrap();
        let args = ConfigArgs {
            config: Some(file.clone()),
            ..ConfigArgs::with(&[
                ("thresholds.reward_drop_pct", "0.05"),
                ("database_url", "postgres://tars:hunter2@db/tars"),
            ])
        };
        let config = load(
            &args,
            &[
                ("TARS_PORT", "9100"),
                ("TARS_DATA_DIR", "/srv/tars"),
                ("TARS_REDIS_URL", "redis://:hunter2@cache:6379/2"),
            ],
        )
        .unwrap();
        assert_eq!(config.int("port"), 9100);
        let engine = config.engine();
        assert_eq!(engine.max_concurrent, 2);
        assert_eq!(engine.thresholds.failure_rate, 0.2);
        assert_eq!(engine.thresholds.reward_drop_pct, 0.05);
        assert_eq!(config.data_dir(), PathBuf::from("/srv/tars"));
        let rows = config.rows();
        let row = |name: &str| rows.iter().find(|r| r[0] == name).unwrap().clone();
        assert_eq!(row("port")[2], "TARS_PORT");
        assert_eq!(row("max_concurrent")[2], file.display().to_string());
        assert_eq!(row("thresholds.reward_drop_pct")[2], "--reward-drop-pct");
        assert_eq!(row("thresholds.reward_drop_pct")[3], "TARS_REWARD_DROP_PCT");
        assert_eq!(
            row("database_url")[1],
            "postgres://tars:***@db/tars",
            "secret masked"
        );
        assert_eq!(row("database_url")[2], "--database-url");
        assert_eq!(row("redis_url")[1], "redis://:***@cache:6379/2");
        assert_eq!(row("redis_url")[2], "TARS_REDIS_URL");
        assert_eq!(row("default_episodes")[2], "default");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn invalid_values_name_the_key_the_value_and_the_range() {
        let flag = ConfigArgs::with(&[("max_concurrent", "many")]);
        let none = ConfigArgs::default();
        type Case<'a> = (&'a ConfigArgs, &'a [(&'a str, &'a str)], &'a str);
        let cases: [Case; 6] = [
            (
                &none,
                &[("TARS_PORT", "70000")],
                "invalid port = '70000' (from TARS_PORT): expected an integer in 0..=65535",
            ),
            (
                &none,
                &[("TARS_FAILURE_RATE", "1.5")],
                "invalid thresholds.failure_rate = '1.5' (from TARS_FAILURE_RATE): expected a number in [0, 1]",
            ),
            (
                &flag,
                &[],
                "invalid max_concurrent = 'many' (from --max-concurrent): expected an integer in 1..=64",
            ),
            (
                &none,
                &[("TARS_DATABASE_URL", "mysql://x")],
                "invalid database_url = 'mysql://x' (from TARS_DATABASE_URL): expected sqlite://PATH or postgres://",
            ),
            (
                &none,
                &[("TARS_REDIS_URL", "http://:hunter2@cache:6379")],
                "invalid redis_url = 'http://:***@cache:6379' (from TARS_REDIS_URL): expected redis://[:PASSWORD@]HOST[:PORT][/DB], or empty to run without Redis",
            ),
            (
                &none,
                &[("TARS_REDIS_PREFIX", "tars:prod")],
                "invalid redis_prefix = 'tars:prod' (from TARS_REDIS_PREFIX): expected letters, digits, _ and -",
            ),
        ];
        for (args, env, message) in cases {
            let err = format!("{:#}", load(args, env).unwrap_err());
            assert!(err.contains(message), "{err}");
        }
        let dir = std::env::temp_dir().join(format!("tars-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tars.toml");
        std::fs::write(&file, "max_concurent = 2\n").unwrap();
        let args = ConfigArgs {
            config: Some(file),
            ..ConfigArgs::default()
        };
        let err = format!("{:#}", load(&args, &[]).unwrap_err());
        assert!(
            err.contains("unknown configuration key 'max_concurent'; valid keys: port, host,"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn secrets_are_masked_never_echoed_and_have_no_flag() {
        let config = load(
            &ConfigArgs::with(&[("jwt_algorithm", "RS256")]),
            &[
                ("TARS_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
                ("TARS_ADMIN_PASSWORD", " pass phrase "),
                ("TARS_ACCESS_TOKEN_TTL", "60"),
            ],
        )
        .unwrap();
        assert_eq!(
            config.jwt_secret(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(
            config.admin_password(),
            Some(" pass phrase "),
            "not trimmed"
        );
        assert_eq!(config.jwt_algorithm(), "RS256");
        assert_eq!(config.access_token_ttl().as_secs(), 60);
        assert_eq!(config.refresh_token_ttl().as_secs(), 7 * 24 * 3600);
        assert_eq!(config.jwt_private_key_file(), None);
        let rows = config.rows();
        let row = |name: &str| rows.iter().find(|r| r[0] == name).unwrap().clone();
        assert_eq!(
            row("jwt_secret")[1..4],
            ["***", "TARS_JWT_SECRET", "TARS_JWT_SECRET"]
        );
        assert_eq!(row("admin_password")[1], "***");
        let unset = load(&ConfigArgs::default(), &[]).unwrap();
        assert_eq!(unset.jwt_secret(), None);
        assert_eq!(
            unset.rows().iter().find(|r| r[0] == "jwt_secret").unwrap()[1],
            ""
        );

        let err = format!(
            "{:#}",
            load(&ConfigArgs::default(), &[("TARS_JWT_ALGORITHM", "none")]).unwrap_err()
        );
        assert_eq!(
            err,
            "invalid jwt_algorithm = 'none' (from TARS_JWT_ALGORITHM): expected HS256 or RS256"
        );
        let err = format!(
            "{:#}",
            load(&ConfigArgs::default(), &[("TARS_JWT_SECRET", "")]).unwrap_err()
        );
        assert_eq!(
            err,
            "invalid jwt_secret (from TARS_JWT_SECRET): expected a non-empty value"
        );
        let command = <ConfigArgs as clap::Args>::augment_args(clap::Command::new("tars"));
        let flags: Vec<_> = command
            .get_arguments()
            .filter_map(|arg| arg.get_long())
            .collect();
        assert!(flags.contains(&"jwt-algorithm") && flags.contains(&"access-token-ttl"));
        assert!(!flags.contains(&"jwt-secret") && !flags.contains(&"admin-password"));
    }
}
