//! Private servers for tests that need what the shared ones must never be changed for: TLS
//! listeners with certificates made for the test, password users, client certificates.
//!
//! [`PrivateRabbitMq`] runs a RabbitMQ node of its own (its own node name, ports, `HOME` with
//! an Erlang cookie, data and log directories; no plugins) from the installed
//! `rabbitmq-server`, with only a TLS listener. [`PrivateMariaDb`] runs a MariaDB server of its
//! own from `mariadb-install-db` and `mariadbd`, with TLS and a password user. [`TestCa`] makes
//! the certificates. Everything lives in one temporary directory; dropping the server stops
//! its whole process group and removes the directory, also when the test fails.
//!
//! Starting takes a few seconds (RabbitMQ) and about two (MariaDB); a node holds about 130 MB.

use std::fmt;
use std::io::Read as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

use crate::unique_suffix;

/// How long a private server may take to start (CI machines are shared and slow).
const START_DEADLINE: Duration = Duration::from_secs(120);
/// How long a private server gets to stop on SIGTERM before it is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(20);

/// A directory of its own, removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `webhook-inbox-{what}-<random>` in the system's temporary directory.
    pub fn new(what: &str) -> Self {
        let path = std::env::temp_dir().join(format!("webhook-inbox-{what}-{}", unique_suffix()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `text` to `name` inside the directory and returns the file's path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; the server binds it moments later).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct Issued {
    /// The certificate, PEM.
    pub cert: String,
    /// Its private key, PEM (PKCS#8).
    pub key: String,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued").finish_non_exhaustive()
    }
}

impl Issued {
    /// Writes `{stem}.pem` and `{stem}.key` into `dir`; returns their paths.
    pub fn write(&self, dir: &TempDir, stem: &str) -> (PathBuf, PathBuf) {
        let cert = dir.write(&format!("{stem}.pem"), &self.cert);
        let key = dir.write(&format!("{stem}.key"), &self.key);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        (cert, key)
    }
}

/// A certificate authority made for one test.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

/// When a certificate is valid, relative to now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// From yesterday to tomorrow.
    Current,
    /// From three days ago to yesterday.
    Expired,
}

impl TestCa {
    /// A new CA named `name` (its certificate's common name), valid from yesterday for a week.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(7);
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Self {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// The CA's certificate, PEM: what a client trusts (`AMQP_CA_FILE`, `ssl-ca`).
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A server certificate for `localhost` and `127.0.0.1`.
    pub fn server(&self, validity: Validity) -> Issued {
        self.server_for(&["localhost", "127.0.0.1"], validity)
    }

    /// A server certificate for `names` (host names or IP addresses).
    pub fn server_for(&self, names: &[&str], validity: Validity) -> Issued {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().map_or("server", String::as_str));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params, validity)
    }

    /// A client certificate with common name `name`.
    pub fn client(&self, name: &str) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, Validity::Current)
    }

    fn issue(&self, mut params: CertificateParams, validity: Validity) -> Issued {
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        let now = time::OffsetDateTime::now_utc();
        (params.not_before, params.not_after) = match validity {
            Validity::Current => (now - time::Duration::days(1), now + time::Duration::days(1)),
            Validity::Expired => (now - time::Duration::days(3), now - time::Duration::days(1)),
        };
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap().pem();
        Issued {
            cert,
            key: key.serialize_pem(),
        }
    }
}

/// A process group of our own: SIGTERM to all of it on drop, SIGKILL to what is left after
/// [`STOP_DEADLINE`].
#[derive(Debug)]
struct ProcessGroup {
    child: Child,
    what: &'static str,
}

impl ProcessGroup {
    /// Starts `command` as the leader of a new process group.
    fn spawn(mut command: Command, what: &'static str, log: &Path) -> Self {
        let out = std::fs::File::create(log).unwrap();
        let err = out.try_clone().unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {what}: {error}"));
        Self { child, what }
    }

    fn signal(&self, signal: &str) -> bool {
        Command::new("kill")
            .args([signal, "--", &format!("-{}", self.child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    /// Whether the leader has exited (its children may still run).
    fn leader_exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.signal("-TERM");
        let started = Instant::now();
        // `kill -0` succeeds while any process of the group is left.
        while started.elapsed() < STOP_DEADLINE {
            let _ = self.child.try_wait();
            if !self.signal("-0") {
                let _ = self.child.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{} did not stop within {STOP_DEADLINE:?}: killing it", self.what);
        self.signal("-KILL");
        let _ = self.child.wait();
    }
}

/// Waits until `addr` accepts TCP connections; panics with the end of `log` if the server's
/// leader process exits first or [`START_DEADLINE`] passes.
fn wait_for_port(group: &mut ProcessGroup, addr: SocketAddr, log: &Path) {
    let started = Instant::now();
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        let failed = if group.leader_exited() {
            Some("exited")
        } else if started.elapsed() > START_DEADLINE {
            Some("did not listen in time")
        } else {
            None
        };
        if let Some(failed) = failed {
            panic!("{} {failed} ({addr}); its log ends:\n{}", group.what, tail(log));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tail(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Where the installed RabbitMQ's own scripts are (Debian's `/usr/sbin` wrappers switch to
/// the `rabbitmq` user and its `HOME`, which would lose our cookie).
const RABBITMQ_BIN: &str = "/usr/lib/rabbitmq/bin";

/// A RabbitMQ node of its own with one TLS listener on 127.0.0.1, stopped when dropped.
///
/// `guest`/`guest` may log in (from loopback, as RabbitMQ allows); [`PrivateRabbitMq::add_user`]
/// adds more.
#[derive(Debug)]
pub struct PrivateRabbitMq {
    // Dropped in this order: the node stops, then its directory goes.
    #[expect(dead_code, reason = "held for its Drop, which stops the node")]
    group: ProcessGroup,
    node: String,
    port: u16,
    dir: TempDir,
}

impl PrivateRabbitMq {
    /// Starts a node presenting `server` (issued by `ca`), and waits until it listens. With
    /// `require_client_cert` the node refuses clients without a certificate issued by `ca`.
    pub fn start(ca: &TestCa, server: &Issued, require_client_cert: bool) -> Self {
        let dir = TempDir::new("rabbitmq");
        let ca_file = dir.write("ca.pem", ca.pem());
        let (cert_file, key_file) = server.write(&dir, "server");
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let cookie = home.join(".erlang.cookie");
        std::fs::write(&cookie, unique_suffix().to_uppercase()).unwrap();
        std::fs::set_permissions(&cookie, std::fs::Permissions::from_mode(0o600)).unwrap();
        let port = free_port();
        let config = dir.write(
            "rabbitmq.conf",
            &format!(
                "listeners.tcp = none\n\
                 listeners.ssl.default = 127.0.0.1:{port}\n\
                 ssl_options.cacertfile = {}\n\
                 ssl_options.certfile = {}\n\
                 ssl_options.keyfile = {}\n\
                 ssl_options.verify = verify_peer\n\
                 ssl_options.fail_if_no_peer_cert = {require_client_cert}\n",
                ca_file.display(),
                cert_file.display(),
                key_file.display()
            ),
        );
        dir.write("enabled_plugins", "[].\n");
        dir.write("rabbitmq-env.conf", "");
        let node = format!("webhooks-test-{}@localhost", unique_suffix());
        let mut command = Command::new(format!("{RABBITMQ_BIN}/rabbitmq-server"));
        Self::environment(&mut command, &dir, &node);
        command
            .env("RABBITMQ_CONFIG_FILE", &config)
            .env("RABBITMQ_DIST_PORT", free_port().to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.path().join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.path().join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.path().join("enabled_plugins"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", dir.path().join("advanced.config"))
            .env("RABBITMQ_PID_FILE", dir.path().join("rabbitmq.pid"));
        let log = dir.path().join("server.log");
        let mut group = ProcessGroup::spawn(command, "the private RabbitMQ node", &log);
        wait_for_port(&mut group, SocketAddr::from(([127, 0, 0, 1], port)), &log);
        Self { group, node, port, dir }
    }

    /// The environment every command for this node needs: its name, and `HOME` for the cookie.
    fn environment(command: &mut Command, dir: &TempDir, node: &str) {
        command
            .current_dir(dir.path())
            .env("HOME", dir.path().join("home"))
            .env("RABBITMQ_NODENAME", node)
            .env("RABBITMQ_CONF_ENV_FILE", dir.path().join("rabbitmq-env.conf"));
    }

    /// The TLS port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `amqps://{user}:{password}@{host}:{port}/%2f`; `host` is `localhost` or `127.0.0.1`
    /// (both are in the certificates [`TestCa::server`] issues).
    pub fn amqps_url(&self, host: &str, user: &str, password: &str) -> String {
        format!("amqps://{user}:{password}@{host}:{}/%2f", self.port)
    }

    /// Runs `rabbitmqctl` against this node; panics if it fails.
    pub fn ctl(&self, args: &[&str]) -> String {
        let mut command = Command::new(format!("{RABBITMQ_BIN}/rabbitmqctl"));
        Self::environment(&mut command, &self.dir, &self.node);
        let output = command.arg("-n").arg(&self.node).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "rabbitmqctl {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Adds a user with every permission on `/`.
    pub fn add_user(&self, user: &str, password: &str) {
        self.ctl(&["add_user", user, password]);
        self.ctl(&["set_permissions", "-p", "/", user, ".*", ".*", ".*"]);
    }
}

/// A MariaDB server of its own on 127.0.0.1 with TLS, stopped when dropped.
///
/// `root` logs in without a password (for the test's own setup);
/// [`PrivateMariaDb::add_user`] adds password users.
#[derive(Debug)]
pub struct PrivateMariaDb {
    #[expect(dead_code, reason = "held for its Drop, which stops the server")]
    group: ProcessGroup,
    port: u16,
    dir: TempDir,
}

impl PrivateMariaDb {
    /// Initialises a data directory and starts `mariadbd` presenting `server` (issued by `ca`),
    /// and waits until it listens.
    pub fn start(ca: &TestCa, server: &Issued) -> Self {
        let dir = TempDir::new("mariadb");
        let ca_file = dir.write("ca.pem", ca.pem());
        let (cert_file, key_file) = server.write(&dir, "server");
        let data = dir.path().join("data");
        // Temporary tables of its own: /tmp is shared with every other process on the machine.
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let installed = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .args([
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ])
            .output()
            .unwrap_or_else(|error| panic!("cannot run mariadb-install-db: {error}"));
        assert!(
            installed.status.success(),
            "mariadb-install-db failed: {}{}",
            String::from_utf8_lossy(&installed.stdout),
            String::from_utf8_lossy(&installed.stderr)
        );
        let port = free_port();
        let mut command = Command::new("mariadbd");
        command
            .current_dir(dir.path())
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg(format!("--socket={}", dir.path().join("mariadb.sock").display()))
            .arg(format!("--pid-file={}", dir.path().join("mariadb.pid").display()))
            .arg(format!("--port={port}"))
            .args(["--user=root", "--bind-address=127.0.0.1", "--skip-name-resolve"])
            .args(["--innodb-buffer-pool-size=16M", "--skip-log-bin"])
            .arg(format!("--ssl-ca={}", ca_file.display()))
            .arg(format!("--ssl-cert={}", cert_file.display()))
            .arg(format!("--ssl-key={}", key_file.display()));
        let log = dir.path().join("server.log");
        let mut group = ProcessGroup::spawn(command, "the private MariaDB server", &log);
        wait_for_port(&mut group, SocketAddr::from(([127, 0, 0, 1], port)), &log);
        Self { group, port, dir }
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mysql://{user}:{password}@127.0.0.1:{port}/{database}`, followed by `query`
    /// (`?ssl-mode=…` or empty).
    pub fn url(&self, user: &str, password: &str, database: &str, query: &str) -> String {
        format!("mysql://{user}:{password}@127.0.0.1:{}/{database}{query}", self.port)
    }

    /// Runs `sql` as root over the server's socket; panics if it fails.
    pub fn sql(&self, sql: &str) {
        let output = Command::new("mariadb")
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.dir.path().join("mariadb.sock").display()))
            .args(["-u", "root", "-e", sql])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Adds `user` with `password` and every privilege on `database` (which need not exist);
    /// with `require_tls` the server refuses that user's logins without TLS.
    pub fn add_user(&self, user: &str, password: &str, database: &str, require_tls: bool) {
        let require = if require_tls { " REQUIRE SSL" } else { "" };
        self.sql(&format!(
            "CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'{require}; \
             GRANT ALL PRIVILEGES ON `{database}`.* TO '{user}'@'%';"
        ));
    }
}
