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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    for name in ["drain1", "drain2", "handler-cpu", "consumer-cpu", "drain-cpu"]:
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
        rows.append(
            (f"ingest, closed loop, concurrency {c}", run["requests_per_second"], raw["messages_per_second"], "raw confirmed publish, same concurrency", run["latency_ms"], run["statuses"])
        )
    steady = load(out / "steady.json")
    drain1 = args.backlog / args.drain1
    drain2 = args.backlog / args.drain2

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
        "| scenario | req/s | limit | ratio | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | statuses |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, value, limit, _, latency, statuses in rows:
        lines.append(
            f"| {name} | {value:,.0f} | {limit:,.0f} | {value / limit:.2f} | {latency['p50']:.2f} | {latency['p90']:.2f} | {latency['p99']:.2f} | {latency['p99.9']:.2f} | {latency['max']:.2f} | {json.dumps(statuses)} |"
        )
    s_lat, s_store = steady["latency_ms"], steady.get("ingest_to_store_ms", {})
    non_200 = sum(count for status, count in steady["statuses"].items() if status != "200")
    lines += [
        "",
        f"## Steady {steady['rate']:.0f} req/s for {steady['seconds']:.0f} s",
        "",
        "| measure | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| ingest latency (from scheduled send) | {s_lat['p50']:.2f} | {s_lat['p90']:.2f} | {s_lat['p99']:.2f} | {s_lat['p99.9']:.2f} | {s_lat['max']:.2f} |",
    ]
    if s_store:
        lines.append(
            f"| ingest-to-store (`stored_at - received_at`) | {s_store['p50']:.2f} | {s_store['p90']:.2f} | {s_store['p99']:.2f} | {s_store['p99.9']:.2f} | {s_store['max']:.2f} |"
        )
    lines += [
        "",
        f"Requests sent: {steady['sent']:,}; non-200 answers: {non_200}.",
        "",
        f"## Consumer drain of a {args.backlog:,}-event backlog",
        "",
        "| scenario | events/s | limit | ratio |",
        "| --- | ---: | ---: | ---: |",
        f"| one consumer | {drain1:,.0f} | {raw_insert['rows_per_second']:,.0f} | {drain1 / raw_insert['rows_per_second']:.2f} |",
        f"| two consumers | {drain2:,.0f} | {raw_insert['rows_per_second']:,.0f} | {drain2 / raw_insert['rows_per_second']:.2f} |",
        "",
        f"Two consumers / one consumer: {drain2 / drain1:.2f}×.",
        "",
        "## Resources",
        "",
        "| process | peak RSS MiB | CPU seconds (user+system) |",
        "| --- | ---: | ---: |",
        f"| request-handler (whole run up to the steady phase) | {args.handler_rss / 1024:.1f} | {args.handler_cpu:.1f} |",
        f"| consumer (same span) | {args.consumer_rss / 1024:.1f} | {args.consumer_cpu:.1f} |",
        f"| consumer draining the backlog | {args.drain_rss / 1024:.1f} | {args.drain_cpu:.1f} |",
        "",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
