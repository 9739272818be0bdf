#!/usr/bin/env python3
"""Turns one bench/run.sh result directory into BENCHMARKS.md (printed to stdout)."""

import argparse
import json
import pathlib
import platform
import subprocess


def sh(command):
    try:
        return subprocess.run(command, shell=True, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception:  # noqa: BLE001 - a missing tool only blanks one line of the report
        return ""


def load(path):
    return json.loads(pathlib.Path(path).read_text().strip().splitlines()[-1])


def latency_cells(latency):
    """A percentile summary as table cells: p50, p90, p99, p99.9 and max, in ms."""
    return " | ".join(f"{latency[key]:.2f}" for key in ["p50", "p90", "p99", "p99.9", "max"])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    for name in ["drain1", "drain2", "drain-events", "handler-cpu", "consumer-cpu", "drain-cpu"]:
        parser.add_argument(f"--{name}", type=float, required=True)
    for name in ["backlog", "handler-rss", "consumer-rss", "drain-rss"]:
        parser.add_argument(f"--{name}", type=int, required=True)
    parser.add_argument("--command", required=True)
    args = parser.parse_args()
    out = pathlib.Path(args.out)

    cpu = sh("lscpu | sed -n 's/^Model name: *//p'") or platform.processor()
    cores = sh("nproc")
    memory = sh("free -g | awk '/Mem:/ {print $2}'")
    versions = {
        "rustc": sh("rustc --version"),
        "RabbitMQ": sh("rabbitmqctl -q version"),
        "MariaDB": sh("mariadb --version"),
    }

    raw_insert = load(out / "raw-insert.json")
    rows = []
    for path in sorted(out.glob("closed-c*.json")):
        run = load(path)
        c = run["concurrency"]
        raw = load(out / f"raw-publish-c{c}.json")
        topology_path = out / f"raw-publish-topology-c{c}.json"
        topology = load(topology_path)["messages_per_second"] if topology_path.exists() else None
        rows.append(
            (f"ingest, closed loop, concurrency {c}", run["requests_per_second"], raw["messages_per_second"], topology, run["latency_ms"], run["statuses"])
        )
    steady = load(out / "steady.json")
    drain1 = args.backlog / args.drain1
    drain2 = args.backlog / args.drain2
    drain_events = args.backlog / args.drain_events

    lines = [
        "# Benchmarks",
        "",
        "Produced by `bench/run.sh`; numbers from the latest run. Every system number sits beside the",
        "limit measured minutes apart on the same machine: a raw confirmed publisher (lapin, same body",
        "size and concurrency, quorum queue) and a raw batched inserter (500-row statements into the",
        "`events` table shape).",
        "",
        f"- Machine: {cpu}, {cores} cores, {memory} GiB RAM, everything on loopback",
        *[f"- {name}: {version}" for name, version in versions.items() if version],
        f"- Command: `{args.command}`",
        f"- Run: `{out.name}`",
        "",
        "## Ingest (handler → broker, confirmed)",
        "",
        "`limit` is the raw confirmed publish straight to the queue. `topology` is the same raw",
        "publisher sending the way the handler does (through the topic exchange, with the envelope's",
        "properties and headers): what the broker alone can do with the design's messages.",
        "",
        "| scenario | req/s | limit | ratio | topology | ratio | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | statuses |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, value, limit, topology, latency, statuses in rows:
        topology_cells = f"{topology:,.0f} | {value / topology:.2f}" if topology else "– | –"
        lines.append(
            f"| {name} | {value:,.0f} | {limit:,.0f} | {value / limit:.2f} | {topology_cells} | {latency_cells(latency)} | {json.dumps(statuses)} |"
        )
    s_lat, s_store = steady["latency_ms"], steady.get("ingest_to_store_ms", {})
    non_200 = sum(count for status, count in steady["statuses"].items() if status != "200")
    lines += [
        "",
        f"## Steady {steady['rate']:.0f} req/s for {steady['seconds']:.0f} s",
        "",
        "| measure | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| ingest latency (from scheduled send) | {latency_cells(s_lat)} |",
    ]
    if s_store:
        lines.append(
            f"| ingest-to-store (`stored_at - received_at`) | {latency_cells(s_store)} |"
        )
    lines += [
        "",
        f"Requests sent: {steady['sent']:,}; non-200 answers: {non_200}.",
        "",
        f"## Consumer drain of a {args.backlog:,}-event backlog",
        "",
        "Each drain starts from empty tables, timed from the consumers' launch until the last row",
        "is in. The backlog's events are sales (`sale.completed`): each one stores an `events` row",
        "and applies a row of `sales` in the same transaction, where the raw inserter writes",
        "`events` rows only. The last line drains events of a type no processor takes (`ping`).",
        "",
        "| scenario | events/s | limit | ratio |",
        "| --- | ---: | ---: | ---: |",
        f"| one consumer (2 workers), sales | {drain1:,.0f} | {raw_insert['rows_per_second']:,.0f} | {drain1 / raw_insert['rows_per_second']:.2f} |",
        f"| two consumers, sales | {drain2:,.0f} | {raw_insert['rows_per_second']:,.0f} | {drain2 / raw_insert['rows_per_second']:.2f} |",
        f"| one consumer, events only | {drain_events:,.0f} | {raw_insert['rows_per_second']:,.0f} | {drain_events / raw_insert['rows_per_second']:.2f} |",
        "",
        f"Two consumers / one consumer: {drain2 / drain1:.2f}×.",
        "",
    ]
    raw_drains = {mode: out / f"raw-drain-{mode}.json" for mode in ["broker", "insert"]}
    if all(path.exists() for path in raw_drains.values()):
        broker_floor = load(raw_drains["broker"])
        insert_floor = load(raw_drains["insert"])
        lines += [
            "The drain's floors, measured in the same run (`raw-drain`): a backlog of the same size",
            "in a quorum queue of its own, consumed the consumer's way (2 connections, prefetch 1000,",
            "batches of 500, one `multiple` ack a batch), first acked without writing (what the",
            "broker can deliver here), then with each batch written as the raw inserter writes it",
            "(the least a consumer that stores can do). Both share the two cores with the broker.",
            "",
            "| floor | events/s | client CPU µs per event | one consumer, sales, against it |",
            "| --- | ---: | ---: | ---: |",
            f"| broker alone: consume and ack | {broker_floor['messages_per_second']:,.0f} | {broker_floor['cpu_us_per_message']:.1f} | {drain1 / broker_floor['messages_per_second']:.2f} |",
            f"| broker and raw insert: consume, insert, commit, ack | {insert_floor['messages_per_second']:,.0f} | {insert_floor['cpu_us_per_message']:.1f} | {drain1 / insert_floor['messages_per_second']:.2f} |",
            f"| raw insert alone (no broker) | {raw_insert['rows_per_second']:,.0f} | – | {drain1 / raw_insert['rows_per_second']:.2f} |",
            "",
        ]
    lines += [
        "## Resources",
        "",
        "| process | peak RSS MiB | CPU seconds (user+system) |",
        "| --- | ---: | ---: |",
        f"| request-handler (whole run up to the steady phase) | {args.handler_rss / 1024:.1f} | {args.handler_cpu:.1f} |",
        f"| consumer (same span) | {args.consumer_rss / 1024:.1f} | {args.consumer_cpu:.1f} |",
        f"| consumer draining the backlog | {args.drain_rss / 1024:.1f} | {args.drain_cpu:.1f} |",
        "",
    ]
    phases = [
        ("closed-c16", "ingest, concurrency 16"),
        ("closed-c64", "ingest, concurrency 64"),
        ("steady", "steady rate"),
        ("steady-conns", "steady rate, 10,000 connections held"),
        ("drain-1", "drain, one consumer"),
        ("drain-2", "drain, two consumers"),
        ("drain-events", "drain, events only"),
        ("steady-alone", "steady rate, the handler alone (no consumer)"),
        ("raw-drain-broker", "raw drain, broker alone (raw-drain in the consumer column)"),
        ("raw-drain-insert", "raw drain with raw insert (raw-drain in the consumer column)"),
    ]
    split = [(name, label, load(out / f"cpu-{name}.json")) for name, label in phases if (out / f"cpu-{name}.json").exists()]
    if split:
        lines += [
            "## CPU split",
            "",
            "CPU seconds (user+system) each process used during the phase, and its share of the",
            "machine's CPU time over the phase's wall time (cores × seconds). The ingest and steady",
            "phases with the consumer include their `--drain` wait; a drain starts at the consumers'",
            "launch.",
            "",
            "| phase | wall s | request-handler | consumer | RabbitMQ | MariaDB | loadgen | machine busy |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        ncores = int(cores or 1)
        for name, label, cpu_use in split:
            if name.startswith("raw-drain-"):
                # raw-drain has exited when the phase ends: its CPU is what it reported itself.
                cpu_use["consumer"] += load(out / f"{name}.json")["cpu_seconds"]
            names = ["request-handler", "consumer", "beam.smp", "mariadbd", "loadgen"]
            total = sum(cpu_use[name] for name in names)
            cells = " | ".join(f"{cpu_use[name]:.1f}" for name in names)
            lines.append(f"| {label} | {cpu_use['wall']:.1f} | {cells} | {total / (cpu_use['wall'] * ncores):.0%} |")
        lines.append("")
    # The floors and the peer under the same wrk load (the last phase of run.sh).
    wrk = {name: load(out / f"wrk-{name}.json") for name in ["handler", "handler-shared", "http-floor", "node-peer"] if (out / f"wrk-{name}.json").exists()}
    per_request = {name: run["cpu_seconds"] * 1e6 / run["requests"] for name, run in wrk.items() if run["requests"]}
    publish_floor = load(out / "raw-publish-floor.json") if (out / "raw-publish-floor.json").exists() else None
    extra_targets = []
    if "handler" in wrk:
        first = wrk["handler"]
        lines += [
            "## CPU per request: the handler, its floors and a Node peer",
            "",
            f"wrk, {first.get('connections', 50)} connections, {first['seconds']:.0f} s, one signed 100-byte body (the same",
            "delivery id every time), no consumer running. CPU per request is the server's user+system",
            "CPU over the run (`/proc/<pid>/stat`, summed over the Node peer's cluster processes) divided",
            "by the requests answered. The HTTP floor is an actix-web server with the handler's worker",
            "count that reads the body and answers 200 (`bench/src/bin/http-floor.rs`); the publish",
            "floor is the raw confirmed publisher's own client CPU per message (100-byte bodies, 50 in",
            "flight, straight to a quorum queue). The Node peer is `bench/peers/node/` (node:cluster on",
            "every core, raw-body HMAC, the JSON and its event type checked, one confirm channel per",
            "worker, published like the handler: through a topic exchange with `mandatory` and the",
            "envelope's headers, 200 after the confirm). `request-handler, PUBLISH_PER_WORKER=false` is the",
            "same binary publishing everything through its one shared lapin connection, as before",
            "each worker had a connection of its own: the before and after of that change.",
            "",
            "| system | req/s | CPU µs per request | p50 ms | p99 ms | socket errors | non-2xx |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        labels = {"handler": "request-handler", "handler-shared": "request-handler, PUBLISH_PER_WORKER=false", "http-floor": "floor: actix-web reading the body, 200", "node-peer": "Node peer"}
        for name, run in wrk.items():
            lines.append(
                f"| {labels[name]} | {run['requests_per_second']:,.0f} | {per_request.get(name, float('nan')):.1f} | {run['p50_ms']:.2f} | {run['p99_ms']:.2f} | {run['socket_errors']} | {run['non_2xx']} |"
            )
        if publish_floor:
            lines.append(
                f"| floor: raw confirmed publisher, client side | {publish_floor['messages_per_second']:,.0f} msg/s | {publish_floor['cpu_us_per_message']:.1f} per message | – | – | – | – |"
            )
        lines.append("")
        handler_us = per_request.get("handler")
        if handler_us and "http-floor" in per_request and publish_floor:
            floors = per_request["http-floor"] + publish_floor["cpu_us_per_message"]
            ratio = handler_us / floors
            lines += [
                f"The handler spends {handler_us:.1f} µs per request against {floors:.1f} µs for its floors together: {ratio:.2f}×.",
            ]
            if "handler-shared" in per_request:
                shared_us = per_request["handler-shared"]
                lines.append(
                    f"Publishing through the shared connection only, it spends {shared_us:.1f} µs ({shared_us / floors:.2f}× the floors): "
                    f"the workers' own connections save {1 - handler_us / shared_us:.0%} of the handler's CPU per request."
                )
            lines.append("")
            extra_targets.append(("handler CPU per request ≤ 1.3 × (HTTP floor + publish floor)", f"{ratio:.2f} ×", ratio <= 1.3))
        if handler_us and "node-peer" in per_request:
            speed = first["requests_per_second"] / wrk["node-peer"]["requests_per_second"]
            cost = handler_us / per_request["node-peer"]
            extra_targets += [
                ("throughput ≥ 2.5 × the Node peer", f"{speed:.2f} ×", speed >= 2.5),
                ("CPU per request ≤ 0.3 × the Node peer", f"{cost:.2f} ×", cost <= 0.3),
            ]

    # The steady rate beside the raw publisher at that rate, and with many connections held.
    raw_steady = load(out / "raw-steady.json") if (out / "raw-steady.json").exists() else None
    steady_conns = load(out / "steady-conns.json") if (out / "steady-conns.json").exists() else None
    steady_alone = load(out / "steady-alone.json") if (out / "steady-alone.json").exists() else None
    if raw_steady:
        r_lat = raw_steady["latency_ms"]
        lines += [
            f"## Steady {steady['rate']:.0f} req/s beside the raw publisher at that rate",
            "",
            f"The raw publisher open loop at {raw_steady['rate']:.0f} msg/s for {raw_steady['duration']:.0f} s (1 KiB bodies,",
            "straight to a quorum queue, each confirm's latency from its scheduled send), then",
        ]
        if steady_alone:
            lines += [
                "right after it the handler alone at the same rate and duration (loadgen, latency from",
                "each scheduled send, no consumer running in either). The system rows are the steady",
                "phases earlier in the run, with the consumer and MariaDB storing every event on the",
                "same two cores.",
            ]
        else:
            lines.append("the handler's steady phase at the same rate and duration (loadgen, latency from each scheduled send).")
        lines += [
            "",
            "| measure | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
            f"| raw publisher, confirm latency | {latency_cells(r_lat)} |",
        ]
        if steady_alone:
            a_lat = steady_alone["latency_ms"]
            lines.append(
                f"| handler alone, ingest latency | {latency_cells(a_lat)} |"
            )
        lines.append(
            f"| system: handler, ingest latency, consumer storing | {latency_cells(s_lat)} |"
        )
        if steady_conns:
            c_lat = steady_conns["latency_ms"]
            lines.append(
                f"| system, 10,000 connections held | {latency_cells(c_lat)} |"
            )
        lines.append("")
        compared = steady_alone["latency_ms"] if steady_alone else s_lat
        margin = compared["p99"] - r_lat["p99"]
        extra_targets.append(
            (
                "steady: handler p99 ≤ raw publisher p99 + 5 ms" + (" (both with no consumer)" if steady_alone else ""),
                f"{compared['p99']:.1f} vs {r_lat['p99']:.1f} ms",
                margin <= 5,
            )
        )

    idle_path = out / "idle-conns.json"
    if steady_conns and idle_path.exists() and idle_path.read_text().strip():
        idle = load(idle_path)
        rss_path, est_path = out / "conns-handler-rss.txt", out / "conns-established.txt"
        conns_rss = int(rss_path.read_text().strip()) if rss_path.exists() else 0
        established = int(est_path.read_text().strip()) if est_path.exists() else 0
        c_lat = steady_conns["latency_ms"]
        c_non_200 = sum(count for status, count in steady_conns["statuses"].items() if status != "200")
        lines += [
            "## Many connections",
            "",
            f"`bench/src/bin/idle-conns.rs` opens {idle['connections']:,} HTTP/1.1 keep-alive connections to the handler",
            f"(in {idle['opened_in_seconds']:.1f} s) and holds them while the steady load runs. actix-web closes a connection",
            f"quiet for 5 s, so each one asks for `/healthz` every {idle['every']:g} s: {idle['connections'] / idle['every']:,.0f} small requests/s on",
            "top of the steady load, and idle-conns' own CPU beside it on the same cores.",
            "",
            "| measure | value |",
            "| --- | ---: |",
            f"| connections held at the end (idle-conns) | {idle['held']:,} |",
            f"| established at the handler's port after the steady phase (`ss`) | {established:,} |",
            f"| connections the server closed and idle-conns reopened | {idle['reopened']:,} |",
            f"| handler RSS while holding them | {conns_rss / 1024:.1f} MiB |",
            f"| steady p99 ingest without them / with them | {s_lat['p99']:.2f} / {c_lat['p99']:.2f} ms |",
            f"| steady non-200 answers with them | {c_non_200} |",
            "",
        ]

    # CPU per stored event at the steady rate, per process.
    if (out / "cpu-steady.json").exists() and steady.get("stored"):
        cpu_use = load(out / "cpu-steady.json")
        events = steady["stored"]
        names = [("request-handler", "request-handler"), ("beam.smp", "RabbitMQ (beam.smp)"), ("consumer", "consumer"), ("mariadbd", "MariaDB (mariadbd)")]
        total = sum(cpu_use[name] for name, _ in names)
        lines += [
            "## CPU per stored event at the steady rate",
            "",
            f"The steady phase's CPU split divided by the {events:,} events it stored (its wall time",
            "includes the `--drain` wait). loadgen's own CPU is shown apart and is not in the total.",
            "",
            "| process | CPU µs per stored event | share |",
            "| --- | ---: | ---: |",
            *[f"| {label} | {cpu_use[name] * 1e6 / events:.1f} | {cpu_use[name] / total:.0%} |" for name, label in names if total],
            f"| **total** | **{total * 1e6 / events:.1f}** | 100% |",
            f"| loadgen (apart) | {cpu_use['loadgen'] * 1e6 / events:.1f} | – |",
            "",
        ]

    ingest_low = min((value / limit for _, value, limit, _, _, _ in rows), default=0)
    ingest_high = max((value / limit for _, value, limit, _, _, _ in rows), default=0)
    s_store_p99 = s_store.get("p99", float("nan"))
    targets = [
        ("ingest ≥ 0.7 × raw confirmed publish", f"{ingest_low:.2f}–{ingest_high:.2f} ×", ingest_low >= 0.7),
        ("drain ≥ 0.7 × raw batched insert", f"{drain1 / raw_insert['rows_per_second']:.2f} ×", drain1 / raw_insert["rows_per_second"] >= 0.7),
        ("consumer RSS ≤ 128 MiB", f"{args.drain_rss / 1024:.0f} MiB", args.drain_rss / 1024 <= 128),
        ("handler RSS ≤ 64 MiB", f"{args.handler_rss / 1024:.0f} MiB", args.handler_rss / 1024 <= 64),
        ("steady: p99 ingest ≤ 20 ms", f"{s_lat['p99']:.1f} ms", s_lat["p99"] <= 20),
        ("steady: p99 ingest-to-store ≤ 250 ms", f"{s_store_p99:.1f} ms", s_store_p99 <= 250),
        ("steady: zero non-200", f"{non_200}", non_200 == 0),
        ("two consumers drain faster than one", f"{drain2 / drain1:.2f} ×", drain2 > drain1),
    ]
    targets += extra_targets
    lines += [
        "## Targets",
        "",
        "| target | this run | met |",
        "| --- | ---: | --- |",
        *[f"| {name} | {value} | {'yes' if met else '**no**'} |" for name, value, met in targets],
        "",
    ]
    # Kept by hand beside the script, from runs of their own: the dashboard at scale
    # (bench/dashboard-scale.sh, bench/trigger-cost.sh), the spool (bench/spool.sh), the
    # analysis, and the fairness run (loadgen --source-rate).
    for name in ["DASHBOARD.md", "SPOOL.md", "ANALYSIS.md", "FAIRNESS.md"]:
        kept = pathlib.Path(__file__).with_name(name)
        if kept.exists():
            lines += [kept.read_text().rstrip(), ""]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
