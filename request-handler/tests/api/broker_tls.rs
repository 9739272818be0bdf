//! `amqps://` against a RabbitMQ node of the test's own with a TLS listener that asks for a
//! client certificate: a signed request is confirmed over TLS, and every way the connection
//! can be refused gives one line naming the variable to fix.

use std::time::Duration;

use lapin::options::BasicGetOptions;
use testkit::private::{PrivateRabbitMq, TempDir, TestCa, Validity};
use testkit::{Env, TestBroker, eventually};
use webhook_core::broker::{self, BrokerSettings};
use webhook_core::config::Vars;

use crate::helpers::{TestApp, env};

/// The client side of one TLS setup: files in a directory of their own.
struct ClientFiles {
    dir: TempDir,
    ca: String,
    cert: String,
    key: String,
}

impl ClientFiles {
    fn new(trusted: &TestCa, client_ca: &TestCa) -> Self {
        let dir = TempDir::new("amqps-client");
        let ca = dir.write("ca.pem", trusted.pem()).display().to_string();
        let (cert, key) = client_ca.client("webhooks-test").write(&dir, "client");
        Self {
            ca,
            cert: cert.display().to_string(),
            key: key.display().to_string(),
            dir,
        }
    }

    /// The broker variables for `url` with this CA file and client certificate.
    fn env(&self, url: &str) -> Env {
        Env::new()
            .with("AMQP_URL", url)
            .with("AMQP_CA_FILE", &self.ca)
            .with("AMQP_CLIENT_CERT", &self.cert)
            .with("AMQP_CLIENT_KEY", &self.key)
    }
}

fn settings(env: &Env) -> BrokerSettings {
    let lookup = env.lookup();
    BrokerSettings::from_vars(&Vars::new(&lookup)).unwrap()
}

/// Connects once with `env` and returns the error's line.
async fn refused(env: &Env) -> String {
    let settings = settings(env);
    let error = broker::connect(&settings.addresses, "tls-test").await.unwrap_err();
    let line = error.to_string();
    eprintln!("{line}");
    assert!(!line.contains('\n'), "not one line: {line}");
    line
}

#[tokio::test]
async fn a_signed_request_is_confirmed_over_amqps_with_a_client_certificate() {
    let ca = TestCa::new("webhooks test CA");
    let node = PrivateRabbitMq::start(&ca, &ca.server(Validity::Current), true);
    let client = ClientFiles::new(&ca, &ca);
    let url = node.amqps_url("localhost", "guest", "guest");

    let broker = TestBroker::new();
    // One worker: once its own connection is up, every publish goes through it.
    let mut handler_env = env(&broker).with("HANDLER_WORKERS", 1);
    for name in ["AMQP_URL", "AMQP_CA_FILE", "AMQP_CLIENT_CERT", "AMQP_CLIENT_KEY"] {
        handler_env.set(name, client.env(&url).lookup()(name).unwrap());
    }
    let app = TestApp::spawn_with(broker, &handler_env).await;
    app.wait_ready().await;
    let response = app
        .post_signed(br#"{"type":"ping"}"#, &[("X-GitHub-Delivery", "tls-1")])
        .await;
    assert_eq!(response.status(), 200);
    // Then through a worker's own connection, over TLS too.
    let warm_ups = app.until_a_worker_connection_is_up().await;
    let before = app.metric("webhook_handler_broker_worker_publishes_total").await;
    let response = app
        .post_signed(br#"{"type":"pong"}"#, &[("X-GitHub-Delivery", "tls-2")])
        .await;
    assert_eq!(response.status(), 200);
    let after = app.metric("webhook_handler_broker_worker_publishes_total").await;
    assert_eq!(after - before, 1.0);

    // The messages are on the private node, read back over TLS as well.
    let settings = settings(&client.env(&url));
    let connection = broker::connect(&settings.addresses, "tls-test-reader").await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    let queue = format!("{}.events", app.broker.prefix());
    let message = eventually("the message in {P}.events", Duration::from_secs(10), || async {
        channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
    })
    .await;
    assert_eq!(message.delivery.data, br#"{"type":"ping"}"#);
    assert_eq!(
        message.delivery.properties.message_id().as_ref().map(|id| id.as_str()),
        Some("tls-1")
    );
    let mut last = None;
    for _ in 0..=warm_ups {
        last = channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap();
    }
    let last = last.expect("the message through the worker's connection");
    assert_eq!(last.delivery.data, br#"{"type":"pong"}"#);
    assert_eq!(
        last.delivery.properties.message_id().as_ref().map(|id| id.as_str()),
        Some("tls-2")
    );
    connection.close().await;
    app.stop().await;
    drop(client.dir);
}

#[tokio::test]
async fn each_refused_tls_connection_names_the_variable_to_fix() {
    let ca = TestCa::new("webhooks test CA");
    // Issued for the address alone, so that `localhost` is a name it does not carry.
    let node = PrivateRabbitMq::start(&ca, &ca.server_for(&["127.0.0.1"], Validity::Current), true);
    let url = node.amqps_url("127.0.0.1", "guest", "guest");
    let good = ClientFiles::new(&ca, &ca);
    let settings = settings(&good.env(&url));
    let connection = broker::connect(&settings.addresses, "tls-test").await.unwrap();
    connection.close().await;

    // A CA file that does not hold the broker's CA.
    let other = TestCa::new("some other CA");
    let wrong_ca = ClientFiles::new(&other, &ca);
    let line = refused(&wrong_ca.env(&url)).await;
    assert!(line.starts_with("AMQP_CA_FILE: the broker's TLS certificate"), "{line}");
    assert!(line.contains("is signed by no CA in AMQP_CA_FILE="), "{line}");

    // The right CA, but no client certificate.
    let line = refused(&Env::new().with("AMQP_URL", &url).with("AMQP_CA_FILE", &good.ca)).await;
    assert!(line.starts_with("AMQP_CLIENT_CERT: the broker at "), "{line}");

    // A client certificate from a CA the broker does not trust.
    let foreign = ClientFiles::new(&ca, &other);
    let line = refused(&foreign.env(&url)).await;
    assert!(line.starts_with("AMQP_CLIENT_CERT=\""), "{line}");
    assert!(line.contains("client certificate"), "{line}");

    // A host name the certificate does not name.
    let line = refused(&good.env(&node.amqps_url("localhost", "guest", "guest"))).await;
    assert!(line.contains("not issued for the host in AMQP_URL"), "{line}");

    // TLS is fine; the password is not.
    let line = refused(&good.env(&node.amqps_url("127.0.0.1", "guest", "wrong-password"))).await;
    assert!(line.starts_with("AMQP_URL=amqps://guest:***@127.0.0.1:"), "{line}");
    assert!(line.contains("refused the user name or password"), "{line}");
    assert!(!line.contains("wrong-password"), "{line}");
}

#[tokio::test]
async fn an_expired_broker_certificate_is_named_as_such() {
    let ca = TestCa::new("webhooks test CA");
    let node = PrivateRabbitMq::start(&ca, &ca.server(Validity::Expired), false);
    let client = ClientFiles::new(&ca, &ca);
    let line = refused(&client.env(&node.amqps_url("127.0.0.1", "guest", "guest"))).await;
    assert!(line.starts_with("AMQP_URL=amqps://guest:***@127.0.0.1:"), "{line}");
    assert!(line.contains("the broker's TLS certificate has expired"), "{line}");
}
