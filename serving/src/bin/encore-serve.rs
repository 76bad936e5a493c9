//! `encore-serve`: serves a model directory written by `encore-train` over HTTP.
//!
//! ```text
//! encore-serve --model model/ [--bind 127.0.0.1:8080] [--workers N] [--max-pending N]
//! encore-serve --store store/ [--watch-interval 2] [...]
//! ```
//!
//! Logs go to stderr, filtered by `RUST_LOG` (default `info,hnsw_rs=warn`:
//! `hnsw_rs` narrates every index load at info); example `curl` lines for the
//! loaded model go to stdout.

use actix_web::{HttpServer, web};
use anyhow::Context;
use clap::Parser;
use encore_model::artifact::store::Store;
use encore_serving::limits::DEFAULT_MAX_PENDING_SCORING;
use encore_serving::state::{ModelSource, spawn_store_watcher};
use encore_serving::{AppState, create_app, curl};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use tracing_subscriber::EnvFilter;

/// Serve Encore recommendations over HTTP.
#[derive(Debug, Parser)]
#[command(name = "encore-serve", version, about)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["model", "store"])))]
struct Args {
    /// Model directory written by `encore-train fit --out`.
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Model store written by `encore-train fit --store`: serves its CURRENT
    /// version and swaps in a new one when CURRENT moves.
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// API key file (TOML, keys stored as SHA-256): admin routes need an
    /// admin key, and read routes a key if the file says so.
    #[arg(long, value_name = "FILE")]
    api_keys: Option<PathBuf>,
    /// How often to look at the store's CURRENT, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    watch_interval: f64,
    /// Address to listen on. `POST /v1/admin/reload` is unauthenticated, so keep
    /// this on loopback unless something in front restricts that route.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    bind: String,
    /// HTTP worker threads [default: the number of CPU cores].
    #[arg(long, value_name = "N")]
    workers: Option<NonZeroUsize>,
    /// Scoring jobs that may be queued or running before new ones get 503.
    #[arg(long, value_name = "N", default_value_t = NonZeroUsize::new(DEFAULT_MAX_PENDING_SCORING).expect("non-zero"))]
    max_pending: NonZeroUsize,
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,hnsw_rs=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args = Args::parse();

    let source = match (&args.model, &args.store) {
        (Some(dir), None) => ModelSource::Dir(dir.clone()),
        (None, Some(dir)) => ModelSource::Store(
            Store::open_existing(dir)
                .with_context(|| format!("cannot open the model store {}", dir.display()))?,
        ),
        _ => anyhow::bail!("give exactly one of --model and --store"),
    };
    if !(args.watch_interval.is_finite() && args.watch_interval > 0.0) {
        anyhow::bail!(
            "--watch-interval must be a positive number of seconds, not {}",
            args.watch_interval
        );
    }
    let state = AppState::load_from(source.clone())
        .with_context(|| format!("cannot load the model from {source:?}"))?
        .with_max_pending_scoring(args.max_pending.get());
    let state = match &args.api_keys {
        Some(path) => state.with_api_keys(encore_serving::auth::ApiKeys::load(path)?),
        None => state,
    };
    let keyed = args.api_keys.is_some();
    let engine = state.engine().context("no model loaded")?;
    let workers = args
        .workers
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, NonZeroUsize::get);
    let app_state = web::Data::new(state);
    spawn_store_watcher(
        app_state.clone().into_inner(),
        std::time::Duration::from_secs_f64(args.watch_interval),
    );
    let server = HttpServer::new(move || create_app(app_state.clone()))
        .workers(workers)
        .bind(&args.bind)
        .with_context(|| format!("cannot listen on {}", args.bind))?;

    let addrs = server.addrs();
    if !keyed && addrs.iter().any(|a| !a.ip().is_loopback()) {
        tracing::warn!(
            bind = %args.bind,
            "listening beyond loopback: POST /v1/admin/reload is not authenticated"
        );
    }
    tracing::info!(
        model_version = %engine.manifest().model_version,
        created_at = %engine.manifest().created_at,
        items = engine.items().len(),
        customers = engine.customers().len(),
        addrs = ?addrs,
        workers,
        "encore-serve listening"
    );
    if let Some(addr) = addrs.first() {
        println!("Try:");
        for line in curl::example_requests(&engine, &base_url(*addr)) {
            println!("  {line}");
        }
    }
    drop(engine);
    server.run().await?;
    Ok(())
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
