//! The HTTP surface every service shares: `/healthz`, the shape of `/readyz`, `/metrics` in
//! OpenMetrics text, and the server bound at start and stopped by a token.

use std::net::{SocketAddr, TcpListener};

use actix_web::HttpResponse;
use actix_web::dev::{Server, ServerHandle};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The content type of `/metrics`, as `prometheus-client` encodes.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /healthz`: the process is up and serving.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// A `/readyz` answer: `"status": "ready"` and 200 when `ready`, else `"not ready"` and 503, so
/// that a load balancer routes around the process; `details` say each dependency's state.
pub fn readiness(ready: bool, details: serde_json::Map<String, serde_json::Value>) -> HttpResponse {
    let mut body = serde_json::Map::with_capacity(details.len() + 1);
    body.insert("status".to_owned(), (if ready { "ready" } else { "not ready" }).into());
    body.extend(details);
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// A `/metrics` answer: `text` as encoded by a registry.
pub fn metrics(text: String) -> HttpResponse {
    HttpResponse::Ok().content_type(OPENMETRICS).body(text)
}

/// Binds `addr` for an HTTP server; the error names `variable` (port 0 picks a free port,
/// which [`Listening::addr`] tells).
pub fn bind(variable: &str, addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr)
        .map_err(|error| std::io::Error::new(error.kind(), format!("cannot listen on {variable}={addr}: {error}")))?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

/// An HTTP server, bound and built, with the token that stops it.
pub struct Listening {
    addr: SocketAddr,
    server: Server,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Listening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listening")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// A [`Listening`] server started: its handle, to stop it, and its task.
#[derive(Debug)]
pub struct Serving {
    /// Stops the server (`stop(true)`: requests in flight finish first).
    pub handle: ServerHandle,
    /// Ends when the server stops or fails.
    pub task: JoinHandle<std::io::Result<()>>,
}

impl Listening {
    /// `server`, listening on `addr`, stopped by a new token.
    pub fn new(addr: SocketAddr, server: Server) -> Self {
        Self {
            addr,
            server,
            shutdown: CancellationToken::new(),
        }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Cancel this token to stop.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Starts serving on the runtime, for a caller that stops the server itself.
    pub fn start(self) -> Serving {
        Serving {
            handle: self.server.handle(),
            task: tokio::spawn(self.server),
        }
    }

    /// Serves until the token is cancelled (then lets requests in flight finish) or the server
    /// fails.
    pub async fn serve_until_stopped(self) -> std::io::Result<()> {
        let shutdown = self.shutdown.clone();
        let addr = self.addr;
        let Serving { handle, mut task } = self.start();
        let ended = tokio::select! {
            ended = &mut task => ended,
            () = shutdown.cancelled() => {
                log::info!("stopping: finishing the requests in flight on {addr}");
                handle.stop(true).await;
                task.await
            }
        };
        ended.map_err(|error| std::io::Error::other(format!("the HTTP server task failed: {error}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: HttpResponse) -> serde_json::Value {
        let bytes = actix_web::body::to_bytes(response.into_body()).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn details(pairs: &[(&str, &str)]) -> serde_json::Map<String, serde_json::Value> {
        pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).into()))
            .collect()
    }

    #[actix_web::test]
    async fn readiness_is_200_only_when_ready_and_names_each_dependency() {
        let ready = readiness(true, details(&[("database", "up")]));
        assert_eq!(ready.status(), 200);
        assert_eq!(
            body(ready).await,
            serde_json::json!({ "status": "ready", "database": "up" })
        );
        let not_ready = readiness(false, details(&[("broker", "disconnected"), ("database", "up")]));
        assert_eq!(not_ready.status(), 503);
        assert_eq!(
            body(not_ready).await,
            serde_json::json!({ "status": "not ready", "broker": "disconnected", "database": "up" })
        );
    }

    #[test]
    fn a_port_in_use_is_told_with_its_variable() {
        let (_held, addr) = bind("TEST_ADDR", "127.0.0.1:0".parse().unwrap()).unwrap();
        let error = bind("TEST_ADDR", addr).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("cannot listen on TEST_ADDR={addr}: ")),
            "{error}"
        );
    }
}
