//! A confirmed publisher that lives on one thread: the request handler's hot path.
//!
//! lapin drives each connection from an I/O thread of its own. A publish hands its frames to
//! that thread and waits for it twice (once written, once confirmed), and the broker's answer
//! reaches that thread through another: every request crosses threads several times, and on
//! two cores those crossings cost more than the HTTP work and the publish together
//! (`bench/ANALYSIS.md`). A [`LocalPublisher`] belongs to one HTTP worker thread and keeps a
//! connection of its own there, with one confirm-mode channel, read and written by tasks on
//! that thread: a publish appends its frames to a buffer, the writer sends whatever is buffered
//! in one write, and the reader settles confirms as they come. Nothing is shared with other
//! threads but the [`Publisher`] it stands beside.
//!
//! It only publishes. The [`Publisher`] declares the topology, tells readiness, chooses the
//! broker address (the thread connects to the node the publisher reached), and takes every
//! publish while the thread's connection is not up: the first ones, and after a failure while
//! the thread reconnects in the background (a second after a failure, backing off to 30 s
//! while it keeps failing). A thread's connection is
//! dropped on anything unexpected (a nack, a confirm overdue past the confirm timeout, a
//! channel or connection closed by the broker, missed heartbeats); publishes waiting on it
//! fail, and the caller's answer (500, or the spool) is the same as for lapin's failures. A
//! publish whose own, shorter deadline passes fails alone.
//!
//! The frames are made and read with `amq-protocol`, the protocol crate lapin itself is built
//! on; only the body frame is written by hand, to send the body without copying it into a
//! frame value first.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use amq_protocol::frame::{AMQPContentHeader, AMQPFrame, ProtocolVersion, WriteContext, gen_frame, parse_frame};
use amq_protocol::protocol::{AMQPClass, basic, channel, confirm, connection};
use futures_util::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::uri::{AMQPScheme, AMQPUri, SASLMechanism};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use super::{
    CONNECT_TIMEOUT, NEVER, Outgoing, PublishError, Publisher, REPLACE_CHANNEL_AT_MOST_EVERY,
    REPLACEMENTS_BEFORE_RECONNECT,
};

/// The one channel each thread's connection opens.
const CHANNEL: u16 = 1;
/// After a thread's connection fails or cannot be opened, how long its publishes go through
/// the shared [`Publisher`] before it tries again.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);
/// The longest wait between attempts to open a thread's connection.
const MAX_RECONNECT_AFTER: Duration = Duration::from_secs(30);
/// How often a connection checks for overdue confirms and heartbeats.
const TICK: Duration = Duration::from_secs(1);
/// The AMQP frame-end octet.
const FRAME_END: u8 = 0xCE;
/// The frame size asked for when neither the URL nor the broker sets one.
const DEFAULT_FRAME_MAX: u32 = 131_072;
/// The content class of `basic`.
const BASIC_CLASS: u16 = 60;

/// What the broker said of one publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Acked,
    /// Returned as unroutable, then acked.
    Returned,
    Nacked,
}

/// A publish awaiting its confirm.
#[derive(Debug)]
struct Pending<T> {
    tag: u64,
    message_id: Option<ShortString>,
    returned: bool,
    /// When it was published.
    since: Instant,
    tell: T,
}

/// The publishes of one channel awaiting confirms, in delivery-tag order, and how each
/// confirm, nack and return settles them. Generic over how a settled publish is told, so that
/// its rules can be checked on their own.
#[derive(Debug)]
struct Confirms<T> {
    last_tag: u64,
    pending: VecDeque<Pending<T>>,
}

impl<T> Default for Confirms<T> {
    fn default() -> Self {
        Self {
            last_tag: 0,
            pending: VecDeque::new(),
        }
    }
}

impl<T> Confirms<T> {
    /// Records the next publish on the channel (delivery tags count from 1 after
    /// `confirm.select`); returns its tag.
    fn push(&mut self, message_id: Option<ShortString>, since: Instant, tell: T) -> u64 {
        self.last_tag += 1;
        self.pending.push_back(Pending {
            tag: self.last_tag,
            message_id,
            returned: false,
            since,
            tell,
        });
        self.last_tag
    }

    /// When the oldest publish still awaiting its confirm was published.
    fn oldest(&self) -> Option<Instant> {
        self.pending.front().map(|pending| pending.since)
    }

    /// A `basic.return` came with these properties: the oldest pending publish of that message
    /// id not yet returned is the one (the broker returns a message before it acks it). Without
    /// a message id, the oldest pending publish without one not yet returned.
    fn returned(&mut self, message_id: Option<&ShortString>) {
        if let Some(pending) = self
            .pending
            .iter_mut()
            .find(|pending| !pending.returned && pending.message_id.as_ref() == message_id)
        {
            pending.returned = true;
        }
    }

    /// `basic.ack` or `basic.nack` for `tag` (and, when `multiple`, every earlier one): the
    /// publishes it settles, oldest first, each with its outcome.
    fn settle(&mut self, tag: u64, multiple: bool, acked: bool) -> Vec<(T, Outcome)> {
        let mut settled = Vec::new();
        if multiple {
            while self.pending.front().is_some_and(|pending| pending.tag <= tag) {
                if let Some(pending) = self.pending.pop_front() {
                    settled.push(Self::outcome(pending, acked));
                }
            }
        } else if let Some(at) = self.pending.iter().position(|pending| pending.tag == tag)
            && let Some(pending) = self.pending.remove(at)
        {
            settled.push(Self::outcome(pending, acked));
        }
        settled
    }

    fn outcome(pending: Pending<T>, acked: bool) -> (T, Outcome) {
        let outcome = match (acked, pending.returned) {
            (false, _) => Outcome::Nacked,
            (true, true) => Outcome::Returned,
            (true, false) => Outcome::Acked,
        };
        (pending.tell, outcome)
    }

    /// Forgets every pending publish (the connection is gone): their confirms never come.
    fn abandon(&mut self) -> usize {
        let count = self.pending.len();
        self.pending.clear();
        count
    }
}

/// One thread's connection.
struct Link {
    /// Frames made and not yet written.
    out: RefCell<Vec<u8>>,
    confirms: RefCell<Confirms<oneshot::Sender<Outcome>>>,
    /// Wakes the writer.
    flush: Notify,
    /// Set once the connection is given up; the tasks end.
    dead: Cell<bool>,
    /// Set when the shared connection it followed is replaced: it takes no new publishes and
    /// closes once those in flight are settled.
    retiring: Cell<bool>,
    /// When the broker last sent anything.
    last_read: Cell<Instant>,
    frame_max: usize,
    heartbeat: Option<Duration>,
    /// A duplicate of the socket, to end the connection at once (see `BrokerConnection`).
    socket: std::net::TcpStream,
    /// The shared publisher's connection this one followed to its node: nacks here count
    /// toward replacing it, and once it is condemned this one goes too.
    followed: Arc<super::Link>,
    /// The shared publisher: its counters (this connection is in `worker_connections` until
    /// it dies), name, confirm timeout and supervisor.
    shared: Publisher,
    /// Attempts that failed in a row before this connection opened, and whether the broker
    /// has acked anything on it: a connection that dies before its first ack does not reset
    /// the backoff.
    failures_before: u32,
    acked: Cell<bool>,
    /// When the writer last wrote, for heartbeats.
    last_write: Cell<Instant>,
}

impl Link {
    /// Drops the connection for `why`, with a warning unless it is gone already.
    fn drop_for(&self, why: &str) {
        if !self.dead.get() {
            log::warn!(
                "{why}: dropping a worker's own broker connection: connection={} thread={:?}",
                self.shared.inner.name,
                std::thread::current().name().unwrap_or("?"),
            );
        }
        self.kill();
    }

    /// The broker nacked `count` publishes: the connection goes (the next one has a fresh
    /// channel), as the shared publisher replaces a nacked channel, and counts the same way:
    /// after [`REPLACEMENTS_BEFORE_RECONNECT`] replacements with no ack in between, the shared
    /// connection is condemned and the next broker address tried, and the workers follow.
    fn nacked(&self, count: usize) {
        let inner = &self.shared.inner;
        inner.counters.nacks.inc_by(count as u64);
        if self.dead.get() {
            return;
        }
        inner.counters.channels_replaced.inc();
        // Nacks on the workers' connections count toward replacing the shared one at most once
        // a second between them, as a shared channel is replaced at most once a second: one
        // burst of nacks seen by every worker is one replacement, not one per worker.
        let counted = &self.followed.worker_nack_counted_ms;
        let now = inner.millis();
        let last = counted.load(Ordering::SeqCst);
        let counts = (last == NEVER || now.saturating_sub(last) >= REPLACE_CHANNEL_AT_MOST_EVERY.as_millis() as u64)
            && counted
                .compare_exchange(last, now, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok();
        if counts {
            let futile = self.followed.futile_replacements.fetch_add(1, Ordering::SeqCst) + 1;
            if futile > REPLACEMENTS_BEFORE_RECONNECT {
                log::warn!(
                    "broker keeps nacking on fresh channels: connection={} replacements={}; reconnecting",
                    inner.name,
                    futile - 1
                );
                self.followed.condemned.store(true, Ordering::SeqCst);
                inner.check.notify_one();
            }
        }
        self.drop_for("the broker nacked a publish");
    }

    fn kill(&self) {
        if !self.dead.replace(true) {
            self.shared.inner.counters.worker_connections.dec();
            let _ = self.socket.shutdown(std::net::Shutdown::Both);
            self.confirms.borrow_mut().abandon();
            self.flush.notify_one();
        }
    }

    /// Appends the publish's frames to the buffer and wakes the writer; resolves with the
    /// broker's answer, or with an error if the connection goes first.
    fn publish(&self, message: Outgoing<'_>, properties: BasicProperties) -> oneshot::Receiver<Outcome> {
        let (tell, told) = oneshot::channel();
        let message_id = properties.message_id().clone();
        let written = {
            let mut out = self.out.borrow_mut();
            let method = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                exchange: message.exchange.into(),
                routing_key: message.routing_key.into(),
                mandatory: true,
                immediate: false,
            }));
            let header = AMQPContentHeader {
                class_id: BASIC_CLASS,
                body_size: message.body.len() as u64,
                properties,
            };
            write_frame(&mut out, &AMQPFrame::Method(CHANNEL, method))
                .and_then(|()| write_frame(&mut out, &AMQPFrame::Header(CHANNEL, header)))
                .map(|()| write_body_frames(&mut out, message.body, self.frame_max))
        };
        match written {
            Ok(()) => {
                self.confirms.borrow_mut().push(message_id, Instant::now(), tell);
                self.flush.notify_one();
            }
            // Frames of other publishes may be gone with the buffer: the delivery tags would
            // no longer match, so the connection goes, and this publish fails with it.
            Err(error) => {
                log::error!("{error}; dropping a worker's own broker connection");
                self.kill();
            }
        }
        told
    }

    /// Closes once nothing awaits a confirm on it; takes no new publishes meanwhile.
    fn retire(&self) {
        self.retiring.set(true);
        self.flush.notify_one();
    }
}

/// The body as frames of at most `frame_max` bytes: type 3, channel, size, payload, frame end
/// (AMQP 0-9-1, 4.2.3). An empty body has none; the 8 bytes around the payload count toward
/// `frame_max`.
fn write_body_frames(out: &mut Vec<u8>, body: &[u8], frame_max: usize) {
    for part in body.chunks(frame_max.saturating_sub(8).max(1)) {
        out.push(3);
        out.extend_from_slice(&CHANNEL.to_be_bytes());
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
        out.push(FRAME_END);
    }
}

/// Appends `frame` to `out`. On an error (none is known for a vector; the handler bounds
/// what goes into short strings) what `out` held is gone: the caller drops the connection.
fn write_frame(out: &mut Vec<u8>, frame: &AMQPFrame) -> Result<(), String> {
    let buffer = std::mem::take(out);
    let context = gen_frame(frame)(WriteContext::from(buffer))
        .map_err(|error| format!("an AMQP frame could not be serialised: {error:?}"))?;
    *out = context.into_inner().0;
    Ok(())
}

/// 1 s after the first failure, doubling to 30 s: the shared connection carries the publishes
/// meanwhile.
fn backoff(failures: u32) -> Duration {
    RECONNECT_AFTER
        .saturating_mul(1 << failures.min(5))
        .min(MAX_RECONNECT_AFTER)
}

/// Puts a thread's state back to down if its connect task ends without settling it.
struct ResetConnecting(Rc<RefCell<State>>);

impl Drop for ResetConnecting {
    fn drop(&mut self) {
        if let Ok(mut state) = self.0.try_borrow_mut()
            && matches!(*state, State::Connecting)
        {
            *state = State::Down {
                retry_at: Some(Instant::now() + RECONNECT_AFTER),
                failures: 0,
            };
        }
    }
}

/// A task's hold on a connection: however the task ends (a panic, its runtime stopping), the
/// connection goes with it.
struct KillOnDrop(Rc<Link>);

impl std::ops::Deref for KillOnDrop {
    type Target = Link;

    fn deref(&self) -> &Link {
        &self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.0.kill();
    }
}

/// How a thread's connection stands.
enum State {
    /// None open; may try once the instant has passed. `failures`: attempts in a row that
    /// failed, for the backoff.
    Down {
        retry_at: Option<Instant>,
        failures: u32,
    },
    Connecting,
    Up(Rc<Link>),
    /// Never opens one.
    SharedOnly,
}

/// The request handler's publisher on one HTTP worker thread: see the module's documentation.
/// Made on that thread (it is neither `Send` nor `Sync`), cheap to clone there.
#[derive(Clone)]
pub struct LocalPublisher {
    shared: Publisher,
    state: Rc<RefCell<State>>,
}

impl std::fmt::Debug for LocalPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &*self.state.borrow() {
            State::Down { .. } => "down",
            State::Connecting => "connecting",
            State::Up(_) => "up",
            State::SharedOnly => "shared only",
        };
        f.debug_struct("LocalPublisher")
            .field("shared", &self.shared)
            .field("state", &state)
            .finish()
    }
}

impl LocalPublisher {
    /// A publisher for this thread beside `shared`. It connects on its first publish; until
    /// then, and whenever its connection is not up, `shared` publishes. The thread must run a
    /// tokio `LocalSet` (an actix-web worker does).
    pub fn new(shared: Publisher) -> Self {
        Self {
            shared,
            state: Rc::new(RefCell::new(State::Down {
                retry_at: None,
                failures: 0,
            })),
        }
    }

    /// Opens this thread's connection as soon as the shared publisher is connected, instead
    /// of on the first publish. Must be called on the thread, inside its `LocalSet`.
    pub fn connect_early(&self) {
        if matches!(&*self.state.borrow(), State::SharedOnly) {
            return;
        }
        let local = self.clone();
        tokio::task::spawn_local(async move {
            while !local.shared.wait_connected(Duration::from_secs(60)).await {}
            let _ = local.link();
        });
    }

    /// One that never opens a connection of its own: every publish goes through `shared`
    /// (`PUBLISH_PER_WORKER=false`).
    pub fn shared_only(shared: Publisher) -> Self {
        Self {
            shared,
            state: Rc::new(RefCell::new(State::SharedOnly)),
        }
    }

    /// [`Publisher::publish`], from this thread.
    pub async fn publish(&self, message: Outgoing<'_>, properties: BasicProperties) -> Result<(), PublishError> {
        self.publish_within(message, properties, self.shared.inner.confirm_timeout)
            .await
    }

    /// [`Publisher::publish_within`], from this thread: through its own connection when that
    /// is up, else through the shared publisher.
    pub async fn publish_within(
        &self,
        message: Outgoing<'_>,
        properties: BasicProperties,
        deadline: Duration,
    ) -> Result<(), PublishError> {
        let Some(link) = self.link() else {
            return self.shared.publish_within(message, properties, deadline).await;
        };
        let told = link.publish(message, properties);
        self.shared.inner.counters.worker_publishes.inc();
        let result = match tokio::time::timeout(deadline, told).await {
            Ok(Ok(Outcome::Acked)) => {
                let futile = &link.followed.futile_replacements;
                if futile.load(Ordering::Relaxed) != 0 {
                    futile.store(0, Ordering::SeqCst);
                }
                Ok(())
            }
            Ok(Ok(Outcome::Returned)) => Err(PublishError::Unroutable),
            // The reader counted it and dropped the connection.
            Ok(Ok(Outcome::Nacked)) => Err(PublishError::Nacked),
            Ok(Err(_)) => Err(PublishError::Lost),
            // Only this publish gives up: the others in flight keep their own deadlines, and
            // the connection goes only once a confirm is overdue past the confirm timeout.
            Err(_) => Err(PublishError::Timeout(deadline)),
        };
        self.shared.record(&result);
        result
    }

    /// The connection to publish on, if it is up; else starts connecting when it may.
    fn link(&self) -> Option<Rc<Link>> {
        let mut state = self.state.borrow_mut();
        match &*state {
            State::Up(link)
                if !link.dead.get() && !link.retiring.get() && !link.followed.condemned.load(Ordering::Relaxed) =>
            {
                return Some(Rc::clone(link));
            }
            State::Up(link) if !link.dead.get() => {
                // The shared connection is being replaced: follow it to wherever it goes, once
                // what is in flight here is settled.
                link.retire();
                *state = State::Down {
                    retry_at: None,
                    failures: 0,
                };
                return None;
            }
            State::Up(link) => {
                // Dead. One that died before its first ack keeps the backoff going.
                let failures = if link.acked.get() { 0 } else { link.failures_before + 1 };
                *state = State::Down {
                    retry_at: Some(Instant::now() + backoff(failures.saturating_sub(1))),
                    failures,
                };
                return None;
            }
            State::Connecting | State::SharedOnly => return None,
            State::Down { retry_at: Some(at), .. } if Instant::now() < *at => return None,
            State::Down { .. } => {}
        }
        let failures = match &*state {
            State::Down { failures, .. } => *failures,
            _ => 0,
        };
        // The node the shared publisher reached (and declared the topology on).
        let followed = self.shared.current_link().filter(|link| link.usable())?;
        *state = State::Connecting;
        drop(state);
        tokio::task::spawn_local(self.clone().connect(followed, failures));
        None
    }

    async fn connect(self, followed: Arc<super::Link>, failures: u32) {
        // Should this task end in a panic, the thread is not left "connecting" for good.
        let _reset = ResetConnecting(Rc::clone(&self.state));
        let opened = tokio::time::timeout(CONNECT_TIMEOUT, self.open(followed, failures)).await;
        let mut state = self.state.borrow_mut();
        let why = match opened {
            Ok(Ok(link)) => {
                *state = State::Up(link);
                return;
            }
            Ok(Err(OpenError::Never(why))) => {
                log::warn!(
                    "a worker cannot open a broker connection of its own: connection={} error=\"{why}\"; its \
                     publishes go through the shared connection",
                    self.shared.inner.name
                );
                *state = State::SharedOnly;
                return;
            }
            Ok(Err(OpenError::Retry(why))) => why,
            Err(_) => format!("no answer within {CONNECT_TIMEOUT:?}"),
        };
        let delay = backoff(failures);
        log::warn!(
            "a worker's own broker connection could not be opened: connection={} error=\"{why}\" attempt={} \
             retry_in_ms={}; publishing through the shared connection meanwhile",
            self.shared.inner.name,
            failures + 1,
            delay.as_millis()
        );
        *state = State::Down {
            retry_at: Some(Instant::now() + delay),
            failures: failures + 1,
        };
    }

    async fn open(&self, followed: Arc<super::Link>, failures: u32) -> Result<Rc<Link>, OpenError> {
        let address = followed.address;
        let addresses = &self.shared.inner.settings.addresses;
        let url = addresses
            .get(address)
            .ok_or_else(|| format!("no broker address {address}"))?;
        let uri = addresses.uri(address)?;
        let login = login(&uri)?;
        let stream = tokio::net::TcpStream::connect((uri.authority.host.as_str(), uri.authority.port))
            .await
            .map_err(|error| format!("{}: {error}", url.redacted()))?;
        stream.set_nodelay(true).map_err(|error| error.to_string())?;
        let stream = stream.into_std().map_err(|error| error.to_string())?;
        let socket = stream.try_clone().map_err(|error| error.to_string())?;
        let stream = tokio::net::TcpStream::from_std(stream).map_err(|error| error.to_string())?;
        let stream = lapin::tcp::AsyncTcpStream::Plain(async_compat::Compat::new(stream));
        let stream = match uri.scheme {
            AMQPScheme::AMQP => stream,
            AMQPScheme::AMQPS => stream
                .into_tls(&uri.authority.host, url.tls.config.as_ref())
                .await
                .map_err(|error| format!("{}: TLS: {error}", url.redacted()))?,
        };
        let name = format!(
            "{} worker={} host={}",
            self.shared.inner.name,
            std::thread::current().name().unwrap_or("?"),
            crate::service::hostname()
        );
        let (mut reader, mut writer) = stream.split();
        let mut buffer = Vec::with_capacity(64 * 1024);
        let tuned = handshake(&mut reader, &mut writer, &mut buffer, &uri, login, &name)
            .await
            .map_err(|error| format!("{}: {error}", url.redacted()))?;
        let link = Rc::new(Link {
            out: RefCell::new(Vec::with_capacity(64 * 1024)),
            confirms: RefCell::default(),
            flush: Notify::new(),
            dead: Cell::new(false),
            retiring: Cell::new(false),
            last_read: Cell::new(Instant::now()),
            frame_max: tuned.frame_max,
            heartbeat: tuned.heartbeat,
            socket,
            followed,
            shared: self.shared.clone(),
            failures_before: failures,
            acked: Cell::new(false),
            last_write: Cell::new(Instant::now()),
        });
        self.shared.inner.counters.worker_connections.inc();
        tokio::task::spawn_local(write_loop(KillOnDrop(Rc::clone(&link)), writer));
        tokio::task::spawn_local(read_loop(KillOnDrop(Rc::clone(&link)), reader, buffer));
        tokio::task::spawn_local(watch(KillOnDrop(Rc::clone(&link))));
        log::info!(
            "a worker's own broker connection is up: connection=\"{name}\" url={}",
            url.redacted()
        );
        Ok(link)
    }
}

/// Why a thread's connection could not be opened.
enum OpenError {
    /// Worth another try later.
    Retry(String),
    /// Never will be: the URL asks for what a worker's connection does not do.
    Never(String),
}

impl From<String> for OpenError {
    fn from(why: String) -> Self {
        Self::Retry(why)
    }
}

/// The SASL mechanism and response for `uri`'s login.
fn login(uri: &AMQPUri) -> Result<(&'static str, String), OpenError> {
    match uri.query.auth_mechanism.unwrap_or_default() {
        SASLMechanism::Plain => Ok((
            "PLAIN",
            format!(
                "\0{}\0{}",
                uri.authority.userinfo.username, uri.authority.userinfo.password
            ),
        )),
        SASLMechanism::External => Ok(("EXTERNAL", String::new())),
        other => Err(OpenError::Never(format!(
            "the auth mechanism {other:?} is not supported on a worker's own connection"
        ))),
    }
}

/// What the handshake settled.
struct Tuned {
    frame_max: usize,
    heartbeat: Option<Duration>,
}

async fn handshake<S: AsyncRead + AsyncWrite>(
    reader: &mut ReadHalf<S>,
    writer: &mut WriteHalf<S>,
    buffer: &mut Vec<u8>,
    uri: &AMQPUri,
    (mechanism, response): (&str, String),
    name: &str,
) -> Result<Tuned, String> {
    send(writer, &AMQPFrame::ProtocolHeader(ProtocolVersion::amqp_0_9_1())).await?;
    match read_method(reader, buffer).await? {
        AMQPClass::Connection(connection::AMQPMethod::Start(_)) => {}
        other => return Err(format!("expected connection.start, got {other:?}")),
    }
    // A refused login is then a connection.close that says why, not a bare end of the socket.
    let mut capabilities = FieldTable::default();
    for capability in ["authentication_failure_close", "publisher_confirms", "basic.nack"] {
        capabilities.insert(capability.into(), AMQPValue::Boolean(true));
    }
    let mut properties = FieldTable::default();
    properties.insert("capabilities".into(), AMQPValue::FieldTable(capabilities));
    properties.insert("connection_name".into(), AMQPValue::LongString(LongString::from(name)));
    properties.insert(
        "product".into(),
        AMQPValue::LongString(LongString::from("webhook-inbox")),
    );
    let start_ok = connection::StartOk {
        client_properties: properties,
        mechanism: mechanism.into(),
        response: LongString::from(response),
        locale: "en_US".into(),
    };
    send(writer, &connection_method(connection::AMQPMethod::StartOk(start_ok))).await?;
    let tune = match read_method(reader, buffer).await? {
        AMQPClass::Connection(connection::AMQPMethod::Tune(tune)) => tune,
        AMQPClass::Connection(connection::AMQPMethod::Close(close)) => {
            return Err(format!("the broker refused the login: {}", close.reply_text));
        }
        other => return Err(format!("expected connection.tune, got {other:?}")),
    };
    // The lower of the two where both set one; 0 (none) only if both say so.
    let lower = |ours: Option<u32>, theirs: u32| match (ours.filter(|&n| n > 0), theirs) {
        (Some(ours), 0) => ours,
        (Some(ours), theirs) => ours.min(theirs),
        (None, theirs) => theirs,
    };
    // No limit on either side: lapin's default, well above the spec's minimum of 4096.
    let frame_max = match lower(uri.query.frame_max, tune.frame_max) {
        0 => DEFAULT_FRAME_MAX,
        n => n,
    };
    // `?heartbeat=0` in the URL turns heartbeats off, as it does for lapin.
    let heartbeat = match uri.query.heartbeat {
        Some(0) => 0,
        ours => lower(ours.map(u32::from), u32::from(tune.heartbeat)),
    };
    let tune_ok = connection::TuneOk {
        channel_max: 1,
        frame_max,
        heartbeat: u16::try_from(heartbeat).unwrap_or(u16::MAX),
    };
    send(writer, &connection_method(connection::AMQPMethod::TuneOk(tune_ok))).await?;
    let open = connection::Open {
        virtual_host: uri.vhost.as_str().into(),
    };
    send(writer, &connection_method(connection::AMQPMethod::Open(open))).await?;
    match read_method(reader, buffer).await? {
        AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)) => {}
        AMQPClass::Connection(connection::AMQPMethod::Close(close)) => {
            return Err(format!("the broker refused the virtual host: {}", close.reply_text));
        }
        other => return Err(format!("expected connection.open-ok, got {other:?}")),
    }
    let open = AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {}));
    send(writer, &AMQPFrame::Method(CHANNEL, open)).await?;
    match read_method(reader, buffer).await? {
        AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)) => {}
        other => return Err(format!("expected channel.open-ok, got {other:?}")),
    }
    let select = AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select { nowait: false }));
    send(writer, &AMQPFrame::Method(CHANNEL, select)).await?;
    match read_method(reader, buffer).await? {
        AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_)) => {}
        other => return Err(format!("expected confirm.select-ok, got {other:?}")),
    }
    Ok(Tuned {
        frame_max: usize::try_from(frame_max).unwrap_or(usize::MAX),
        heartbeat: (heartbeat > 0).then(|| Duration::from_secs(u64::from(heartbeat))),
    })
}

fn connection_method(method: connection::AMQPMethod) -> AMQPFrame {
    AMQPFrame::Method(0, AMQPClass::Connection(method))
}

async fn send<S: AsyncWrite>(writer: &mut WriteHalf<S>, frame: &AMQPFrame) -> Result<(), String> {
    let mut out = Vec::new();
    write_frame(&mut out, frame)?;
    writer.write_all(&out).await.map_err(|error| error.to_string())?;
    writer.flush().await.map_err(|error| error.to_string())
}

/// The next frame, reading into `buffer` until one is whole.
async fn read_frame<S: AsyncRead>(reader: &mut ReadHalf<S>, buffer: &mut Vec<u8>) -> Result<AMQPFrame, String> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match parse_frame(buffer.as_slice()) {
            Ok((rest, frame)) => {
                let used = buffer.len() - rest.len();
                buffer.drain(..used);
                return Ok(frame);
            }
            Err(error) if error.is_incomplete() => {}
            Err(error) => return Err(format!("an unreadable frame from the broker: {error:?}")),
        }
        let read = reader.read(&mut chunk).await.map_err(|error| error.to_string())?;
        if read == 0 {
            return Err("the broker closed the connection".to_owned());
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

/// The next method frame, skipping heartbeats (the handshake expects nothing else).
async fn read_method<S: AsyncRead>(reader: &mut ReadHalf<S>, buffer: &mut Vec<u8>) -> Result<AMQPClass, String> {
    loop {
        match read_frame(reader, buffer).await? {
            AMQPFrame::Method(_, method) => return Ok(method),
            AMQPFrame::Heartbeat => {}
            other => return Err(format!("expected a method frame, got {other:?}")),
        }
    }
}

async fn write_loop<S: AsyncWrite>(link: KillOnDrop, mut writer: WriteHalf<S>) {
    let mut spare = Vec::with_capacity(64 * 1024);
    while !link.dead.get() {
        link.flush.notified().await;
        std::mem::swap(&mut spare, &mut *link.out.borrow_mut());
        if spare.is_empty() || link.dead.get() {
            continue;
        }
        let written = async {
            writer.write_all(&spare).await?;
            writer.flush().await
        }
        .await;
        if let Err(error) = written {
            link.drop_for(&format!("writing to the broker failed: {error}"));
            break;
        }
        spare.clear();
        link.last_write.set(Instant::now());
    }
}

/// Once a tick, on its own so that a write the broker does not take (a resource alarm, a
/// partition) cannot hold it up: overdue confirms and missed heartbeats drop the connection
/// (which ends the stuck write), heartbeats go out, and a connection whose shared one was
/// replaced retires and then closes.
async fn watch(link: KillOnDrop) {
    // Heartbeats at half the negotiated interval.
    let beat = link.heartbeat.map(|every| every / 2);
    let mut ticks = tokio::time::interval_at(Instant::now() + TICK, TICK);
    while !link.dead.get() {
        ticks.tick().await;
        if link.dead.get() {
            break;
        }
        if let Some(why) = link.checkup(beat) {
            link.drop_for(&why);
            break;
        }
        if link.followed.condemned.load(Ordering::Relaxed) {
            link.retire();
        }
        if link.retiring.get() && link.confirms.borrow().pending.is_empty() {
            link.kill();
            break;
        }
    }
}

impl Link {
    /// Once a tick: whether the connection is stuck (a confirm overdue, the broker's
    /// heartbeats missed), and a heartbeat to send when nothing was written for half the
    /// interval.
    fn checkup(&self, beat: Option<Duration>) -> Option<String> {
        let confirm_timeout = self.shared.inner.confirm_timeout;
        if let Some(oldest) = self.confirms.borrow().oldest()
            && oldest.elapsed() > confirm_timeout
        {
            return Some(format!("a publish had no confirm within {confirm_timeout:?}"));
        }
        let beat = beat?;
        if self.last_read.get().elapsed() > beat * 4 {
            return Some("the broker's heartbeats stopped".to_owned());
        }
        if self.last_write.get().elapsed() >= beat {
            if let Err(error) = write_frame(&mut self.out.borrow_mut(), &AMQPFrame::Heartbeat) {
                return Some(error);
            }
            self.flush.notify_one();
        }
        None
    }
}

async fn read_loop<S: AsyncRead>(link: KillOnDrop, mut reader: ReadHalf<S>, mut buffer: Vec<u8>) {
    // After a basic.return, its content header names the message.
    let mut returning = false;
    while !link.dead.get() {
        let frame = match read_frame(&mut reader, &mut buffer).await {
            Ok(frame) => frame,
            Err(error) => {
                if !link.dead.get() {
                    log::warn!("reading from a worker's own broker connection failed: {error}; dropping it");
                }
                break;
            }
        };
        link.last_read.set(Instant::now());
        match frame {
            AMQPFrame::Method(_, AMQPClass::Basic(basic::AMQPMethod::Ack(ack))) => {
                link.acked.set(true);
                let settled = link.confirms.borrow_mut().settle(ack.delivery_tag, ack.multiple, true);
                for (tell, outcome) in settled {
                    let _ = tell.send(outcome);
                }
            }
            // Acted on here, whether or not its publish still waits for the answer.
            AMQPFrame::Method(_, AMQPClass::Basic(basic::AMQPMethod::Nack(nack))) => {
                let settled = link
                    .confirms
                    .borrow_mut()
                    .settle(nack.delivery_tag, nack.multiple, false);
                let count = settled.len();
                for (tell, outcome) in settled {
                    let _ = tell.send(outcome);
                }
                link.nacked(count);
                break;
            }
            AMQPFrame::Method(_, AMQPClass::Basic(basic::AMQPMethod::Return(_))) => returning = true,
            AMQPFrame::Header(_, header) if returning => {
                returning = false;
                link.confirms
                    .borrow_mut()
                    .returned(header.properties.message_id().as_ref());
            }
            AMQPFrame::Method(_, AMQPClass::Channel(channel::AMQPMethod::Close(close))) => {
                log::warn!(
                    "the broker closed a worker's own channel: {} {}; dropping its connection",
                    close.reply_code,
                    close.reply_text
                );
                break;
            }
            AMQPFrame::Method(_, AMQPClass::Connection(connection::AMQPMethod::Close(close))) => {
                log::warn!(
                    "the broker closed a worker's own connection: {} {}",
                    close.reply_code,
                    close.reply_text
                );
                break;
            }
            // Heartbeats (counted above) and the bodies of returned messages.
            _ => {}
        }
    }
    link.kill();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> Option<ShortString> {
        Some(ShortString::from(text))
    }

    #[test]
    fn a_single_ack_settles_its_own_tag_only() {
        let mut confirms = Confirms::default();
        assert_eq!(confirms.push(id("a"), Instant::now(), 'a'), 1);
        assert_eq!(confirms.push(id("b"), Instant::now(), 'b'), 2);
        assert_eq!(confirms.push(id("c"), Instant::now(), 'c'), 3);
        assert_eq!(confirms.settle(2, false, true), vec![('b', Outcome::Acked)]);
        assert_eq!(confirms.settle(2, false, true), vec![]);
        assert_eq!(
            confirms.settle(3, true, true),
            vec![('a', Outcome::Acked), ('c', Outcome::Acked)]
        );
        assert!(confirms.pending.is_empty());
    }

    #[test]
    fn a_multiple_nack_settles_every_earlier_tag_and_no_later_one() {
        let mut confirms = Confirms::default();
        for name in ['a', 'b', 'c'] {
            confirms.push(None, Instant::now(), name);
        }
        assert_eq!(
            confirms.settle(2, true, false),
            vec![('a', Outcome::Nacked), ('b', Outcome::Nacked)]
        );
        assert_eq!(confirms.pending.len(), 1);
        assert_eq!(confirms.settle(3, false, true), vec![('c', Outcome::Acked)]);
    }

    #[test]
    fn a_return_marks_the_message_it_names_even_inside_a_multiple_ack() {
        let mut confirms = Confirms::default();
        confirms.push(id("a"), Instant::now(), 'a');
        confirms.push(id("b"), Instant::now(), 'b');
        confirms.push(id("b"), Instant::now(), 'B');
        confirms.returned(id("b").as_ref());
        assert_eq!(
            confirms.settle(3, true, true),
            vec![('a', Outcome::Acked), ('b', Outcome::Returned), ('B', Outcome::Acked)]
        );
    }

    #[test]
    fn a_return_of_an_unknown_message_marks_nothing() {
        let mut confirms = Confirms::default();
        confirms.push(id("a"), Instant::now(), 'a');
        confirms.returned(id("z").as_ref());
        assert_eq!(confirms.settle(1, false, true), vec![('a', Outcome::Acked)]);
    }

    #[test]
    fn tags_keep_counting_after_settles_and_abandon_forgets_what_waits() {
        let mut confirms = Confirms::default();
        confirms.push(None, Instant::now(), 1);
        confirms.settle(1, false, true);
        assert_eq!(confirms.push(None, Instant::now(), 2), 2);
        assert_eq!(confirms.push(None, Instant::now(), 3), 3);
        assert_eq!(confirms.abandon(), 2);
        assert_eq!(confirms.settle(3, true, true), vec![]);
    }

    #[test]
    fn body_frames_are_what_the_protocol_crate_reads_back() {
        let body: Vec<u8> = (0..=255).collect();
        let mut out = Vec::new();
        write_body_frames(&mut out, &body, 108);
        let mut input = out.as_slice();
        let mut parts = Vec::new();
        while !input.is_empty() {
            let (rest, frame) = parse_frame(input).expect("whole frames");
            let AMQPFrame::Body(CHANNEL, part) = frame else {
                panic!("not a body frame on channel {CHANNEL}: {frame:?}");
            };
            parts.push(part);
            input = rest;
        }
        assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), vec![100, 100, 56]);
        assert_eq!(parts.concat(), body);
        out.clear();
        write_body_frames(&mut out, b"", 108);
        assert!(out.is_empty());
    }
}
