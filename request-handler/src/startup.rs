//! Wiring: the broker publisher, the HTTP server, and an orderly stop.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{App, HttpServer, web};
use anyhow::Context;
use tokio_util::sync::CancellationToken;
use webhook_core::broker::{LocalPublisher, Publisher};
use webhook_core::http::{self, Listening};

use crate::admission::Admission;
use crate::metrics::Metrics;
use crate::quarantine::Quarantine;
use crate::rejections::RejectionLog;
use crate::routes::{self, State};
use crate::settings::Settings;
use crate::spool::Spool;

/// A running request handler: listening, and connecting to the broker in the background.
#[derive(Debug)]
pub struct Application {
    http: Listening,
    publisher: Publisher,
    spool: Option<Arc<Spool>>,
}

impl Application {
    /// Binds `HANDLER_ADDR` (port 0 picks a free port) and starts connecting to the broker.
    /// The handler serves even while the broker is down: ingest answers 500 and `/readyz` 503
    /// until the connection is up, but for sources that spool (see [`Spool`]).
    ///
    /// With `SPOOL_DIR`, opens the spool first: one that cannot be opened is a
    /// [`webhook_core::config::ConfigError`] naming `SPOOL_DIR`.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let (spool, quarantine) = match &settings.spool {
            Some(spool) => (
                Some(Arc::new(Spool::open(
                    spool,
                    &settings.sources,
                    settings.max_body_bytes,
                )?)),
                Quarantine::start(&spool.dir, &settings.sources)?,
            ),
            None => (None, None),
        };
        let name = format!("request-handler pid={}", std::process::id());
        let publisher = Publisher::start(
            settings.broker.clone(),
            &name,
            settings.publish_channels,
            settings.enqueue_timeout,
        );
        let (listener, addr) = http::bind("HANDLER_ADDR", settings.addr)?;
        let mut metrics = Metrics::for_sources(&settings.sources);
        let admission = Admission::new(&settings.sources, settings.max_in_flight, metrics.admission.clone());
        metrics.register_publisher(publisher.counters());
        metrics.register_spool(spool.as_deref(), quarantine.as_ref());
        let metrics = Arc::new(metrics);
        let rejections = RejectionLog::new(
            publisher.clone(),
            settings.broker.topology.rejected_queue(),
            Arc::clone(&metrics),
        );
        let state = web::Data::new(State {
            sources: Arc::clone(&settings.sources),
            publisher: publisher.clone(),
            exchange: settings.broker.topology.exchange(),
            max_body_bytes: settings.max_body_bytes,
            body_read_timeout: settings.body_read_timeout,
            metrics,
            rejections,
            large_checks: tokio::sync::Semaphore::new(settings.workers),
            spool: spool.clone(),
            quarantine,
            admission,
            trusted_proxies: settings.trusted_proxies.clone(),
        });
        if let Some(spool) = &spool {
            spool.start_forwarder(publisher.clone(), settings.broker.topology.exchange());
        }
        let per_worker = settings.publish_per_worker;
        let shared = publisher.clone();
        let server = HttpServer::new(move || {
            // Made on each worker's thread: its publishes stay there (see LocalPublisher).
            let local = if per_worker {
                let local = LocalPublisher::new(shared.clone());
                local.connect_early();
                local
            } else {
                LocalPublisher::shared_only(shared.clone())
            };
            App::new()
                .app_data(state.clone())
                .app_data(local)
                .configure(routes::configure)
        })
        .workers(settings.workers)
        .shutdown_timeout(settings.shutdown_grace.as_secs_f64().ceil() as u64)
        .disable_signals()
        .listen(listener)
        .context("starting the HTTP server")?
        .run();
        log::info!(
            "request-handler listening on http://{addr} broker={} prefix={}",
            settings.broker.addresses.redacted(),
            settings.broker.topology.prefix()
        );
        Ok(Self {
            http: Listening::new(addr, server),
            publisher,
            spool,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.http.addr()
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr().port()
    }

    /// Cancel this token to stop: no new connections; requests in flight finish (each gets its
    /// true answer) within `SHUTDOWN_GRACE_MS`; then the spool's forwarder stops and its file
    /// is closed, and the broker connection is closed.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.http.shutdown_token()
    }

    /// Serves until the shutdown token is cancelled or the server fails.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let result = self.http.serve_until_stopped().await;
        if let Some(spool) = &self.spool {
            spool.close().await;
        }
        self.publisher.close().await;
        log::info!("request-handler stopped");
        result.context("the HTTP server failed")
    }
}
