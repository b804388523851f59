//! `jobline serve`: every route of the API on one port, with the same
//! handlers as the Lambda functions.

use std::net::SocketAddr;

use anyhow::Context as _;
use jobline::Config;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
}

pub async fn run(config: &Config, args: ServeArgs) -> anyhow::Result<()> {
    let state = jobline::app::state(config, "serve").await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!(listen = %listener.local_addr()?, "serving the jobline API");
    eprintln!("jobline API on http://{}", listener.local_addr()?);
    // Jobs enqueued by SQL are published by this process's relay listener.
    let (tx, rx) = tokio::sync::watch::channel(false);
    let relay = jobline::app::spawn_outbox_listener(config, state.enqueuer.publisher().clone(), rx);
    let shutdown = async move {
        shutdown_signal().await;
        let _ = tx.send(true);
    };
    jobline::app::serve(listener, state, shutdown).await?;
    if let Some(relay) = relay {
        let _ = relay.await;
    }
    Ok(())
}

/// Resolves on SIGTERM or ctrl-c.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
