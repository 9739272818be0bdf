//! The cluster scenarios: the services pointed at all three nodes of a RabbitMQ cluster of the
//! suite's own (`AMQP_URL` lists them), and nodes crashed or stopped under load. Besides the
//! invariant, every scenario requires that nothing but 200 and 500 is answered, and says how
//! many 500s there were and how long the handler took to answer 200 again.

use std::time::Duration;

use anyhow::{Context, bail};
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::load::{self, Answer, Load, Sent};
use crate::process::Service;
use crate::scenarios::{Published, Report, Settings, finish_sent, start_load};
use crate::stage::Stage;

/// Load before a fault.
const WARM_UP: Duration = Duration::from_secs(5);
/// Load after the cluster is whole again.
const COOL_DOWN: Duration = Duration::from_secs(5);
/// How long a lost node stays down under load once the handler answers 200 again.
const STAYS_DOWN: Duration = Duration::from_secs(10);
/// How long the majority stays away: long enough for the consumer to notice its silent queue.
const MAJORITY_STAYS_DOWN: Duration = Duration::from_secs(15);
/// The consumer's gauge of whether its queue answers.
const QUEUE_ANSWERING: &str = "webhook_consumer_events_queue_answering";
/// The consumer's gauge of whether every worker consumes.
const CONSUMING: &str = "webhook_consumer_broker_connected";
/// How soon the handler must answer 200 again after losing its node, or after a lost
/// majority returns: "within a few seconds".
const RECOVERY: Duration = Duration::from_secs(15);
/// How often a service is restarted to land on a node other than the one it must avoid (each
/// start picks a random node, so eight misses in a row are a one-in-6,561 event).
const PLACEMENT_TRIES: usize = 8;

/// The handler's connection name contains this.
fn handler_connection(service: &Service) -> anyhow::Result<String> {
    let pid = service.pid().context("the handler is not running")?;
    Ok(format!("request-handler pid={pid}"))
}

/// A consumer's first worker's connection name.
fn consumer_connection(service: &Service) -> anyhow::Result<String> {
    let pid = service.pid().context("the consumer is not running")?;
    Ok(format!("consumer-{pid}-0"))
}

async fn node_of(stage: &Stage, cluster: &Cluster, connection: &str) -> anyhow::Result<usize> {
    let node = cluster.holder(connection).await?;
    stage.log.note(&format!("{connection} is on node {node}"));
    Ok(node)
}

async fn note_status(stage: &Stage, cluster: &Cluster) {
    for line in cluster.status().await.lines() {
        stage.log.note(&format!("cluster: {line}"));
    }
}

async fn leader_of_events(stage: &Stage, cluster: &Cluster) -> anyhow::Result<usize> {
    let queue = format!("{}.events", stage.prefix());
    let node = cluster.leader(&queue).await?;
    stage.log.note(&format!("{queue} is led by node {node}"));
    Ok(node)
}

/// Polls until the handler has answered 200 to `more` further requests; how long it took.
async fn accepting_again(stage: &Stage, load: &Load, more: u64, what: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let from = load.accepted();
    while load.accepted() < from + more {
        if started.elapsed() >= RECOVERY {
            bail!(
                "{what}: the handler did not answer 200 again within {RECOVERY:?} ({} answers since, none 200)",
                load.answered()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    stage
        .log
        .note(&format!("{what}: 200s flowing again after {} ms", took.as_millis()));
    Ok(took)
}

/// Answers other than 200 and 500 (timeouts, connection errors, other statuses) are a problem
/// in every cluster scenario.
fn only_200_and_500(sent: &[Sent], problems: &mut Vec<String>) {
    let other: Vec<&str> = sent
        .iter()
        .filter_map(|one| match &one.answer {
            Answer::Other(what) => Some(what.as_str()),
            _ => None,
        })
        .collect();
    if !other.is_empty() {
        problems.push(format!(
            "{} answer(s) neither 200 nor 500: {:?}",
            other.len(),
            &other[..other.len().min(5)]
        ));
    }
}

fn server_errors(sent: &[Sent]) -> usize {
    sent.iter().filter(|one| one.answer == Answer::ServerError).count()
}

/// The node holding the handler's connection and the leader of `{P}.events`, crashed under
/// load: the handler moves to another node and answers 200 again within seconds while the
/// node stays down.
pub(crate) async fn kill_leader(stage: &Stage, cluster: &Cluster, settings: &Settings) -> anyhow::Result<Report> {
    let mut problems = Vec::new();
    // The first service to connect declares the queue, and a new quorum queue is led from the
    // node its declaring client is on.
    let (handler, target) = stage.start_handler().await?;
    let node = node_of(stage, cluster, &handler_connection(&handler)?).await?;
    let leader = leader_of_events(stage, cluster).await?;
    if leader != node {
        bail!("the queue's leader (node {leader}) is not the handler's node ({node})");
    }
    let _consumer = stage.start_consumer("consumer").await?;
    let load = start_load(stage, settings, &target, load::good_traffic)?;
    tokio::time::sleep(WARM_UP).await;

    stage
        .log
        .note(&format!("SIGKILL to node {node} (the handler's and the leader's)"));
    cluster.kill(node).await?;
    note_status(stage, cluster).await;
    let recovered = accepting_again(stage, &load, 50, "after the kill").await?;
    tokio::time::sleep(STAYS_DOWN).await;
    stage.log.note(&format!("node {node} starting again"));
    cluster.start(node).await?;
    tokio::time::sleep(COOL_DOWN).await;

    let sent = load.stop().await?;
    only_200_and_500(&sent, &mut problems);
    let notes = vec![format!(
        "node {node} killed: {} x 500, 200s again after {:.1} s",
        server_errors(&sent),
        recovered.as_secs_f64()
    )];
    let mut report = finish_sent(stage, sent, Published::default(), problems).await?;
    report.notes = notes;
    Ok(report)
}

/// The node leading `{P}.events`, holding no connection of the handler, stopped cleanly
/// under load: no 500 at all.
pub(crate) async fn stop_leader(stage: &Stage, cluster: &Cluster, settings: &Settings) -> anyhow::Result<Report> {
    let mut problems = Vec::new();
    // The consumer declares the queue first, so it leads from the consumer's node; then the
    // handler is placed on another node.
    let _consumer = stage.start_consumer("consumer").await?;
    let leader = leader_of_events(stage, cluster).await?;
    let mut placed = None;
    for _ in 0..PLACEMENT_TRIES {
        let (mut handler, target) = stage.start_handler().await?;
        if node_of(stage, cluster, &handler_connection(&handler)?).await? != leader {
            placed = Some((handler, target));
            break;
        }
        handler.kill().await?;
    }
    let Some((_handler, target)) = placed else {
        bail!("the handler landed on the leader's node {PLACEMENT_TRIES} times in a row");
    };
    let load = start_load(stage, settings, &target, load::good_traffic)?;
    tokio::time::sleep(WARM_UP).await;

    stage.log.note(&format!("stopping node {leader} (the leader's only)"));
    cluster.stop(leader).await?;
    note_status(stage, cluster).await;
    tokio::time::sleep(STAYS_DOWN).await;
    let new_leader = leader_of_events(stage, cluster).await?;
    stage.log.note(&format!("node {leader} starting again"));
    cluster.start(leader).await?;
    tokio::time::sleep(COOL_DOWN).await;

    let sent = load.stop().await?;
    only_200_and_500(&sent, &mut problems);
    let errors = server_errors(&sent);
    if errors > 0 {
        problems.push(format!(
            "{errors} x 500 while a node holding only the leader was stopped"
        ));
    }
    let notes = vec![format!(
        "node {leader} (leader only) stopped: {errors} x 500; node {new_leader} took the lead"
    )];
    let mut report = finish_sent(stage, sent, Published::default(), problems).await?;
    report.notes = notes;
    Ok(report)
}

/// Two of the three nodes stopped under load: no 200 while the majority is gone (nothing can
/// be confirmed), and 200s within seconds of its return.
pub(crate) async fn lose_majority(stage: &Stage, cluster: &Cluster, settings: &Settings) -> anyhow::Result<Report> {
    let mut problems = Vec::new();
    let (handler, target) = stage.start_handler().await?;
    let consumer = stage.start_consumer("consumer").await?;
    let node = node_of(stage, cluster, &handler_connection(&handler)?).await?;
    let others: Vec<usize> = (1..=3).filter(|other| *other != node).collect();
    let load = start_load(stage, settings, &target, load::good_traffic)?;
    tokio::time::sleep(WARM_UP).await;
    let leader = leader_of_events(stage, cluster).await?;
    let sampler = node_of(stage, cluster, &consumer_connection(&consumer)?).await?;

    for other in &others {
        stage.log.note(&format!("stopping node {other}"));
        cluster.stop(*other).await?;
    }
    let lost = Instant::now();
    note_status(stage, cluster).await;
    stage.log.note("the majority is gone");
    // The consumer must say that nothing can be stored: its queue does not answer, or (when
    // its node was among those stopped) it is not consuming. The handler's /readyz is watched
    // meanwhile, for the one placement the consumer cannot see.
    let mut said = None;
    let mut handler_said = None;
    while lost.elapsed() < MAJORITY_STAYS_DOWN && said.is_none() {
        for gauge in [QUEUE_ANSWERING, CONSUMING] {
            if consumer.metric(&stage.client, gauge).await == Some(0.0) {
                said = Some((lost.elapsed(), gauge));
                break;
            }
        }
        if handler_said.is_none() && handler.is_ready(&stage.client).await == Some(false) {
            handler_said = Some(lost.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    match (said, handler_said) {
        (Some((after, gauge)), _) => stage
            .log
            .note(&format!("the consumer reported {gauge} 0 after {} ms", after.as_millis())),
        // While the node the consumer samples from runs, the queue answers its passive declare
        // (from the leader's own state when the leader is there, at once with 0 messages when
        // the leader's node is down): the consumer cannot tell. The handler, which can confirm
        // nothing, must.
        (None, Some(after)) => stage.log.note(&format!(
            "the consumer could not tell ({QUEUE_ANSWERING} stayed 1; the queue's leader on node {leader}, its sampler \
             on node {sampler}); the handler's /readyz said 503 after {} ms",
            after.as_millis()
        )),
        (None, None) => problems.push(format!(
            "neither the consumer ({QUEUE_ANSWERING} and {CONSUMING} stayed 1; the queue's leader on node {leader}, its \
             sampler on node {sampler}) nor the handler's /readyz said within {MAJORITY_STAYS_DOWN:?} that nothing can \
             be stored"
        )),
    }
    tokio::time::sleep(MAJORITY_STAYS_DOWN.saturating_sub(lost.elapsed())).await;
    let back = Instant::now();
    // One node back restores the majority; the other follows once 200s flow again.
    stage.log.note(&format!("node {} starting again", others[0]));
    cluster.start(others[0]).await?;
    let recovered = accepting_again(stage, &load, 50, "after the majority returned").await?;
    stage.log.note(&format!("node {} starting again", others[1]));
    cluster.start(others[1]).await?;
    tokio::time::sleep(COOL_DOWN).await;

    let sent = load.stop().await?;
    only_200_and_500(&sent, &mut problems);
    let confirmed_without_majority = sent
        .iter()
        .filter(|one| one.answer == Answer::Ok && one.sent_at >= lost && one.answered_at <= back)
        .count();
    if confirmed_without_majority > 0 {
        problems.push(format!(
            "{confirmed_without_majority} request(s) sent and answered 200 while two of three nodes were down"
        ));
    }
    let during = sent
        .iter()
        .filter(|one| one.sent_at >= lost && one.answered_at <= back)
        .count();
    let notes = vec![format!(
        "nodes {others:?} stopped for {:.0} s: {during} request(s) in that time, none 200; {} x 500 in all; \
         the consumer said so after {}; 200s again {:.1} s after the first node was back",
        MAJORITY_STAYS_DOWN.as_secs_f64(),
        server_errors(&sent),
        said.map_or_else(
            || "never".to_owned(),
            |(after, gauge)| format!("{:.1} s ({gauge} 0)", after.as_secs_f64())
        ),
        recovered.as_secs_f64()
    )];
    let mut report = finish_sent(stage, sent, Published::default(), problems).await?;
    report.notes = notes;
    Ok(report)
}

/// Two handlers on different nodes and two consumers, all started at once on a fresh
/// database; the node of one consumer's first connection stopped mid-run.
pub(crate) async fn spread(stage: &Stage, cluster: &Cluster, settings: &Settings) -> anyhow::Result<Report> {
    let mut problems = Vec::new();
    let (consumer_a, consumer_b, first, second) = tokio::join!(
        stage.start_consumer("consumer-a"),
        stage.start_consumer("consumer-b"),
        stage.start_handler(),
        stage.start_handler(),
    );
    let (consumer_a, _consumer_b) = (consumer_a?, consumer_b?);
    let (first, mut second) = (first?, second?);
    let first_node = node_of(stage, cluster, &handler_connection(&first.0)?).await?;
    for _ in 0..PLACEMENT_TRIES {
        if node_of(stage, cluster, &handler_connection(&second.0)?).await? != first_node {
            break;
        }
        second.0.kill().await?;
        second = stage.start_handler().await?;
    }
    let victim = node_of(stage, cluster, &consumer_connection(&consumer_a)?).await?;
    let half = Settings {
        rate: settings.rate / 2.0,
        senders: (settings.senders / 2).max(1),
        ..settings.clone()
    };
    let loads = [
        start_load(stage, &half, &first.1, load::good_traffic)?,
        start_load(stage, &half, &second.1, load::good_traffic)?,
    ];
    tokio::time::sleep(WARM_UP).await;

    stage.log.note(&format!("stopping node {victim} (consumer-a's)"));
    cluster.stop(victim).await?;
    note_status(stage, cluster).await;
    tokio::time::sleep(STAYS_DOWN).await;
    stage.log.note(&format!("node {victim} starting again"));
    cluster.start(victim).await?;
    tokio::time::sleep(COOL_DOWN).await;

    let mut sent = Vec::new();
    for load in loads {
        sent.extend(load.stop().await?);
    }
    only_200_and_500(&sent, &mut problems);
    let notes = vec![format!(
        "two handlers, two consumers started together on a fresh database; node {victim} stopped: {} x 500",
        server_errors(&sent)
    )];
    let mut report = finish_sent(stage, sent, Published::default(), problems).await?;
    report.notes = notes;
    Ok(report)
}
