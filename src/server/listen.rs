//! Accepting connections. Like `axum::serve`, plus a deadline for a request's
//! headers: a client that opens connections and never finishes a request
//! (slowloris), or never sends a byte, is dropped instead of holding a
//! connection forever.
//!
//! HTTP/1.1 only, served by hyper's own HTTP/1 connection: the protocol
//! sniffing of `hyper_util`'s auto builder (HTTP/1 or HTTP/2) reads the first
//! bytes with no deadline at all, so a silent client or a partial HTTP/2
//! preface held its connection for ever. Here the header deadline runs from
//! the moment the connection is served.

use std::future::Future;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt as _;

/// The whole request head must arrive within this.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A request body may pause at most this long between chunks.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` completes, then stops
/// accepting and gives open requests up to `grace` to finish: idle
/// keep-alive connections close at once, busy ones after their response.
/// Upgraded sockets run on by themselves (the app closes them).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) {
    let (stop_tx, stop_rx) = watch::channel(());
    let (alive_tx, alive_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: pass, do not spin.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request.map(Body::new))
        });
        let mut stop = stop_rx.clone();
        let alive = alive_rx.clone();
        tokio::spawn(async move {
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stop.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop(alive);
        });
    }
    drop(listener);
    let _ = stop_tx.send(());
    drop(alive_rx);
    if tokio::time::timeout(grace, alive_tx.closed()).await.is_err() {
        tracing::warn!(grace_seconds = grace.as_secs(), "requests still open when the shutdown grace ran out");
    }
}
