//! The HTTP accept loop: axum's router on hyper's HTTP/1 connections, with the limits that keep
//! whoever can reach the port from taking the service down without a token.
//!
//! - At most `max_connections` connections are open; one more is closed as soon as it is
//!   accepted (counted in `tars_http_connections_rejected_total`), so file descriptors and
//!   memory stay bounded and `/health` keeps answering.
//! - A client has `header_read_timeout_seconds` to send a request's headers, from the moment
//!   the connection is opened or was left idle after a response: slowloris connections (headers
//!   one byte at a time) and idle keep-alive connections are closed when it runs out.
//! - An accept error (out of file descriptors) is logged and retried after a pause instead of
//!   spinning or ending the server.
//!
//! Shutdown: when `drain` turns true no connection is accepted any more, each open one finishes
//! its request in flight and closes, and [`serve`] returns once all are closed.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

/// The connection limits (configuration keys `max_connections`, `header_read_timeout_seconds`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
}

/// Serves `app` on `listener` until `drain` turns true and every connection has closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    mut drain: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = drain.wait_for(|draining| *draining) => break,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // EMFILE and friends: the connections that hold descriptors close in time.
                tracing::warn!(error = %err, "accepting a connection failed; retrying shortly");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            metrics::counter!("tars_http_connections_rejected_total").increment(1);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = app
            .clone()
            .map_request(move |mut request: axum::http::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(remote));
                request
            });
        let mut drain = drain.clone();
        let header_read_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            metrics::gauge!("tars_http_connections_open").increment(1.0);
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .keep_alive(true);
            let connection = builder
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                .with_upgrades();
            tokio::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = async { drain.wait_for(|draining| *draining).await.map(|_| ()) } => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = ended {
                tracing::debug!(error = %err, %remote, "connection ended");
            }
            metrics::gauge!("tars_http_connections_open").decrement(1.0);
        });
    }
    // Every connection holds a permit until it closes.
    let _all = open
        .acquire_many(limits.max_connections as u32)
        .await
        .map_err(std::io::Error::other)?;
    Ok(())
}
