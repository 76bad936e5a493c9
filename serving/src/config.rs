//! The configuration of `encore-serve`, from four layers: built-in defaults,
//! a TOML file (`--config FILE`), `ENCORE__<KEY>` environment variables, then
//! command-line flags; each layer overrides the ones before it, key by key.
//!
//! Every key can be set in every layer under the same name: `watch_interval` in
//! the file, `ENCORE__WATCH_INTERVAL` in the environment, `--watch-interval` on
//! the command line. A typo never passes silently: an unknown key in the file,
//! an unknown `ENCORE__` variable or a value that does not parse stops the
//! start-up with an error naming the key, where it came from and the value.
//!
//! [`Config::load`] is pure apart from reading the file: the environment comes
//! in as pairs, so tests give their own instead of changing the process's.
//!
//! ```
//! use clap::Parser;
//! use encore_serving::config::{Cli, Config};
//!
//! let cli = Cli::try_parse_from(["encore-serve", "--model", "model/", "--workers", "2"]).unwrap();
//! let env = [("ENCORE__BIND".to_string(), "0.0.0.0:9000".to_string())];
//! let config = Config::load(&cli, env).unwrap();
//! assert_eq!(config.bind, "0.0.0.0:9000");
//! assert_eq!(config.workers.map(|n| n.get()), Some(2));
//! assert_eq!(config.origin("bind").to_string(), "environment variable ENCORE__BIND");
//! ```
//!
//! # Implementation notes
//!
//! Each layer is a [`Layer`] of optional values; [`Config::load`] applies them
//! in order over the defaults, remembering for every key the layer its value
//! came from ([`Origin`]), and only then checks the whole (exactly one of
//! `model` and `store`, a positive `watch_interval`), so that a check names the
//! layer that set the offending value.

use clap::{Parser, ValueEnum};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The prefix of the environment variables read as configuration.
pub const ENV_PREFIX: &str = "ENCORE__";

/// Default of `bind`: loopback. Without `api_keys` nothing is
/// authenticated, and `encore-serve` refuses any other address unless
/// `insecure_no_auth` is set.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// Default of `watch_interval`, in seconds.
pub const DEFAULT_WATCH_INTERVAL_SECS: f64 = 2.0;
/// Bounds of `watch_interval`, in seconds: shorter would spin a core on the
/// store's `CURRENT`, longer is a day.
pub const MIN_WATCH_INTERVAL_SECS: f64 = 0.01;
pub const MAX_WATCH_INTERVAL_SECS: f64 = 86_400.0;

/// Default of `shutdown_timeout`, in seconds.
pub const DEFAULT_SHUTDOWN_TIMEOUT_SECS: u64 = 10;

/// Default of `event_dedup_days`.
pub const DEFAULT_EVENT_DEDUP_DAYS: u32 = 7;

/// Default of `event_file_bytes`: a new event log file is started at 64 MiB.
pub const DEFAULT_EVENT_FILE_BYTES: u64 = encore_data::event_log::DEFAULT_MAX_FILE_BYTES;

/// Default of `event_retention_days`: 60 days, well above the idempotency
/// window (7 days) and an experiment of several weeks with its purchase
/// window; the server logs an exposure for every list it serves under an
/// experiment, so without a bound the log and the start-up read grow with
/// the traffic (docs/events.md, "Retention").
pub const DEFAULT_EVENT_RETENTION_DAYS: u32 = 60;

/// The smallest `event_file_bytes` accepted.
pub const MIN_EVENT_FILE_BYTES: u64 = 4096;

/// Default of `write_timeout`, in seconds: the longest a streamed answer
/// waits for its client to take the next part before it is cut short.
pub const DEFAULT_WRITE_TIMEOUT_SECS: u64 = 30;

/// Default of `request_timeout`, in seconds: the time a client has to send
/// a request's head (a connection that sends nothing in that time is closed).
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 5;

/// Default of `body_timeout`, in seconds: the time a client has to send a
/// request's whole body once its head is in.
pub const DEFAULT_BODY_TIMEOUT_SECS: u64 = 30;

/// Default of `max_connections`: open connections across all workers,
/// beyond which new ones wait in the listen backlog.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// Every key, in the order `--print-config` shows them.
pub const KEYS: [&str; 20] = [
    "model",
    "store",
    "api_keys",
    "insecure_no_auth",
    "cors_origins",
    "events",
    "event_dedup_days",
    "event_file_bytes",
    "event_retention_days",
    "experiments",
    "watch_interval",
    "bind",
    "workers",
    "max_pending",
    "shutdown_timeout",
    "request_timeout",
    "body_timeout",
    "write_timeout",
    "max_connections",
    "log_format",
];

/// The format of the log lines written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object a line, with the fields of the request span.
    Json,
}

/// Serve Encore recommendations over HTTP.
///
/// Every setting can also come from the `--config` file or an `ENCORE__<KEY>`
/// environment variable; flags win over variables, variables over the file.
#[derive(Debug, Default, Parser)]
#[command(name = "encore-serve", version, about)]
pub struct Cli {
    /// TOML file of settings (the keys are the flag names with `_` for `-`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration as TOML, each value's source in a
    /// comment, and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Model directory written by `encore-train fit --out`.
    #[arg(long, value_name = "DIR", conflicts_with = "store")]
    pub model: Option<PathBuf>,
    /// Model store written by `encore-train fit --store`: serves its CURRENT
    /// version and swaps in a new one when CURRENT moves.
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// API key file (TOML, keys stored as SHA-256): admin routes need an
    /// admin key, events a write key, customer data a read key (see
    /// docs/security.md). Read again on SIGHUP and by POST /v1/admin/reload.
    #[arg(long, value_name = "FILE")]
    pub api_keys: Option<PathBuf>,
    /// Listen beyond loopback without API keys: anyone who reaches the port
    /// may reload models, change experiments, post events and read every
    /// customer's data. Only for a trusted private network.
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// Origins (`https://shop.example`) whose web pages may call the API
    /// from a browser (CORS), comma-separated [default: none].
    #[arg(long, value_name = "ORIGINS", value_delimiter = ',')]
    pub cors_origins: Option<Vec<String>>,
    /// Event log directory: enables `POST /v1/events` (created if missing).
    #[arg(long, value_name = "DIR")]
    pub events: Option<PathBuf>,
    /// Days an event id is remembered: a posted event whose id came in that
    /// recently is a duplicate [default: 7].
    #[arg(long, value_name = "DAYS")]
    pub event_dedup_days: Option<NonZeroU32>,
    /// Size in bytes at which the event log starts a new file
    /// [default: 67108864, 64 MiB; at least 4096].
    #[arg(long, value_name = "BYTES")]
    pub event_file_bytes: Option<u64>,
    /// Days after which an event file is compacted to its purchases (its
    /// exposures and clicks dropped, the ids of the idempotency window kept
    /// in a checkpoint), so that start-up reads only this many days of the
    /// log; 0 keeps every file whole [default: 60].
    #[arg(long, value_name = "DAYS")]
    pub event_retention_days: Option<u32>,
    /// Experiments file (TOML `[[experiment]]` tables) to run on the
    /// recommendations list; `PUT /v1/admin/experiments` writes changes back
    /// to it. Read and checked at start.
    #[arg(long, value_name = "FILE")]
    pub experiments: Option<PathBuf>,
    /// How often to look at the store's CURRENT, in seconds [default: 2].
    #[arg(long, value_name = "SECS")]
    pub watch_interval: Option<f64>,
    /// Address to listen on [default: 127.0.0.1:8080]. Without `--api-keys`
    /// only a loopback address is accepted (or `--insecure-no-auth`).
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// HTTP worker threads [default: the number of CPU cores].
    #[arg(long, value_name = "N")]
    pub workers: Option<NonZeroUsize>,
    /// Scoring jobs that may be queued or running before new ones get 503
    /// [default: 64].
    #[arg(long, value_name = "N")]
    pub max_pending: Option<NonZeroUsize>,
    /// Seconds that requests in flight get to finish after SIGTERM or SIGINT
    /// [default: 10].
    #[arg(long, value_name = "SECS")]
    pub shutdown_timeout: Option<u64>,
    /// Seconds a client has to send a request's head [default: 5].
    #[arg(long, value_name = "SECS")]
    pub request_timeout: Option<u64>,
    /// Seconds a client has to send a request's body once its head is in
    /// [default: 30].
    #[arg(long, value_name = "SECS")]
    pub body_timeout: Option<u64>,
    /// Seconds a streamed answer (an audience) waits for its client to read
    /// on before it is cut short and lets its model go [default: 30].
    #[arg(long, value_name = "SECS")]
    pub write_timeout: Option<u64>,
    /// Open connections across all workers [default: 10000].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<NonZeroUsize>,
    /// Log line format on stderr; the level comes from `RUST_LOG`
    /// [default: text].
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
}

/// One layer of settings: what a file, the environment or the flags say,
/// `None` where they say nothing.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    pub model: Option<PathBuf>,
    pub store: Option<PathBuf>,
    pub api_keys: Option<PathBuf>,
    pub insecure_no_auth: Option<bool>,
    pub cors_origins: Option<Vec<String>>,
    pub events: Option<PathBuf>,
    pub event_dedup_days: Option<NonZeroU32>,
    pub event_file_bytes: Option<u64>,
    pub event_retention_days: Option<u32>,
    pub experiments: Option<PathBuf>,
    pub watch_interval: Option<f64>,
    pub bind: Option<String>,
    pub workers: Option<NonZeroUsize>,
    pub max_pending: Option<NonZeroUsize>,
    pub shutdown_timeout: Option<u64>,
    pub request_timeout: Option<u64>,
    pub body_timeout: Option<u64>,
    pub write_timeout: Option<u64>,
    pub max_connections: Option<NonZeroUsize>,
    pub log_format: Option<LogFormat>,
}

/// Where a key's value came from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Origin {
    /// Nothing set it: the built-in default.
    #[default]
    Default,
    /// The `--config` file.
    File(PathBuf),
    /// An `ENCORE__` environment variable (its name).
    Env(String),
    /// A command-line flag (its name, with the dashes).
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(path) => write!(f, "config file {}", path.display()),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// A configuration that cannot be used; the message names the key, its
/// source and the value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// Bad TOML, an unknown key or a value of the wrong type in the file.
    #[error("config file {}{}: {message}", path.display(), line.map(|l| format!(", line {l}")).unwrap_or_default())]
    File {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error(
        "unknown environment variable {var}: the {ENV_PREFIX} variables are {}",
        env_names().join(", ")
    )]
    UnknownEnv { var: String },
    #[error("environment variable {var} is not valid UTF-8")]
    EnvNotUtf8 { var: String },
    /// A value that does not parse, or is out of range.
    #[error("{key} = {value:?} from the {origin}: {problem}")]
    Value {
        key: &'static str,
        origin: Origin,
        value: String,
        problem: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// The settings `encore-serve` runs with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    /// Model directory to serve (exactly one of `model` and `store` is set).
    pub model: Option<PathBuf>,
    /// Model store whose CURRENT version to serve and follow.
    pub store: Option<PathBuf>,
    /// API key file.
    pub api_keys: Option<PathBuf>,
    /// Listen beyond loopback without keys.
    pub insecure_no_auth: bool,
    /// Origins whose web pages may call the API (CORS).
    pub cors_origins: Vec<String>,
    /// Event log directory (`POST /v1/events`); `None`: events are disabled.
    pub events: Option<PathBuf>,
    /// Days an event id is remembered for idempotency.
    pub event_dedup_days: NonZeroU32,
    /// Size at which the event log starts a new file, in bytes.
    pub event_file_bytes: u64,
    /// Days after which an event file is compacted; 0: never.
    pub event_retention_days: u32,
    /// Experiments file; `None`: no experiment runs until one is `PUT`
    /// (and admin changes last until the server stops).
    pub experiments: Option<PathBuf>,
    /// Seconds between two looks at the store's CURRENT.
    pub watch_interval: f64,
    /// Address to listen on.
    pub bind: String,
    /// HTTP worker threads (`None`: one per CPU core).
    pub workers: Option<NonZeroUsize>,
    /// Scoring jobs queued or running before new ones get 503.
    pub max_pending: NonZeroUsize,
    /// Seconds requests in flight get after a stop signal.
    pub shutdown_timeout: u64,
    /// Seconds a client has to send a request's head.
    pub request_timeout: u64,
    /// Seconds a client has to send a request's body.
    pub body_timeout: u64,
    /// Seconds a streamed answer waits for its client to read on.
    pub write_timeout: u64,
    /// Open connections across all workers.
    pub max_connections: NonZeroUsize,
    /// Log line format.
    pub log_format: LogFormat,
    #[serde(skip)]
    origins: BTreeMap<&'static str, Origin>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            model: None,
            store: None,
            api_keys: None,
            insecure_no_auth: false,
            cors_origins: Vec::new(),
            events: None,
            event_dedup_days: NonZeroU32::new(DEFAULT_EVENT_DEDUP_DAYS)
                .expect("the default is not zero"),
            event_file_bytes: DEFAULT_EVENT_FILE_BYTES,
            event_retention_days: DEFAULT_EVENT_RETENTION_DAYS,
            experiments: None,
            watch_interval: DEFAULT_WATCH_INTERVAL_SECS,
            bind: DEFAULT_BIND.to_string(),
            workers: None,
            max_pending: NonZeroUsize::new(crate::limits::DEFAULT_MAX_PENDING_SCORING)
                .expect("the default is not zero"),
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT_SECS,
            request_timeout: DEFAULT_REQUEST_TIMEOUT_SECS,
            body_timeout: DEFAULT_BODY_TIMEOUT_SECS,
            write_timeout: DEFAULT_WRITE_TIMEOUT_SECS,
            max_connections: NonZeroUsize::new(DEFAULT_MAX_CONNECTIONS)
                .expect("the default is not zero"),
            log_format: LogFormat::Text,
            origins: BTreeMap::new(),
        }
    }
}

/// Whether `o` is a browser origin: `http` or `https`, `://`, a host and an
/// optional port, nothing else.
fn is_origin(o: &str) -> bool {
    let rest = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"));
    rest.is_some_and(|host| {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
    })
}

/// The environment variable of `key`: `watch_interval` -> `ENCORE__WATCH_INTERVAL`.
pub fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
}

fn env_names() -> Vec<String> {
    KEYS.iter().map(|k| env_name(k)).collect()
}

/// Keeps the `ENCORE__` variables of a process environment (as from
/// `std::env::vars_os()`), refusing one whose name or value is not UTF-8.
pub fn env_vars(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let prefix = ENV_PREFIX.as_bytes();
    let mut out = Vec::new();
    for (name, value) in vars {
        if !name.as_encoded_bytes().starts_with(prefix) {
            continue;
        }
        let lossy = name.to_string_lossy().into_owned();
        match (name.into_string(), value.into_string()) {
            (Ok(name), Ok(value)) => out.push((name, value)),
            _ => return Err(ConfigError::EnvNotUtf8 { var: lossy }),
        }
    }
    Ok(out)
}

impl Layer {
    /// The settings of a TOML text; `path` is only for the error messages.
    pub fn from_toml(text: &str, path: &Path) -> Result<Layer, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let line = e.span().map(|span| {
                let before = &text.as_bytes()[..span.start.min(text.len())];
                before.iter().filter(|&&b| b == b'\n').count() + 1
            });
            let message = e.message().trim().replace('\n', "; ");
            // The line itself names the key of a value that does not parse.
            let snippet = line
                .and_then(|l| text.lines().nth(l - 1))
                .map(str::trim)
                .filter(|s| !s.is_empty() && s.len() <= 120);
            ConfigError::File {
                path: path.to_path_buf(),
                line,
                message: match snippet {
                    Some(s) if !message.contains("unknown field") => format!("`{s}`: {message}"),
                    _ => message,
                },
            }
        })
    }

    /// The settings of the `ENCORE__` variables among `env`; any other
    /// variable is ignored, an unknown `ENCORE__` one is an error.
    pub fn from_env(env: impl IntoIterator<Item = (String, String)>) -> Result<Layer, ConfigError> {
        let mut layer = Layer::default();
        for (var, value) in env {
            let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let key = KEYS
                .iter()
                .copied()
                .find(|k| k.to_ascii_uppercase() == rest)
                .ok_or_else(|| ConfigError::UnknownEnv { var: var.clone() })?;
            let origin = Origin::Env(var.clone());
            layer.set(key, &value, origin)?;
        }
        Ok(layer)
    }

    /// The settings given as flags.
    pub fn from_cli(cli: &Cli) -> Layer {
        Layer {
            model: cli.model.clone(),
            store: cli.store.clone(),
            api_keys: cli.api_keys.clone(),
            insecure_no_auth: cli.insecure_no_auth.then_some(true),
            cors_origins: cli.cors_origins.clone(),
            events: cli.events.clone(),
            event_dedup_days: cli.event_dedup_days,
            event_file_bytes: cli.event_file_bytes,
            event_retention_days: cli.event_retention_days,
            experiments: cli.experiments.clone(),
            watch_interval: cli.watch_interval,
            bind: cli.bind.clone(),
            workers: cli.workers,
            max_pending: cli.max_pending,
            shutdown_timeout: cli.shutdown_timeout,
            request_timeout: cli.request_timeout,
            body_timeout: cli.body_timeout,
            write_timeout: cli.write_timeout,
            max_connections: cli.max_connections,
            log_format: cli.log_format,
        }
    }

    /// Sets `key` from its text form, as an environment variable gives it.
    fn set(&mut self, key: &'static str, value: &str, origin: Origin) -> Result<(), ConfigError> {
        let bad = |problem: &str| ConfigError::Value {
            key,
            origin: origin.clone(),
            value: value.to_string(),
            problem: problem.to_string(),
        };
        let path = || {
            if value.is_empty() {
                Err(bad("expected a path, not an empty value"))
            } else {
                Ok(Some(PathBuf::from(value)))
            }
        };
        const SECONDS: &str = "expected a whole number of seconds";
        const ABOVE_ZERO: &str = "expected a whole number above 0";
        fn number<T: FromStr>(
            value: &str,
            bad: impl FnOnce() -> ConfigError,
        ) -> Result<Option<T>, ConfigError> {
            value.trim().parse().map(Some).map_err(|_| bad())
        }
        match key {
            "model" => self.model = path()?,
            "store" => self.store = path()?,
            "api_keys" => self.api_keys = path()?,
            "insecure_no_auth" => {
                self.insecure_no_auth = Some(match value.trim() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(bad("expected true or false")),
                });
            }
            "cors_origins" => {
                self.cors_origins = Some(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|o| !o.is_empty())
                        .map(str::to_string)
                        .collect(),
                );
            }
            "events" => self.events = path()?,
            "event_dedup_days" => {
                self.event_dedup_days =
                    number(value, || bad("expected a whole number of days above 0"))?
            }
            "event_file_bytes" => {
                self.event_file_bytes = number(value, || bad("expected a whole number of bytes"))?
            }
            "event_retention_days" => {
                self.event_retention_days =
                    number(value, || bad("expected a whole number of days (0: never)"))?
            }
            "experiments" => self.experiments = path()?,
            "watch_interval" => {
                self.watch_interval = number(value, || bad("expected a number of seconds"))?
            }
            "bind" => {
                if value.trim().is_empty() {
                    return Err(bad("expected an address such as 127.0.0.1:8080"));
                }
                self.bind = Some(value.trim().to_string());
            }
            "workers" => self.workers = number(value, || bad(ABOVE_ZERO))?,
            "max_pending" => self.max_pending = number(value, || bad(ABOVE_ZERO))?,
            "shutdown_timeout" => self.shutdown_timeout = number(value, || bad(SECONDS))?,
            "request_timeout" => self.request_timeout = number(value, || bad(SECONDS))?,
            "body_timeout" => self.body_timeout = number(value, || bad(SECONDS))?,
            "write_timeout" => self.write_timeout = number(value, || bad(SECONDS))?,
            "max_connections" => self.max_connections = number(value, || bad(ABOVE_ZERO))?,
            "log_format" => {
                self.log_format = Some(
                    LogFormat::from_str(value.trim(), true)
                        .map_err(|_| bad("expected text or json"))?,
                );
            }
            _ => unreachable!("set is only called with a key of KEYS"),
        }
        Ok(())
    }
}

impl Config {
    /// Merges defaults, the `--config` file of `cli`, the `ENCORE__` variables
    /// of `env` and the flags of `cli`, in this order, and checks the result.
    pub fn load(
        cli: &Cli,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        if let Some(path) = &cli.config {
            let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
                path: path.clone(),
                error,
            })?;
            config.apply(Layer::from_toml(&text, path)?, |_| {
                Origin::File(path.clone())
            });
        }
        config.apply(Layer::from_env(env)?, |key| Origin::Env(env_name(key)));
        config.apply(Layer::from_cli(cli), |key| {
            Origin::Flag(format!("--{}", key.replace('_', "-")))
        });
        config.check()?;
        Ok(config)
    }

    /// The source of `key`'s value ([`Origin::Default`] for an unknown key).
    pub fn origin(&self, key: &str) -> &Origin {
        static DEFAULT: Origin = Origin::Default;
        self.origins.get(key).unwrap_or(&DEFAULT)
    }

    /// Overrides every key `layer` sets.
    pub fn apply(&mut self, layer: Layer, origin: impl Fn(&'static str) -> Origin) {
        // `model` and `store` are two names of the one model source: a layer
        // naming either replaces what an earlier layer said about both. Every
        // other field given overrides on its own. The destructuring names
        // every field, so a new one cannot be forgotten here.
        macro_rules! take {
            ($($field:ident),*) => {
                let Layer { model, store, $($field),* } = layer;
                let mut set = |key: &'static str, given: bool| {
                    if given {
                        self.origins.insert(key, origin(key));
                    }
                    given
                };
                if set("model", model.is_some()) | set("store", store.is_some()) {
                    self.origins.retain(|k, _| {
                        !((*k == "model" && model.is_none()) || (*k == "store" && store.is_none()))
                    });
                    self.model = model;
                    self.store = store;
                }
                $(
                    if let Some(v) = $field {
                        self.origins.insert(stringify!($field), origin(stringify!($field)));
                        self.$field = v.into();
                    }
                )*
            };
        }
        take!(
            api_keys,
            insecure_no_auth,
            cors_origins,
            events,
            event_dedup_days,
            event_file_bytes,
            event_retention_days,
            experiments,
            watch_interval,
            bind,
            workers,
            max_pending,
            shutdown_timeout,
            request_timeout,
            body_timeout,
            write_timeout,
            max_connections,
            log_format
        );
    }

    fn check(&self) -> Result<(), ConfigError> {
        match (&self.model, &self.store) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid(format!(
                    "give only one of model (from the {}) and store (from the {})",
                    self.origin("model"),
                    self.origin("store"),
                )));
            }
            (None, None) => {
                return Err(ConfigError::Invalid(
                    "no model to serve: give --model DIR or --store DIR (or model or store in \
                     the --config file, or ENCORE__MODEL or ENCORE__STORE)"
                        .to_string(),
                ));
            }
            _ => {}
        }
        if !(MIN_WATCH_INTERVAL_SECS..=MAX_WATCH_INTERVAL_SECS).contains(&self.watch_interval) {
            return Err(ConfigError::Value {
                key: "watch_interval",
                origin: self.origin("watch_interval").clone(),
                value: self.watch_interval.to_string(),
                problem: format!(
                    "must be {MIN_WATCH_INTERVAL_SECS} to {MAX_WATCH_INTERVAL_SECS} seconds"
                ),
            });
        }
        for (key, secs) in [
            ("request_timeout", self.request_timeout),
            ("body_timeout", self.body_timeout),
            ("write_timeout", self.write_timeout),
        ] {
            if !(1..=3600).contains(&secs) {
                return Err(ConfigError::Value {
                    key,
                    origin: self.origin(key).clone(),
                    value: secs.to_string(),
                    problem: "must be 1 to 3600 seconds".to_string(),
                });
            }
        }
        if self.event_file_bytes < MIN_EVENT_FILE_BYTES {
            return Err(ConfigError::Value {
                key: "event_file_bytes",
                origin: self.origin("event_file_bytes").clone(),
                value: self.event_file_bytes.to_string(),
                problem: format!("must be at least {MIN_EVENT_FILE_BYTES} bytes"),
            });
        }
        if let Some(bad) = self.cors_origins.iter().find(|o| !is_origin(o)) {
            return Err(ConfigError::Value {
                key: "cors_origins",
                origin: self.origin("cors_origins").clone(),
                value: bad.clone(),
                problem: "an origin is a scheme and a host, with an optional port and no \
                          path: https://shop.example or http://localhost:3000 (no *)"
                    .to_string(),
            });
        }
        Ok(())
    }

    /// Refuses to listen on `addrs` if one is beyond loopback while no API
    /// keys are given, unless `insecure_no_auth` says the network is trusted.
    pub fn check_exposure(&self, addrs: &[std::net::SocketAddr]) -> Result<(), ConfigError> {
        if self.api_keys.is_some() || self.insecure_no_auth {
            return Ok(());
        }
        match addrs.iter().find(|a| !a.ip().is_loopback()) {
            None => Ok(()),
            Some(open) => Err(ConfigError::Invalid(format!(
                "refusing to listen on {open} (bind = {:?}, from the {}) without API keys: \
                 anyone who can reach it could reload models, change experiments, post \
                 events and read every customer's data. Give --api-keys FILE (see \
                 docs/security.md), bind to a loopback address such as 127.0.0.1:8080, or, \
                 on a trusted private network only, pass --insecure-no-auth",
                self.bind,
                self.origin("bind")
            ))),
        }
    }

    /// The configuration as TOML that `--config` reads back, each key's
    /// source in a comment; keys left unset are listed as comments.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        let text = toml::to_string(self).map_err(|e| {
            ConfigError::Invalid(format!("cannot write the configuration as TOML: {e}"))
        })?;
        let mut out = String::new();
        for key in &KEYS {
            let line = text
                .lines()
                .find(|l| l.split_once(" = ").is_some_and(|(k, _)| k == *key));
            match line {
                Some(line) => out.push_str(&format!("{line}  # {}\n", self.origin(key))),
                None => out.push_str(&format!("# {key} is not set\n")),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        let mut all = vec!["encore-serve"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).expect("flags parse")
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serve.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn defaults_apply_when_nothing_is_said() {
        let c = Config::load(&cli(&["--model", "m"]), env(&[])).unwrap();
        assert_eq!(c.model, Some(PathBuf::from("m")));
        assert_eq!(c.bind, DEFAULT_BIND);
        assert_eq!(c.watch_interval, DEFAULT_WATCH_INTERVAL_SECS);
        assert_eq!(c.shutdown_timeout, DEFAULT_SHUTDOWN_TIMEOUT_SECS);
        assert_eq!(c.event_dedup_days.get(), DEFAULT_EVENT_DEDUP_DAYS);
        // Retention is on, well past the idempotency window (docs/events.md).
        assert_eq!(c.event_retention_days, 60);
        assert!(c.event_retention_days > 4 * c.event_dedup_days.get());
        assert_eq!(
            c.max_pending.get(),
            crate::limits::DEFAULT_MAX_PENDING_SCORING
        );
        assert_eq!(c.workers, None);
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.origin("bind"), &Origin::Default);
        assert_eq!(c.origin("model"), &Origin::Flag("--model".into()));
    }

    #[test]
    fn each_layer_overrides_the_one_before() {
        let (_dir, path) = file(
            "store = \"s\"\nbind = \"file:1\"\nworkers = 3\nmax_pending = 7\n\
             watch_interval = 5\nlog_format = \"json\"\nshutdown_timeout = 4\n",
        );
        let path_s = path.to_str().unwrap();
        let e = env(&[
            ("ENCORE__BIND", "env:2"),
            ("ENCORE__WORKERS", "4"),
            ("ENCORE__SHUTDOWN_TIMEOUT", "30"),
            ("PATH", "/usr/bin"),
            ("ENCORE_ALS_SIMD", "generic"),
        ]);
        let c = Config::load(&cli(&["--config", path_s, "--workers", "5"]), e).unwrap();
        assert_eq!(c.store, Some(PathBuf::from("s")));
        assert_eq!(c.bind, "env:2");
        assert_eq!(c.workers.map(NonZeroUsize::get), Some(5));
        assert_eq!(c.max_pending.get(), 7);
        assert_eq!(c.watch_interval, 5.0);
        assert_eq!(c.shutdown_timeout, 30);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.origin("store"), &Origin::File(path.clone()));
        assert_eq!(c.origin("bind"), &Origin::Env("ENCORE__BIND".into()));
        assert_eq!(c.origin("workers"), &Origin::Flag("--workers".into()));
        assert_eq!(c.origin("api_keys"), &Origin::Default);
    }

    /// docs/configuration.md's table has a row for every key, with its
    /// flag and its environment variable.
    #[test]
    fn every_key_is_documented() {
        let doc = include_str!("../../docs/configuration.md");
        for key in KEYS {
            let row = doc
                .lines()
                .find(|l| l.starts_with(&format!("| `{key}`")))
                .unwrap_or_else(|| panic!("docs/configuration.md has no row for `{key}`"));
            let flag = format!("`--{}", key.replace('_', "-"));
            assert!(row.contains(&flag), "{key}: no {flag} in {row}");
            assert!(row.contains(&env_name(key)), "{key}: no variable in {row}");
        }
    }

    #[test]
    fn every_key_can_be_set_in_every_layer() {
        // Each key a value that differs from the default, in one layer at a time.
        let values = [
            ("model", "m2"),
            ("api_keys", "keys.toml"),
            ("insecure_no_auth", "true"),
            ("cors_origins", "https://shop.example"),
            ("events", "events/"),
            ("event_dedup_days", "30"),
            ("event_file_bytes", "65536"),
            ("event_retention_days", "30"),
            ("experiments", "experiments.toml"),
            ("watch_interval", "0.5"),
            ("bind", "0.0.0.0:9"),
            ("workers", "9"),
            ("max_pending", "11"),
            ("shutdown_timeout", "1"),
            ("request_timeout", "9"),
            ("body_timeout", "8"),
            ("write_timeout", "7"),
            ("max_connections", "77"),
            ("log_format", "json"),
        ];
        let check = |c: &Config, key: &str, origin: &Origin| {
            assert_eq!(c.origin(key), origin, "{key}");
            let shown = c.to_toml().unwrap();
            assert!(shown.contains(&format!("  # {origin}")), "{key}: {shown}");
        };
        for (key, value) in values {
            let toml_value = match key {
                "watch_interval"
                | "workers"
                | "max_pending"
                | "shutdown_timeout"
                | "event_dedup_days"
                | "request_timeout"
                | "body_timeout"
                | "max_connections"
                | "write_timeout"
                | "event_file_bytes"
                | "event_retention_days"
                | "insecure_no_auth" => value.to_string(),
                "cors_origins" => format!("[{value:?}]"),
                _ => format!("{value:?}"),
            };
            let base = if key == "model" {
                ""
            } else {
                "model = \"m\"\n"
            };
            let (_dir, path) = file(&format!("{base}{key} = {toml_value}\n"));
            let c = Config::load(&cli(&["--config", path.to_str().unwrap()]), env(&[])).unwrap();
            check(&c, key, &Origin::File(path.clone()));

            let var = env_name(key);
            let c = Config::load(
                &cli(if key == "model" {
                    &[]
                } else {
                    &["--model", "m"]
                }),
                env(&[(var.as_str(), value)]),
            )
            .unwrap();
            check(&c, key, &Origin::Env(var.clone()));

            let flag = format!("--{}", key.replace('_', "-"));
            let mut args = vec![flag.as_str()];
            if key != "insecure_no_auth" {
                args.push(value);
            }
            if key != "model" {
                args.extend(["--model", "m"]);
            }
            let c = Config::load(&cli(&args), env(&[])).unwrap();
            check(&c, key, &Origin::Flag(flag.clone()));
        }
        // store conflicts with model, so it gets its own round.
        let (_dir, path) = file("store = \"s\"\n");
        let c = Config::load(&cli(&["--config", path.to_str().unwrap()]), env(&[])).unwrap();
        assert_eq!(c.store, Some(PathBuf::from("s")));
        let c = Config::load(&cli(&[]), env(&[("ENCORE__STORE", "s")])).unwrap();
        assert_eq!(c.origin("store"), &Origin::Env("ENCORE__STORE".into()));
        let c = Config::load(&cli(&["--store", "s"]), env(&[])).unwrap();
        assert_eq!(c.origin("store"), &Origin::Flag("--store".into()));
    }

    #[test]
    fn a_later_layer_naming_model_replaces_an_earlier_store() {
        let (_dir, path) = file("store = \"s\"\n");
        let p = path.to_str().unwrap();
        let c = Config::load(&cli(&["--config", p]), env(&[("ENCORE__MODEL", "m")])).unwrap();
        assert_eq!(
            (c.model.as_deref(), c.store.as_deref()),
            (Some(Path::new("m")), None)
        );
        assert_eq!(c.origin("store"), &Origin::Default);
        // ... but one layer naming both is refused, naming both sources.
        let err = Config::load(
            &cli(&[]),
            env(&[("ENCORE__MODEL", "m"), ("ENCORE__STORE", "s")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("ENCORE__MODEL") && err.contains("ENCORE__STORE"),
            "{err}"
        );
    }

    #[test]
    fn no_model_source_is_an_error() {
        let err = Config::load(&cli(&[]), env(&[])).unwrap_err().to_string();
        assert!(err.contains("--model") && err.contains("--store"), "{err}");
    }

    #[test]
    fn an_unknown_encore_variable_is_an_error_naming_it() {
        let err = Config::load(&cli(&["--model", "m"]), env(&[("ENCORE__BIND_TYPO", "1")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("ENCORE__BIND_TYPO"), "{err}");
        assert!(err.contains("ENCORE__BIND,"), "lists the known ones: {err}");
        // Keys are upper case only, and sections are not a thing here.
        for var in ["ENCORE__bind", "ENCORE__LOG__FORMAT", "ENCORE__"] {
            let err = Config::load(&cli(&["--model", "m"]), env(&[(var, "x")])).unwrap_err();
            assert!(
                matches!(err, ConfigError::UnknownEnv { .. }),
                "{var}: {err}"
            );
        }
    }

    #[test]
    fn a_bad_variable_value_names_the_variable_and_the_value() {
        for (var, value) in [
            ("ENCORE__WATCH_INTERVAL", "soon"),
            ("ENCORE__WORKERS", "0"),
            ("ENCORE__MAX_PENDING", "-1"),
            ("ENCORE__SHUTDOWN_TIMEOUT", "1.5"),
            ("ENCORE__LOG_FORMAT", "yaml"),
            ("ENCORE__BIND", " "),
            ("ENCORE__API_KEYS", ""),
        ] {
            let err = Config::load(&cli(&["--model", "m"]), env(&[(var, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(var), "{err}");
            assert!(err.contains(&format!("{value:?}")), "{err}");
        }
    }

    #[test]
    fn a_bad_watch_interval_names_its_source() {
        let err = Config::load(
            &cli(&["--model", "m"]),
            env(&[("ENCORE__WATCH_INTERVAL", "-2")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("watch_interval") && err.contains("ENCORE__WATCH_INTERVAL"),
            "{err}"
        );
        let err = Config::load(&cli(&["--model", "m", "--watch-interval", "0"]), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--watch-interval"), "{err}");
        // Out of range either way (1e30 s used to panic at start, 1e-300 s
        // to spin a core).
        for value in ["1e30", "1e-300", "inf", "NaN"] {
            let err = Config::load(
                &cli(&["--model", "m"]),
                env(&[("ENCORE__WATCH_INTERVAL", value)]),
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains("watch_interval"), "{value}: {err}");
        }
        assert!(
            Config::load(
                &cli(&["--model", "m", "--watch-interval", "0.01"]),
                env(&[])
            )
            .is_ok()
        );
    }

    #[test]
    fn an_unknown_file_key_names_the_key_file_and_line() {
        let (_dir, path) = file("model = \"m\"\n\nbindd = \"0.0.0.0:1\"\n");
        let err = Config::load(&cli(&["--config", path.to_str().unwrap()]), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bindd"), "{err}");
        assert!(err.contains(path.to_str().unwrap()), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn a_bad_file_value_names_the_key_and_the_value() {
        let (_dir, path) = file("model = \"m\"\nworkers = 0\n");
        let err = Config::load(&cli(&["--config", path.to_str().unwrap()]), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 2") && err.contains("workers = 0"),
            "{err}"
        );
        let (_dir, path) = file("model = \"m\"\nlog_format = \"yaml\"\n");
        let err = Config::load(&cli(&["--config", path.to_str().unwrap()]), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("log_format") && err.contains("yaml"), "{err}");
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let err = Config::load(&cli(&["--config", "/nonexistent/serve.toml"]), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/serve.toml"), "{err}");
    }

    #[test]
    fn printed_config_reads_back_the_same() {
        let c = Config::load(
            &cli(&["--store", "s", "--workers", "3", "--log-format", "json"]),
            env(&[("ENCORE__WATCH_INTERVAL", "0.25")]),
        )
        .unwrap();
        let text = c.to_toml().unwrap();
        assert!(text.contains("# model is not set"), "{text}");
        assert!(
            text.contains("watch_interval = 0.25  # environment variable ENCORE__WATCH_INTERVAL"),
            "{text}"
        );
        let (_dir, path) = file(&text);
        let back = Config::load(&cli(&["--config", path.to_str().unwrap()]), env(&[])).unwrap();
        assert_eq!(
            (
                back.store,
                back.workers,
                back.log_format,
                back.watch_interval
            ),
            (c.store, c.workers, c.log_format, c.watch_interval)
        );
    }

    #[test]
    fn env_vars_keeps_only_encore_variables() {
        let vars = [
            (OsString::from("HOME"), OsString::from("/root")),
            (OsString::from("ENCORE__BIND"), OsString::from("x:1")),
        ];
        assert_eq!(
            env_vars(vars).unwrap(),
            vec![("ENCORE__BIND".to_string(), "x:1".to_string())]
        );
    }

    #[test]
    fn security_and_connection_defaults() {
        let c = Config::load(&cli(&["--model", "m"]), env(&[])).unwrap();
        assert!(!c.insecure_no_auth);
        assert!(c.cors_origins.is_empty());
        assert_eq!(c.request_timeout, DEFAULT_REQUEST_TIMEOUT_SECS);
        assert_eq!(c.body_timeout, DEFAULT_BODY_TIMEOUT_SECS);
        assert_eq!(c.max_connections.get(), DEFAULT_MAX_CONNECTIONS);
        let c = Config::load(
            &cli(&[
                "--model",
                "m",
                "--cors-origins",
                "https://a.example,http://localhost:3000",
            ]),
            env(&[]),
        )
        .unwrap();
        assert_eq!(
            c.cors_origins,
            ["https://a.example", "http://localhost:3000"]
        );
        for bad in [
            "*",
            "https://a.example/",
            "a.example",
            "https://a.example/path",
        ] {
            let err = Config::load(&cli(&["--model", "m", "--cors-origins", bad]), env(&[]))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("cors_origins") && err.contains("--cors-origins"),
                "{err}"
            );
        }
        let err = Config::load(&cli(&["--model", "m", "--request-timeout", "0"]), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("request_timeout"), "{err}");
    }

    /// Without keys only loopback is accepted; the refusal names the flags
    /// that change that.
    #[test]
    fn no_keys_means_loopback_only() {
        let v4 = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        let open =
            Config::load(&cli(&["--model", "m", "--bind", "0.0.0.0:8080"]), env(&[])).unwrap();
        let err = open
            .check_exposure(&[v4("0.0.0.0:8080")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--api-keys")
                && err.contains("--insecure-no-auth")
                && err.contains("flag --bind"),
            "{err}"
        );
        assert!(open.check_exposure(&[v4("192.168.1.4:80")]).is_err());
        assert!(open.check_exposure(&[v4("[::]:80")]).is_err());
        assert!(open.check_exposure(&[v4("127.0.0.1:8080")]).is_ok());
        assert!(open.check_exposure(&[v4("[::1]:8080")]).is_ok());
        assert!(
            open.check_exposure(&[v4("127.0.0.1:1"), v4("10.0.0.1:1")])
                .is_err()
        );
        let keyed = Config::load(
            &cli(&[
                "--model",
                "m",
                "--bind",
                "0.0.0.0:8080",
                "--api-keys",
                "k.toml",
            ]),
            env(&[]),
        )
        .unwrap();
        assert!(keyed.check_exposure(&[v4("0.0.0.0:8080")]).is_ok());
        let trusted = Config::load(
            &cli(&["--model", "m", "--bind", "0.0.0.0:8080"]),
            env(&[("ENCORE__INSECURE_NO_AUTH", "true")]),
        )
        .unwrap();
        assert!(trusted.check_exposure(&[v4("0.0.0.0:8080")]).is_ok());
    }
}
