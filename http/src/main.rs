//! berkut-http: the application's REST API for berkutd, an HTTP gateway
//! onto the daemon's socket. It holds no daemon logic: every request
//! becomes one socket operation made on behalf of the user the application
//! names in `X-Berkut-User` and `X-Berkut-Role`, and the daemon decides
//! (the gateway runs under the application's `app` grant). See the README
//! ("The HTTP gateway") and docs/openapi.json.

mod daemon;
mod download;
mod events;
mod evidence;
mod extract;
mod import;
mod listen;
mod openapi;
mod pieces;
mod plan;
mod problem;
mod routes;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::http::{HeaderName, Request};
use clap::Parser;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::listen::{Bound, Listen};

/// The default place of berkutd's socket, as for berkutctl.
const DEFAULT_SOCKET: &str = "/run/berkut/berkutd.sock";

#[derive(Parser, Debug)]
#[command(
    name = "berkut-http",
    version,
    about = "HTTP gateway onto berkutd's socket: the application's REST API for backups"
)]
struct Args {
    /// Where to listen: unix:PATH (mode 0660) or a loopback address such as
    /// 127.0.0.1:8088. Ignored when systemd passes a socket (LISTEN_FDS).
    #[arg(long, env = "BERKUT_HTTP_LISTEN", default_value = "127.0.0.1:8088")]
    listen: Listen,
    /// The group of a unix: listening socket (the reverse proxy's or the
    /// application's).
    #[arg(long, env = "BERKUT_HTTP_SOCKET_GROUP")]
    socket_group: Option<String>,
    /// berkutd's socket.
    #[arg(long, env = "BERKUT_SOCKET", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Daemon connections open at once (each HTTP request in progress holds
    /// one; stay below berkutd's max_connections_per_uid, 32).
    #[arg(long, env = "BERKUT_HTTP_MAX_CONNECTIONS", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    max_connections: u16,
    /// Requests that may wait for a daemon connection; more are answered 503.
    #[arg(long, env = "BERKUT_HTTP_MAX_WAITING", default_value_t = 256)]
    max_waiting: usize,
    /// How long a request may wait for a daemon connection before it is
    /// answered 503, in seconds.
    #[arg(long, env = "BERKUT_HTTP_QUEUE_TIMEOUT", default_value_t = 30)]
    queue_timeout: u64,
    /// How long berkutd may take to greet a new connection, in seconds; a
    /// daemon that does not is answered 503.
    #[arg(long, env = "BERKUT_HTTP_DAEMON_TIMEOUT", default_value_t = 10)]
    daemon_timeout: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BERKUT_HTTP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(serve(args))
}

async fn serve(args: Args) -> Result<()> {
    let bound = match listen::from_systemd()? {
        Some(bound) => bound,
        None => listen::bind(&args.listen, args.socket_group.as_deref()).await?,
    };
    let state = Arc::new(routes::AppState {
        daemon: daemon::Daemon::new(
            args.socket.clone(),
            usize::from(args.max_connections),
            args.max_waiting,
            Duration::from_secs(args.queue_timeout),
            Duration::from_secs(args.daemon_timeout),
        ),
        plan_lock: tokio::sync::Mutex::new(()),
    });
    let request_id = HeaderName::from_static("x-request-id");
    let app = routes::router(state)
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    let id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path())
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid));
    tracing::info!(listen = %bound.describe(), socket = %args.socket.display(), "berkut-http listening");
    // Under systemd (Type=notify): ready once the socket is ours. Outside
    // it there is no NOTIFY_SOCKET and this does nothing.
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("stopping");
    };
    match bound {
        Bound::Tcp(listener) => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await?
        }
        Bound::Unix(listener, _) => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await?
        }
    }
    Ok(())
}
