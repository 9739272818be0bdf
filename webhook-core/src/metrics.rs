//! Registering a metric and keeping it in one step, as every service's metrics are built.

use prometheus_client::registry::{Metric, Registry, Unit};

/// Registers `metric` in `registry` as `name` with `help`, and returns it to be kept (a metric
/// is a handle: the kept one and the registered one count together).
pub fn registered<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

/// [`registered`] with a unit, which the exposition appends to the name (`_seconds`, `_bytes`).
pub fn registered_with_unit<M: Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    unit: Unit,
    metric: M,
) -> M {
    registry.register_with_unit(name, help, unit, metric.clone());
    metric
}

/// `registry` in the OpenMetrics text format, for `/metrics`. Encoding into a `String` fails
/// only if a metric's own encoder does, which is logged: the answer is then what was encoded.
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    if let Err(error) = prometheus_client::encoding::text::encode(&mut text, registry) {
        log::error!("encoding metrics failed: {error}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    #[test]
    fn the_kept_metric_is_the_registered_one() {
        let mut registry = Registry::with_prefix("test");
        let kept = registered(&mut registry, "things", "Things done", Counter::<u64>::default());
        let seconds = registered_with_unit(
            &mut registry,
            "wait",
            "Time waited",
            Unit::Seconds,
            Counter::<u64>::default(),
        );
        kept.inc_by(3);
        seconds.inc();
        let text = encode(&registry);
        assert!(text.contains("test_things_total 3\n"), "{text}");
        assert!(text.contains("test_wait_seconds_total 1\n"), "{text}");
        assert!(text.contains("# HELP test_things Things done."), "{text}");
    }
}
