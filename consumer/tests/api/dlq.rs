use consumer::Settings;
use webhook_core::config::Vars;
use webhook_core::dlq;
use webhook_core::service::Selection;

use crate::helpers::{SOON, Services, TestApp, envelope};

#[tokio::test]
async fn dead_letters_are_listed_without_being_consumed_and_replayed_by_id_or_all() {
    let services = Services::new();
    let env = services.env().with("MAX_RETRIES", 1).with("RETRY_DELAYS", "100ms");
    let app = TestApp::spawn(&env).await;
    services
        .execute("ALTER TABLE events ADD CONSTRAINT hold_back CHECK (source <> 'vendor')")
        .await;
    let sender = services.sender().await;
    for id in ["a", "b", "c"] {
        sender
            .event(
                &envelope("vendor", id, "invoice.paid"),
                format!("{{\"id\":\"{id}\"}}").as_bytes(),
            )
            .await;
    }
    testkit::eventually("three dead letters", SOON, || async {
        (services.broker.depth(".dead").await == Some(3)).then_some(())
    })
    .await;

    let lookup = env.lookup();
    let settings = Settings::from_vars(&Vars::new(&lookup)).unwrap();
    let broker = &settings.broker;

    // Listing shows them and leaves them where they are, however often.
    for _ in 0..2 {
        let mut letters = dlq::list(broker, 10).await.unwrap();
        letters.sort_by(|x, y| x.delivery_id.cmp(&y.delivery_id));
        assert_eq!(letters.len(), 3);
        let ids: Vec<_> = letters
            .iter()
            .map(|letter| letter.delivery_id.as_deref().unwrap())
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);
        for letter in &letters {
            assert_eq!(letter.source.as_deref(), Some("vendor"));
            assert_eq!(letter.event_type.as_deref(), Some("invoice.paid"));
            assert_eq!(letter.retry_count, Some(1));
            let error = letter.error.as_deref().unwrap();
            assert!(
                error.starts_with("retries exhausted after 1: ") && error.contains("hold_back"),
                "{error}"
            );
            assert!(letter.dead_lettered_at.is_some());
        }
        let table = dlq::format_table(&letters);
        assert_eq!(table.lines().count(), 4, "{table}");
        dead_letters_ready(&services, 3).await;
    }
    assert_eq!(dlq::list(broker, 2).await.unwrap().len(), 2);
    dead_letters_ready(&services, 3).await;

    // The database accepts them again: replay one by id, with an id that is not there.
    services.execute("ALTER TABLE events DROP CONSTRAINT hold_back").await;
    let report = dlq::replay(broker, &Selection::Ids(vec!["b".to_owned(), "nope".to_owned()]))
        .await
        .unwrap();
    assert_eq!(report.replayed, 1);
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.not_found, vec!["nope".to_owned()]);
    assert!(!report.is_success());
    let rows = services.rows_when(1).await;
    assert_eq!(rows[0].delivery_id, "b");
    assert_eq!(rows[0].retry_count, 0, "replayed with a fresh retry count");
    assert_eq!(rows[0].body, "{\"id\":\"b\"}");
    dead_letters_ready(&services, 2).await;

    // Then the rest.
    let report = dlq::replay(broker, &Selection::All).await.unwrap();
    assert_eq!(report.replayed, 2);
    assert!(report.is_success(), "{report:?}");
    let rows = services.rows_when(3).await;
    assert!(rows.iter().all(|row| row.retry_count == 0 && row.duplicates == 0));
    dead_letters_ready(&services, 0).await;

    // Nothing left: replaying all is a success that replays nothing.
    let report = dlq::replay(broker, &Selection::All).await.unwrap();
    assert_eq!(report.replayed, 0);
    assert!(report.is_success());
    assert!(dlq::list(broker, 10).await.unwrap().is_empty());

    app.stop().await;
    sender.close().await;
}

/// Waits until `{P}.dead` holds `count` ready letters: a listing takes them without an ack,
/// and the broker puts them back once it has closed the lister's channel, which can be after
/// the listing returned.
async fn dead_letters_ready(services: &Services, count: u32) {
    testkit::eventually(&format!("{count} letters ready in .dead"), SOON, || async {
        (services.broker.depth(".dead").await == Some(count)).then_some(())
    })
    .await;
}
