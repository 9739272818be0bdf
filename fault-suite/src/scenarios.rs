//! The scenarios. Each runs the real services on a [`Stage`] of its own, drives signed
//! traffic through the handler, makes its fault, lets it pass, drains, and hands back what it
//! observed for the invariant check, plus any promise of its own that it saw broken (a
//! service that did not recover by itself, a graceful stop that was not).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;

use crate::check::Observed;
use crate::cluster::Cluster;
use crate::cluster_scenarios;
use crate::load::{self, Answer, Kind, Load, Mix, Sent};
use crate::process::Service;
use crate::stage::{ConsumerTuning, Paths, READY_DEADLINE, SHUTDOWN_GRACE, Stage};

/// Load before a fault, so it strikes a pipeline in full flow.
const WARM_UP: Duration = Duration::from_secs(5);
/// Load after a fault has passed and the services are back.
const COOL_DOWN: Duration = Duration::from_secs(5);
/// How long the handler must answer 200s again after an outage.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(30);
/// A consumer that keeps a batch in hand most of the time, so a kill lands mid-batch.
const SLOW_BATCHES: ConsumerTuning = ConsumerTuning { batch_wait_ms: 200 };

/// One scenario of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scenario {
    BrokerCut,
    BrokerCutSpool,
    HandlerKillSpool,
    DatabaseCut,
    ConsumerKill,
    TwoConsumers,
    Poison,
    Oversized,
    Sigterm,
    ClusterKillLeader,
    ClusterStopLeader,
    ClusterMajority,
    ClusterSpread,
}

/// How hard to push.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) paths: Paths,
    /// Requests per second, all senders together.
    pub(crate) rate: f64,
    pub(crate) senders: usize,
    /// The cluster of the cluster scenarios, started by the first of them.
    pub(crate) cluster: SharedCluster,
}

/// A RabbitMQ cluster started once, when a cluster scenario first needs it, and shared by the
/// others; stopped and removed when the last copy of the settings goes.
#[derive(Clone, Default)]
pub(crate) struct SharedCluster(std::sync::Arc<tokio::sync::OnceCell<Cluster>>);

impl std::fmt::Debug for SharedCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.initialized() {
            "SharedCluster(up)"
        } else {
            "SharedCluster(not started)"
        })
    }
}

impl SharedCluster {
    async fn get(&self, paths: &Paths) -> anyhow::Result<&Cluster> {
        self.0
            .get_or_try_init(|| Cluster::up(paths.logs.join("rabbitmq-cluster")))
            .await
    }
}

/// What a scenario hands back.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) observed: Observed,
    /// Promises of the scenario's own that were broken.
    pub(crate) problems: Vec<String>,
    /// What the scenario wants said beside its numbers.
    pub(crate) notes: Vec<String>,
    pub(crate) drain: Duration,
}

impl Scenario {
    pub(crate) const ALL: [Self; 13] = [
        Self::BrokerCut,
        Self::BrokerCutSpool,
        Self::HandlerKillSpool,
        Self::DatabaseCut,
        Self::ConsumerKill,
        Self::TwoConsumers,
        Self::Poison,
        Self::Oversized,
        Self::Sigterm,
        Self::ClusterKillLeader,
        Self::ClusterStopLeader,
        Self::ClusterMajority,
        Self::ClusterSpread,
    ];

    /// Whether it runs on a RabbitMQ cluster of the suite's own.
    pub(crate) fn needs_cluster(self) -> bool {
        matches!(
            self,
            Self::ClusterKillLeader | Self::ClusterStopLeader | Self::ClusterMajority | Self::ClusterSpread
        )
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::BrokerCut => "broker-cut",
            Self::BrokerCutSpool => "broker-cut-spool",
            Self::HandlerKillSpool => "handler-kill-spool",
            Self::DatabaseCut => "database-cut",
            Self::ConsumerKill => "consumer-kill",
            Self::TwoConsumers => "two-consumers",
            Self::Poison => "poison",
            Self::Oversized => "oversized",
            Self::Sigterm => "sigterm",
            Self::ClusterKillLeader => "cluster-kill",
            Self::ClusterStopLeader => "cluster-leader",
            Self::ClusterMajority => "cluster-majority",
            Self::ClusterSpread => "cluster-spread",
        }
    }

    pub(crate) fn about(self) -> &'static str {
        match self {
            Self::BrokerCut => "both services' broker connections cut for 5 s under load, then restored",
            Self::BrokerCutSpool => {
                "as broker-cut for 10 s, the source spooling: no 500, the spool forwarded once the broker is back"
            }
            Self::HandlerKillSpool => {
                "the handler SIGKILLed while its spool holds messages, restarted, and forwarding them"
            }
            Self::DatabaseCut => "the consumer's database unreachable for 10 s under load, then restored",
            Self::ConsumerKill => "the consumer SIGKILLed mid-batch and started again, twice",
            Self::TwoConsumers => "two consumers on one queue, one SIGKILLed mid-run",
            Self::Poison => "poison, over-long fields and refused rows mixed into good traffic",
            Self::Oversized => "oversized and refused messages mixed with good traffic",
            Self::Sigterm => "SIGTERM to both services under load, then the consumer restarted to drain",
            Self::ClusterKillLeader => {
                "3-node cluster: the node with the handler's connection and the queue's leader SIGKILLed under load"
            }
            Self::ClusterStopLeader => "3-node cluster: a node holding only the queue's leader stopped under load",
            Self::ClusterMajority => "3-node cluster: two nodes stopped under load, then started again",
            Self::ClusterSpread => {
                "3-node cluster: two handlers and two consumers started at once, one consumer's node stopped"
            }
        }
    }

    fn tuning(self) -> ConsumerTuning {
        match self {
            Self::ConsumerKill | Self::TwoConsumers => SLOW_BATCHES,
            _ => ConsumerTuning::default(),
        }
    }

    /// Sets up the scenario's stage and runs it; everything is torn down when this returns,
    /// however it returns.
    pub(crate) async fn run(self, settings: &Settings, round: u32) -> anyhow::Result<(Stage, Report)> {
        let cluster = if self.needs_cluster() {
            Some(settings.cluster.get(&settings.paths).await?)
        } else {
            None
        };
        let stage = Stage::new(self.name(), round, &settings.paths, self.tuning(), cluster).await?;
        let report = match (self, cluster) {
            (Self::ClusterKillLeader, Some(cluster)) => cluster_scenarios::kill_leader(&stage, cluster, settings).await,
            (Self::ClusterStopLeader, Some(cluster)) => cluster_scenarios::stop_leader(&stage, cluster, settings).await,
            (Self::ClusterMajority, Some(cluster)) => cluster_scenarios::lose_majority(&stage, cluster, settings).await,
            (Self::ClusterSpread, Some(cluster)) => cluster_scenarios::spread(&stage, cluster, settings).await,
            (scenario, _) => scenario.run_on(&stage, settings).await,
        };
        match report {
            Ok(report) => Ok((stage, report)),
            Err(error) => {
                stage.log.note(&format!("scenario failed: {error:#}"));
                Err(error)
            }
        }
    }

    async fn run_on(self, stage: &Stage, settings: &Settings) -> anyhow::Result<Report> {
        match self {
            Self::BrokerCut => broker_cut(stage, settings).await,
            Self::BrokerCutSpool => broker_cut_spool(stage, settings).await,
            Self::HandlerKillSpool => handler_kill_spool(stage, settings).await,
            Self::DatabaseCut => database_cut(stage, settings).await,
            Self::ConsumerKill => consumer_kill(stage, settings).await,
            Self::TwoConsumers => two_consumers(stage, settings).await,
            Self::Poison => poison(stage, settings).await,
            Self::Oversized => oversized(stage, settings).await,
            Self::Sigterm => sigterm(stage, settings).await,
            cluster => anyhow::bail!("{} needs a cluster", cluster.name()),
        }
    }
}

pub(crate) fn start_load(stage: &Stage, settings: &Settings, target: &load::Target, mix: Mix) -> anyhow::Result<Load> {
    stage.log.note(&format!(
        "load: {} requests/s from {} senders",
        settings.rate, settings.senders
    ));
    Load::start(target, settings.rate, settings.senders, mix)
}

/// Sleeps while the load runs: the scenario's timing, not a wait for a condition.
async fn run_for(duration: Duration) {
    tokio::time::sleep(duration).await;
}

/// Polls until the handler has answered 200 to `more` further requests.
async fn wait_accepting(stage: &Stage, load: &Load, more: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    let from = load.accepted();
    while load.accepted() < from + more {
        if started.elapsed() >= RECOVERY_DEADLINE {
            anyhow::bail!(
                "the handler did not answer 200 again within {RECOVERY_DEADLINE:?} ({} answers since, none 200)",
                load.answered()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stage.log.note(&format!(
        "200s flowing again after {} ms",
        started.elapsed().as_millis()
    ));
    Ok(())
}

/// Polls `/readyz` of `service` for up to `within` until it is not ready; a problem if it
/// never says so.
async fn expect_not_ready(stage: &Stage, service: &Service, within: Duration, problems: &mut Vec<String>) {
    let started = Instant::now();
    while started.elapsed() < within {
        if service.is_ready(&stage.client).await == Some(false) {
            stage.log.note(&format!(
                "{} reports not ready after {} ms",
                service.name(),
                started.elapsed().as_millis()
            ));
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    problems.push(format!(
        "{} /readyz did not report the outage within {within:?}",
        service.name()
    ));
}

/// Messages a scenario published straight to `{P}` that must end in the dead-letter queue,
/// and what their `error` header must start with.
#[derive(Debug, Default)]
pub(crate) struct Published {
    ids: Vec<String>,
    reasons: HashMap<String, &'static str>,
}

impl Published {
    fn add(&mut self, ids: Vec<String>, reason: &'static str) {
        self.reasons.extend(ids.iter().map(|id| (id.clone(), reason)));
        self.ids.extend(ids);
    }
}

/// Stops the load, drains, and reads back rows and dead letters.
async fn finish(stage: &Stage, load: Load, published: Published, problems: Vec<String>) -> anyhow::Result<Report> {
    let sent = load.stop().await?;
    stage.log.note(&format!("load stopped: {} requests", sent.len()));
    finish_sent(stage, sent, published, problems).await
}

pub(crate) async fn finish_sent(
    stage: &Stage,
    sent: Vec<Sent>,
    published: Published,
    problems: Vec<String>,
) -> anyhow::Result<Report> {
    let accepted = |kinds: &[Kind]| {
        sent.iter()
            .filter(|one| one.answer == Answer::Ok && kinds.contains(&one.kind))
            .count()
    };
    let to_store: HashSet<&str> = sent
        .iter()
        .filter(|one| one.answer == Answer::Ok && matches!(one.kind, Kind::Event | Kind::Sale))
        .map(|one| one.id.as_str())
        .collect();
    let dead = published.ids.len() + accepted(&[Kind::OverlongOrderId, Kind::RefusedByDatabase, Kind::Oversized]);
    let drain = stage.drain(&to_store, dead).await?;
    let dead_letters = stage.dead_letters().await;
    let observed = Observed {
        rows: stage.rows().await?,
        dead: dead_letters.iter().map(|(id, _)| id.clone()).collect(),
        dead_errors: dead_letters.into_iter().collect(),
        sent,
        poison: published.ids,
        reasons: published.reasons,
    };
    Ok(Report {
        observed,
        problems,
        drain,
        notes: Vec::new(),
    })
}

/// SIGKILLs `consumer`, noting how many events it held (delivered, not yet stored).
async fn kill_holding(stage: &Stage, load: &Load, consumer: &mut Service) -> anyhow::Result<String> {
    let held = stage.in_hand(load.accepted()).await?;
    consumer.kill().await?;
    let note = format!(
        "{} SIGKILLed holding about {held} event(s) not yet stored",
        consumer.name()
    );
    stage.log.note(&note);
    Ok(note)
}

async fn broker_cut(stage: &Stage, settings: &Settings) -> anyhow::Result<Report> {
    let mut problems = Vec::new();
    let mut consumer = stage.start_consumer("consumer").await?;
    let (mut handler, target) = stage.start_handler().await?;
    let load = start_load(stage, settings, &target, load::good_traffic)?;
    run_for(WARM_UP).await;

    stage.log.note("cutting the broker connections");
    stage.broker_proxy.cut();
    let outage = Instant::now();
    expect_not_ready(stage, &handler, Duration::from_secs(4), &mut problems).await;
    expect_not_ready(stage, &consumer, Duration::from_secs(4), &mut problems).await;
    run_for(Duration::from_secs(5).saturating_sub(outage.elapsed())).await;
    stage.log.note("restoring the broker connections");
    stage.broker_proxy.restore();

    handler
        .wait_ready(&stage.client, RECOVERY_DEADLINE)
        .await
        .context("the handler after the broker came back")?;
    consumer
        .wait_ready(&stage.client, RECOVERY_DEADLINE)
        .await
        .context("the consumer after the broker came back")?;
    wait_accepting(stage, &load, 50).await?;
    run_for(COOL_DOWN).await;
    finish(stage, load, Published::default(), problems).await
}

/// How long the broker is away in the spool scenarios.
const SPOOL_CUT: Duration = Duration::from_secs(10);
/// How long a spool may take to drain once the broker is back.
const FORWARD_DEADLINE: Duration = Duration::from_secs(60);

/// The handler's `/readyz` as the spool scenarios read it: what it says of the broker, and
/// how many messages wait in its spool.
async fn spool_state(stage: &Stage, handler: &Service) -> Option<(String, u64)> {
    let readiness = handler.readiness(&stage.client).await?;
    let broker = readiness["broker"].as_str().unwrap_or_default().to_owned();
    Some((broker, readiness["spooled"].as_u64()?))
}

/// Polls the handler's `/readyz` for up to `within` until it says `"broker": "spooling"` with
/// messages in the spool; a problem if it never does. Returns how many it saw there.
async fn expect_spooling(stage: &Stage, handler: &Service, within: Duration, problems: &mut Vec<String>) -> u64 {
    let started = Instant::now();
    while started.elapsed() < within {
        if let Some((broker, spooled)) = spool_state(stage, handler).await
            && broker == "spooling"
            && spooled > 0
        {
            stage.log.note(&format!(
                "{} ready and spooling ({spooled} message(s)) after {} ms",
                handler.name(),
                started.elapsed().as_millis()
            ));
            return spooled;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    problems.push(format!(
        "{} /readyz did not say \"broker\": \"spooling\" with messages spooled within {within:?}",
        handler.name()
    ));
    0
}

/// Polls the handler's `/readyz` until the broker is connected again and its spool is empty:
/// everything spooled was forwarded. Fails after [`FORWARD_DEADLINE`].
async fn wait_forwarded(stage: &Stage, handler: &Service) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut last = None;
    while started.elapsed() < FORWARD_DEADLINE {
        last = spool_state(stage, handler).await;
        if let Some((broker, 0)) = &last
            && broker == "connected"
        {
            stage.log.note(&format!(
                "{} spool forwarded and empty after {} ms",
                handler.name(),
                started.elapsed().as_millis()
            ));
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!(
        "{} did not empty its spool within {FORWARD_DEADLINE:?} of the broker's return (last: {last:?})",
        handler.name()
    )
}

/// The spool scenarios' own promise: not one request answered 500.
fn no_server_errors(report: &mut Report) {
    let server_errors = report
        .observed
        .sent
        .iter()
        .filter(|one| one.answer == Answer::ServerError)
        .count();
    if server_errors > 0 {
        report.problems.push(format!(
            "{server_errors} request(s) answered 500 although the source spools"
        ));
    }
}

/// What both spool scenarios run: a consumer, a handler whose `default` source spools, and
/// load through it, up to the broker cut; then the broker's return, the forwarding and the
/// drain.
struct SpoolRun {
    consumer: Service,
    handler: Service,
    /// The handler's variables for its spool (again for a restart).
    env: Vec<(&'static str, String)>,
    load: Load,
    problems: Vec<String>,
    notes: Vec<String>,
    /// When the broker was cut.
    outage: Instant,
}

impl SpoolRun {
    /// Starts the services and the load, warms up, cuts the broker and waits until the
    /// handler says it spools.
    async fn cut(stage: &Stage, settings: &Settings) -> anyhow::Result<Self> {
        let consumer = stage.start_consumer("consumer").await?;
        let env = stage.spooling_handler_env()?;
        let (handler, target) = stage.start_handler_with(&extra(&env)).await?;
        let load = start_load(stage, settings, &target, load::good_traffic)?;
        run_for(WARM_UP).await;

        stage.log.note("cutting the broker connections");
        stage.broker_proxy.cut();
        let outage = Instant::now();
        let mut problems = Vec::new();
        expect_spooling(stage, &handler, Duration::from_secs(8), &mut problems).await;
        Ok(Self {
            consumer,
            handler,
            env,
            load,
            problems,
            notes: Vec::new(),
            outage,
        })
    }

    /// Waits out [`SPOOL_CUT`], restores the broker, waits until the handler's spool is empty,
    /// cools down and checks: the invariant, and not one 500.
    async fn restore_and_finish(mut self, stage: &Stage) -> anyhow::Result<Report> {
        run_for(SPOOL_CUT.saturating_sub(self.outage.elapsed())).await;
        let held = spool_state(stage, &self.handler)
            .await
            .map_or(0, |(_, spooled)| spooled);
        self.notes
            .push(format!("{held} message(s) in the spool when the broker came back"));
        stage.log.note("restoring the broker connections");
        stage.broker_proxy.restore();

        self.consumer
            .wait_ready(&stage.client, RECOVERY_DEADLINE)
            .await
            .context("the consumer after the broker came back")?;
        wait_forwarded(stage, &self.handler).await?;
        run_for(COOL_DOWN).await;
        let mut report = finish(stage, self.load, Published::default(), self.problems).await?;
        no_server_errors(&mut report);
        report.notes.extend(self.notes);
        Ok(report)
    }
}

/// `(name, value)` pairs as [`Stage::start_handler_with`] takes them.
fn extra<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(name, value)| (*name, value.as_str())).collect()
}

async fn broker_cut_spool(stage: &Stage, settings: &Settings) -> anyhow::Result<Report> {
    SpoolRun::cut(stage, settings).await?.restore_and_finish(stage).await
}

async fn handler_kill_spool(stage: &Stage, settings: &Settings) -> anyhow::Result<Report> {
    let mut run = SpoolRun::cut(stage, settings).await?;
    // Spooling under load when the kill strikes: likely mid-commit.
    run_for(Duration::from_secs(5).saturating_sub(run.outage.elapsed())).await;
    let held = spool_state(stage, &run.handler).await.map_or(0, |(_, spooled)| spooled);
    run.handler.kill().await?;
    let note = format!("request-handler-1 SIGKILLed holding at least {held} spooled message(s)");
    stage.log.note(&note);
    run.notes.push(note);

    // Started again on the same spool and address while the broker is still away: what was
    // answered 200 is still there, and new requests are spooled after it.
    let addr = run.handler.addr();
    let (handler, _) = stage
        .start_handler_on(addr, "request-handler-2", &extra(&run.env))
        .await?;
    match spool_state(stage, &handler).await {
        Some((_, spooled)) if spooled >= held => {
            run.notes
                .push(format!("request-handler-2 found {spooled} message(s) in the spool"));
        }
        other => run.problems.push(format!(
            "request-handler-2 did not find the {held} spooled message(s) after the kill: {other:?}"
        )),
    }
    run.handler = handler;
    run.restore_and_finish(stage).await
}

async fn database_cut(stage: &Stage, settings: &Settings) -> anyhow::Result<Report> {
    let mut problems = Vec::new();
    let mut consumer = stage.start_consumer("consumer").await?;
    let (_handler, target) = stage.start_handler().await?;
    let load = start_load(stage, settings, &target, load::good_traffic)?;
    run_for(WARM_UP).await;

    stage.log.note("cutting the database connections");
    stage.database_proxy.cut();
    let outage = Instant::now();
    expect_not_ready(stage, &consumer, Duration::from_secs(8), &mut problems).await;
    run_for(Duration::from_secs(10).saturating_sub(outage.elapsed())).await;
    stage.log.note("restoring the database connections");
    stage.database_proxy.restore();

    consumer
        .wait_ready(&stage.client, RECOVERY_DEADLINE)
        .await
        .context("the consumer after the database came back")?;
    run_for(COOL_DOWN).await;
    finish(stage, load, Published::default(), problems).await
}

async fn consumer_kill(stage: &Stage, settings: &Settings) -> anyhow::Result<Report> {
    let mut consumer = stage.start_consumer("consumer-1").await?;
    let (_handler, target) = stage.start_handler().await?;
    let load = start_load(stage, settings, &target, load::good_traffic)?;
    run_for(Duration::from_secs(4)).await;
    let mut notes = Vec::new();
    for restart in 2..=3 {
        notes.push(kill_holding(stage, &load, &mut consumer).await?);
        // Events pile up in the queue while no consumer runs.
        run_for(Duration::from_secs(1)).await;
        consumer = stage.start_consumer(&format!("consumer-{restart}")).await?;
        run_for(Duration::from_secs(4)).await;
    }
    let mut report = finish(stage, load, Published::default(), Vec::new()).await?;
    report.notes = notes;
    Ok(report)
}

async fn two_consumers(stage: &Stage, settings: &Settings) -> anyhow::Result<Report> {
    let mut problems = Vec::new();
    let mut survivor = stage.start_consumer("consumer-a").await?;
    let mut victim = stage.start_consumer("consumer-b").await?;
    let (_handler, target) = stage.start_handler().await?;
    let load = start_load(stage, settings, &target, load::good_traffic)?;
    run_for(WARM_UP).await;
    let note = kill_holding(stage, &load, &mut victim).await?;
    run_for(Duration::from_secs(8)).await;
    if survivor.is_ready(&stage.client).await != Some(true) {
        problems.push(format!("{} is not ready after its peer was killed", survivor.name()));
    }
    let mut report = finish(stage, load, Published::default(), problems).await?;
    report.notes.push(note);
    survivor
        .wait_ready(&stage.client, READY_DEADLINE)
        .await
        .context("the surviving consumer after draining")?;
    Ok(report)
}

async fn poison(stage: &Stage, settings: &Settings) -> anyhow::Result<Report> {
    let _consumer = stage.start_consumer("consumer").await?;
    stage.refuse_in_database().await?;
    let (_handler, target) = stage.start_handler().await?;
    let load = start_load(stage, settings, &target, load::mixed_traffic)?;
    run_for(Duration::from_secs(3)).await;
    let mut published = Published::default();
    let poison = stage.publish_poison(&format!("{}-a", target.tag), 10, 10).await?;
    published.add(poison, POISON);
    run_for(Duration::from_secs(3)).await;
    let poison = stage.publish_poison(&format!("{}-b", target.tag), 10, 10).await?;
    published.add(poison, POISON);
    run_for(Duration::from_secs(4)).await;
    let mut report = finish(stage, load, published, Vec::new()).await?;
    // The ledger balances: every 200 is accepted once, and each is stored, a duplicate or
    // dead-lettered; the poison (no envelope) is outside it.
    let answered = report
        .observed
        .sent
        .iter()
        .filter(|one| one.answer == Answer::Ok)
        .count();
    let (accepted, difference, unexplained) = stage.ledger(Duration::from_secs(15)).await?;
    if usize::try_from(accepted).ok() != Some(answered) || difference != 0 || unexplained != 0 {
        report.problems.push(format!(
            "the ledger does not balance: {answered} answered 200, accepted {accepted}, difference {difference}, unexplained {unexplained}"
        ));
    }
    report.notes.push(format!(
        "ledger: accepted {accepted} (200s: {answered}), difference {difference}"
    ));
    Ok(report)
}

/// What a poison message's `error` header starts with.
const POISON: &str = "poison: ";
/// What the `error` header of a message too large for the database starts with.
const TOO_LARGE: &str = "too large for the database: ";
/// How long the consumer may take to store more good events after a large one arrived.
const STORING_DEADLINE: Duration = Duration::from_secs(15);

/// Events larger than the database's `max_allowed_packet` among good and refused traffic: two
/// through the handler (signed, about twice the limit: MariaDB closes the connection over such
/// a packet) and three straight to `{P}` (just above, twice and three times the limit). The
/// consumer must keep storing the good events, dead-letter every large one as too large and
/// every refused one after its retries, and never report the database down.
async fn oversized(stage: &Stage, settings: &Settings) -> anyhow::Result<Report> {
    let mut problems = Vec::new();
    let consumer = stage.start_consumer("consumer").await?;
    stage.refuse_in_database().await?;
    let limit = usize::try_from(stage.max_allowed_packet().await?).unwrap_or(usize::MAX);
    stage
        .log
        .note(&format!("the database's max_allowed_packet is {limit} bytes"));
    // The handler's largest body (64 MiB) is far above the database's packet limit.
    let (_handler, target) = stage.start_handler_with(&[("MAX_BODY_BYTES", "67108864")]).await?;
    let load = start_load(stage, settings, &target, load::mixed_traffic)?;
    let watch = ReadinessWatch::start(stage, &consumer);
    run_for(Duration::from_secs(3)).await;

    let mut published = Published::default();
    let mut large = Vec::new();
    for n in 0..2 {
        let before = stage.stored().await?;
        let sent = load::send_oversized(&target, n, limit * 2).await?;
        stage
            .log
            .note(&format!("oversized {} through the handler: {:?}", sent.id, sent.answer));
        if sent.answer != Answer::Ok {
            problems.push(format!(
                "the oversized request {} was answered {:?}, not 200",
                sent.id, sent.answer
            ));
        }
        large.push(sent);
        expect_storing(stage, before, &mut problems).await?;
        run_for(Duration::from_secs(2)).await;
    }
    let before = stage.stored().await?;
    let ids = stage
        .publish_large(&target.tag, &[limit + 1024, limit * 2, limit * 3])
        .await?;
    published.add(ids, TOO_LARGE);
    expect_storing(stage, before, &mut problems).await?;
    run_for(Duration::from_secs(3)).await;

    let mut sent = load.stop().await?;
    stage.log.note(&format!("load stopped: {} requests", sent.len()));
    sent.extend(large);
    let mut report = finish_sent(stage, sent, published, problems).await?;
    let samples = watch.stop().await;
    let not_ready = samples.iter().filter(|ready| !**ready).count();
    if not_ready > 0 {
        report.problems.push(format!(
            "the consumer's /readyz answered not ready {not_ready} time(s) out of {} while the database was up",
            samples.len()
        ));
    }
    report.notes.push(format!(
        "consumer ready at each of {} samples",
        samples.len() - not_ready
    ));
    Ok(report)
}

/// Polls until `events` holds more rows than `before`: good events are still stored after a
/// large one came in. A problem if not within [`STORING_DEADLINE`].
async fn expect_storing(stage: &Stage, before: u64, problems: &mut Vec<String>) -> anyhow::Result<()> {
    let started = Instant::now();
    while started.elapsed() < STORING_DEADLINE {
        if stage.stored().await? > before {
            stage.log.note(&format!(
                "storing goes on: more rows after {} ms",
                started.elapsed().as_millis()
            ));
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    problems.push(format!(
        "nothing more was stored within {STORING_DEADLINE:?} of a large event: storing stalled"
    ));
    Ok(())
}

/// `/readyz` of a service sampled every 200 ms, in a task of its own.
struct ReadinessWatch {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Vec<bool>>,
}

impl ReadinessWatch {
    fn start(stage: &Stage, service: &Service) -> Self {
        let stop = tokio_util::sync::CancellationToken::new();
        let url = service.readyz_url();
        let client = stage.client.clone();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let mut samples = Vec::new();
            while !token.is_cancelled() {
                // An answer is a sample; no answer in time (a busy machine) is not.
                if let Ok(response) = client.get(&url).timeout(Duration::from_secs(2)).send().await {
                    samples.push(response.status().is_success());
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            samples
        });
        Self { stop, task }
    }

    async fn stop(self) -> Vec<bool> {
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
}

async fn sigterm(stage: &Stage, settings: &Settings) -> anyhow::Result<Report> {
    let mut problems = Vec::new();
    let mut consumer = stage.start_consumer("consumer-1").await?;
    let (mut handler, target) = stage.start_handler().await?;
    let load = start_load(stage, settings, &target, load::good_traffic)?;
    run_for(WARM_UP).await;

    handler.terminate()?;
    consumer.terminate()?;
    let deadline = SHUTDOWN_GRACE + Duration::from_secs(10);
    for service in [&mut handler, &mut consumer] {
        let status = service.wait_exit(deadline).await?;
        if !status.success() {
            problems.push(format!("{} exited with {status} after SIGTERM", service.name()));
        }
    }
    // Requests keep coming at a handler that is gone.
    run_for(Duration::from_secs(1)).await;
    let sent = load.stop().await?;
    stage.log.note(&format!("load stopped: {} requests", sent.len()));

    let _consumer = stage.start_consumer("consumer-2").await?;
    finish_sent(stage, sent, Published::default(), problems).await
}
