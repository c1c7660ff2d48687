//! The HTTP/1.1 server loop: accepts connections, serves the router on each
//! with the client address as [`ConnectInfo`], bounds how long a client may
//! take to send its request headers (`WAL_HEADER_READ_TIMEOUT_MS`; a
//! slowloris client is cut off instead of holding a connection open for
//! ever), and drains on shutdown: once `shutdown` resolves it stops
//! accepting, lets requests in progress finish, and closes what is left at
//! the drain deadline.
//!
//! (`axum::serve` sets no timer, so hyper's header read timeout never fires
//! there; this loop is the same thing with one.)

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;
use wal_process::DrainDeadline;

/// Serves `router` on `listener` until `shutdown` resolves, then drains
/// within `grace`. Answers whether the drain finished before the deadline.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    grace: Duration,
    shutdown: impl Future<Output = ()>,
) -> bool {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = router
            .clone()
            .map_request(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(addr));
                req.map(axum::body::Body::new)
            });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout);
        let conn =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutdown requested; draining in-flight requests");
    let deadline = DrainDeadline::after(grace);
    tokio::select! {
        _ = graceful.shutdown() => true,
        _ = deadline.sleep() => false,
    }
}
