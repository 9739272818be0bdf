//! Wiring: the database, the publisher for retries and dead letters, the worker, the HTTP
//! server, and an orderly stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use anyhow::Context;
use tokio_util::sync::CancellationToken;
use webhook_core::broker::Publisher;
use webhook_core::http::{self, Listening, Serving};

use crate::health::{self, Health, State};
use crate::metrics::Metrics;
use crate::rejections::RejectionReader;
use crate::retention::{self, Purged, Purger};
use crate::settings::Settings;
use crate::settle::Store;
use crate::store::{self, Database};
use crate::worker::Worker;

/// How long a retry or dead-letter publish may wait for the broker's confirm.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);
/// How long closing the pool may take at the end.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A consumer, built and listening; [`Application::run`] starts consuming.
#[derive(Debug)]
pub struct Application {
    http: Listening,
    settings: Settings,
    database: Database,
    publisher: Publisher,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: CancellationToken,
}

impl Application {
    /// Creates the database if it is missing and applies the migrations (one attempt: an
    /// unreachable database at start is an error), starts the publisher, and binds
    /// `CONSUMER_ADDR` (port 0 picks a free port).
    ///
    /// Once built, the consumer rides out database and broker outages without stopping.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        store::migrate(&settings).await?;
        let metrics = Arc::new(Metrics::new());
        let database = Database::new(&settings, metrics.database_max_allowed_packet.clone())?;
        database
            .probe()
            .await
            .context("reading the database's max_allowed_packet")?;
        if let Some(limit) = database.max_allowed_packet() {
            log::info!(
                "database max_allowed_packet={limit}: a larger event can never be stored and is dead-lettered as too_large"
            );
        }
        let name = format!("consumer-publisher-{}", std::process::id());
        let publisher = Publisher::start(settings.broker.clone(), &name, 1, CONFIRM_TIMEOUT);
        let health = Arc::new(Health::new(Arc::clone(&metrics), true, settings.workers));

        let (listener, addr) = http::bind("CONSUMER_ADDR", settings.addr)?;
        let state = web::Data::new(State {
            health: Arc::clone(&health),
            metrics: Arc::clone(&metrics),
        });
        let server = HttpServer::new(move || App::new().app_data(state.clone()).configure(health::configure))
            .workers(1)
            .shutdown_timeout(1)
            .disable_signals()
            .listen(listener)
            .context("starting the HTTP server")?
            .run();
        log::info!(
            "consumer listening on http://{addr} broker={} prefix={} database={}",
            settings.broker.addresses.redacted(),
            settings.broker.topology.prefix(),
            settings.database_url.redacted()
        );
        let http = Listening::new(addr, server);
        Ok(Self {
            shutdown: http.shutdown_token(),
            http,
            settings,
            database,
            publisher,
            metrics,
            health,
        })
    }

    /// The address the health and metrics server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.http.addr()
    }

    /// Cancel this token to stop: no new deliveries are taken, the batch in hand is committed
    /// and acked within `SHUTDOWN_GRACE_MS` (or left to the broker to redeliver), then the
    /// channel, the connections and the pool are closed.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Consumes and serves until the shutdown token is cancelled.
    pub async fn run(self) -> anyhow::Result<()> {
        let Serving {
            handle,
            task: mut server,
        } = self.http.start();
        let grace_over = CancellationToken::new();
        let timer = tokio::spawn({
            let shutdown = self.shutdown.clone();
            let grace_over = grace_over.clone();
            let grace = self.settings.shutdown_grace;
            async move {
                shutdown.cancelled().await;
                tokio::time::sleep(grace).await;
                grace_over.cancel();
            }
        });
        let rejections = tokio::spawn(
            RejectionReader {
                broker: self.settings.broker.clone(),
                pool: self.database.pool.clone(),
                sources: Arc::clone(&self.settings.sources),
                metrics: Arc::clone(&self.metrics),
                shutdown: self.shutdown.clone(),
            }
            .run(),
        );
        let purger = self.settings.retention.map(|retention| {
            tokio::spawn(
                Purger {
                    pool: self.database.pool.clone(),
                    retention,
                    purged: Purged::Bodies,
                    metrics: Arc::clone(&self.metrics),
                    shutdown: self.shutdown.clone(),
                }
                .run(),
            )
        });
        let ledger_pruner = tokio::spawn(
            Purger {
                pool: self.database.pool.clone(),
                retention: retention::LEDGER,
                purged: Purged::SettledLedger,
                metrics: Arc::clone(&self.metrics),
                shutdown: self.shutdown.clone(),
            }
            .run(),
        );
        let workers: Vec<_> = (0..self.settings.workers)
            .map(|index| {
                tokio::spawn(
                    Worker {
                        index,
                        settings: self.settings.clone(),
                        store: self.database.clone(),
                        publisher: self.publisher.clone(),
                        metrics: Arc::clone(&self.metrics),
                        health: Arc::clone(&self.health),
                        shutdown: self.shutdown.clone(),
                        grace_over: grace_over.clone(),
                        lag: None,
                    }
                    .run(),
                )
            })
            .collect();
        // Workers end only when stopped; the first to end (a panic, say) stops the rest.
        let mut workers = futures_util::future::select_all(workers);
        let result = tokio::select! {
            served = &mut server => {
                // The HTTP server should only end when stopped: stop the workers too.
                self.shutdown.cancel();
                futures_util::future::join_all(workers.into_inner()).await;
                served
                    .context("the HTTP server task failed")?
                    .context("the HTTP server failed")
            }
            (worked, _, rest) = &mut workers => {
                self.shutdown.cancel();
                futures_util::future::join_all(rest).await;
                handle.stop(true).await;
                let _ = server.await;
                worked.context("a consumer worker failed")
            }
        };
        timer.abort();
        // It stops with the shutdown token: at most one batch of diagnostics in hand.
        self.shutdown.cancel();
        if tokio::time::timeout(CLOSE_TIMEOUT, rejections).await.is_err() {
            log::debug!("the rejection log reader did not stop within {CLOSE_TIMEOUT:?}");
        }
        for purger in purger.into_iter().chain([ledger_pruner]) {
            if tokio::time::timeout(CLOSE_TIMEOUT, purger).await.is_err() {
                log::debug!("a retention purge did not stop within {CLOSE_TIMEOUT:?}");
            }
        }
        self.publisher.close().await;
        if tokio::time::timeout(CLOSE_TIMEOUT, self.database.pool.close())
            .await
            .is_err()
        {
            log::debug!("closing the database pool: no answer within {CLOSE_TIMEOUT:?}");
        }
        log::info!("consumer stopped");
        result
    }
}
