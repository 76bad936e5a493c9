//! `encore-serve`: serves a model directory written by `encore-train` over HTTP.
//!
//! ```text
//! encore-serve --model model/ [--bind 127.0.0.1:8080] [--workers N] [--max-pending N]
//! encore-serve --store store/ [--watch-interval 2] [...]
//! encore-serve --config serve.toml [--print-config]
//! encore-serve --model model/ --events events/ --experiments experiments.toml
//! ```
//!
//! Settings come from defaults, then the `--config` TOML file, then
//! `ENCORE__<KEY>` environment variables, then flags (see
//! [`encore_serving::config`]); `--print-config` shows the result and exits.
//!
//! Logs go to stderr as text or, with `--log-format json`, one JSON object a
//! line, filtered by `RUST_LOG` (default `info,hnsw_rs=warn,actix_server=warn`).
//! Every line logged while a request is
//! handled carries its `request_id`. Example `curl` lines for the loaded model
//! go to stdout.
//!
//! SIGTERM or SIGINT stops accepting connections and gives requests in flight
//! `shutdown_timeout` seconds to finish; a second signal exits at once.
//! SIGHUP reads the API key file again.
//!
//! Without `--api-keys` the server listens on loopback only: any other
//! address stops the start-up, unless `--insecure-no-auth` is given.

use actix_web::{HttpServer, web};
use anyhow::Context;
use clap::Parser;
use encore_model::artifact::store::Store;
use encore_serving::config::{Cli, Config, LogFormat, env_vars};
use encore_serving::state::{ModelSource, spawn_store_watcher};
use encore_serving::{AppState, create_app, curl};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use tracing_subscriber::EnvFilter;

/// The log filter without `RUST_LOG`: `hnsw_rs` narrates every index load at
/// info, and `actix_server` repeats the listening and shutdown lines.
const DEFAULT_LOG_FILTER: &str = "info,hnsw_rs=warn,actix_server=warn";

/// Most malloc arenas the server's threads share (see [`tune_malloc`]).
const MALLOC_ARENAS: i32 = 2;

/// How often free memory in malloc's arenas goes back to the system.
const TRIM_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// glibc's malloc after a burst of connections (slow clients, floods): a
/// thread that finds the arenas busy gets an arena of its own (up to 8 per
/// core), and an arena gives freed memory back to the system only from its
/// top, so each worker's arena kept the peak of the burst's buffers and
/// resident memory rose with the first bursts and stayed there. So, before
/// any other thread exists, the arenas are capped at [`MALLOC_ARENAS`]
/// (small allocations go through glibc's per-thread caches first, so few
/// arenas cost little waiting), and a thread calls `malloc_trim` every
/// [`TRIM_INTERVAL`], which gives the free pages inside every arena back
/// (it walks only the free chunks). `MALLOC_ARENA_MAX` in the environment,
/// read by glibc itself, decides the cap instead. Elsewhere (not glibc)
/// this does nothing.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        const M_ARENA_MAX: std::ffi::c_int = -8;
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            // SAFETY: mallopt only changes a malloc parameter; M_ARENA_MAX
            // takes any positive count, and only the main thread runs yet.
            unsafe {
                mallopt(M_ARENA_MAX, MALLOC_ARENAS);
            }
        }
        let spawned = std::thread::Builder::new()
            .name("encore-malloc-trim".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(TRIM_INTERVAL);
                    // SAFETY: malloc_trim only returns free memory of glibc's
                    // arenas to the kernel; it takes their locks itself.
                    unsafe {
                        malloc_trim(0);
                    }
                }
            });
        if let Err(e) = spawned {
            eprintln!(
                "warning: no malloc trim thread ({e}); memory freed after bursts stays in malloc's arenas"
            );
        }
    }
}

fn main() -> std::process::ExitCode {
    tune_malloc();
    actix_web::rt::System::new().block_on(run())
}

async fn run() -> std::process::ExitCode {
    match serve().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Each error says its cause in its message (see encore_data):
            // the chain, one cause after another, says each once.
            eprintln!("Error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(&cli, env_vars(std::env::vars_os())?)?;
    if cli.print_config {
        print!("{}", config.to_toml()?);
        return Ok(());
    }
    init_logs(config.log_format);

    // Resolved first, so that an address beyond loopback without keys is
    // refused before the model loads and before anything listens on it.
    let addrs: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(config.bind.as_str())
        .with_context(|| {
            format!(
                "cannot resolve {} (bind, from the {})",
                config.bind,
                config.origin("bind")
            )
        })?
        .collect();
    config.check_exposure(&addrs)?;

    let source = match (&config.model, &config.store) {
        (Some(dir), _) => ModelSource::Dir(dir.clone()),
        (None, Some(dir)) => ModelSource::Store(
            Store::open_existing(dir)
                .with_context(|| format!("cannot open the model store {}", dir.display()))?,
        ),
        (None, None) => unreachable!("Config::load checks that one is given"),
    };
    let state = AppState::load_from(source.clone())
        .with_context(|| match &source {
            ModelSource::Dir(dir) => format!("cannot load the model {}", dir.display()),
            ModelSource::Store(store) => format!(
                "cannot load the current model of the store {}",
                store.root().display()
            ),
        })?
        .with_max_pending_scoring(config.max_pending.get());
    let state = match &config.api_keys {
        Some(path) => state.with_api_keys_file(path)?,
        None => state,
    }
    .with_cors_origins(config.cors_origins.clone())
    .with_body_timeout(std::time::Duration::from_secs(config.body_timeout))
    .with_write_timeout(std::time::Duration::from_secs(config.write_timeout));
    let state = match &config.events {
        Some(dir) => state
            .with_event_log(
                dir,
                encore_data::event_log::EventLogOptions {
                    dedup_window_secs: i64::from(config.event_dedup_days.get()) * 86_400,
                    max_file_bytes: config.event_file_bytes,
                    retention_secs: (config.event_retention_days > 0)
                        .then(|| i64::from(config.event_retention_days) * 86_400),
                },
            )
            .with_context(|| format!("cannot open the event log {}", dir.display()))?,
        None => state,
    };
    // A bad file stops the start, naming the file, experiment, variant and key.
    let state = match &config.experiments {
        Some(path) => state.with_experiments_file(path)?,
        None => state,
    };
    let keyed = config.api_keys.is_some();
    // A store may have no version yet: the server starts and waits for one.
    let engine = state.engine();
    let workers = config
        .workers
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, NonZeroUsize::get);
    let app_state = web::Data::new(state);
    // A detached thread: it never keeps the process alive once `main` returns.
    spawn_store_watcher(
        app_state.clone().into_inner(),
        std::time::Duration::from_secs_f64(config.watch_interval),
    );
    let shutdown_timeout = config.shutdown_timeout;
    let at_exit = app_state.clone();
    #[cfg(unix)]
    if keyed {
        reload_keys_on_hangup(app_state.clone())?;
    }
    let server = HttpServer::new(move || create_app(app_state.clone()))
        .workers(workers)
        .max_connections(config.max_connections.get().div_ceil(workers))
        .client_request_timeout(std::time::Duration::from_secs(config.request_timeout))
        .shutdown_timeout(shutdown_timeout)
        .shutdown_signal(stop_signal(shutdown_timeout)?)
        .bind(&addrs[..])
        .with_context(|| {
            format!(
                "cannot listen on {} (bind, from the {})",
                config.bind,
                config.origin("bind")
            )
        })?;

    let addrs = server.addrs();
    if !keyed && addrs.iter().any(|a| !a.ip().is_loopback()) {
        tracing::warn!(
            bind = %config.bind,
            "listening beyond loopback without API keys (--insecure-no-auth): every route is open"
        );
    }
    match &engine {
        Some(engine) => tracing::info!(
            model_version = %engine.manifest().model_version,
            created_at = %engine.manifest().created_at,
            items = engine.items().len(),
            customers = engine.customers().len(),
            addrs = ?addrs,
            workers,
            "encore-serve listening"
        ),
        None => tracing::warn!(
            addrs = ?addrs,
            workers,
            "encore-serve listening without a model: the store has no version yet; model routes answer 503 until `encore-train fit --store` publishes one"
        ),
    }
    if let Some(addr) = addrs.first() {
        println!("Dashboard: {}/", base_url(*addr));
        if let Some(engine) = &engine {
            println!("Try:");
            for line in curl::example_requests(engine, &base_url(*addr)) {
                println!("  {line}");
            }
        }
    }
    drop(engine);
    server.run().await?;
    // Exposures the server queued without waiting are written before exit.
    if let Err(e) = at_exit.flush_events() {
        tracing::warn!(error = %e, "the event log could not be flushed at shutdown");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Installs the stderr log subscriber: level from `RUST_LOG`, lines as text or JSON.
fn init_logs(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().init(),
    }
}

/// Reads the API key file again at every SIGHUP (a file that does not parse
/// is logged and the keys in use stay).
#[cfg(unix)]
fn reload_keys_on_hangup(state: web::Data<AppState>) -> anyhow::Result<()> {
    use actix_web::rt::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    actix_web::rt::spawn(async move {
        while hup.recv().await.is_some() {
            if let Err(e) = state.reload_api_keys() {
                tracing::warn!(error = %e, "SIGHUP: API key file refused; the old keys stay in use");
            }
        }
    });
    Ok(())
}

/// Resolves at the first SIGTERM or SIGINT, which starts the graceful stop;
/// a second one exits the process at once. The handlers are installed now, so
/// a failure to install them stops the start-up.
#[cfg(unix)]
fn stop_signal(timeout_secs: u64) -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    use actix_web::rt::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move {
        let name = first_signal(&mut term, &mut int).await;
        tracing::info!(
            signal = name,
            timeout_secs,
            "shutting down: no new connections; requests in flight get the timeout to finish"
        );
        actix_web::rt::spawn(async move {
            let name = first_signal(&mut term, &mut int).await;
            tracing::warn!(signal = name, "second signal: exiting at once");
            std::process::exit(1);
        });
    })
}

/// Which of SIGTERM and SIGINT comes first.
#[cfg(unix)]
async fn first_signal(
    term: &mut actix_web::rt::signal::unix::Signal,
    int: &mut actix_web::rt::signal::unix::Signal,
) -> &'static str {
    std::future::poll_fn(|cx| {
        if term.poll_recv(cx).is_ready() {
            std::task::Poll::Ready("SIGTERM")
        } else if int.poll_recv(cx).is_ready() {
            std::task::Poll::Ready("SIGINT")
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

/// Ctrl-C where there are no Unix signals.
#[cfg(not(unix))]
fn stop_signal(timeout_secs: u64) -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    Ok(async move {
        let _ = actix_web::rt::signal::ctrl_c().await;
        tracing::info!(signal = "ctrl-c", timeout_secs, "shutting down");
    })
}

/// A URL reaching `addr` from this machine (wildcard addresses become loopback).
fn base_url(addr: SocketAddr) -> String {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{addr}")
}
