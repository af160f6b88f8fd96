"""Continuous mode on the real broker: spans in through Kafka, training metrics out on agent.metrics."""

from __future__ import annotations

import json
import time

import pytest

from dspy_rl.cli.stream import main
from dspy_rl.stream.bus import BusSink, KafkaBus
from dspy_rl.stream.synthetic import synthetic_spans
from dspy_rl.traces import RewardComputer, TraceCollector
from dspy_rl.traces.spans import TOPIC_METRICS

pytestmark = pytest.mark.kafka


def test_sdk_to_kafka_to_continuous_training_to_metrics_topic(kafka_broker, topic_prefix, tmp_path, capsys):
    from kafka import KafkaConsumer

    bus = KafkaBus(kafka_broker, topic_prefix=topic_prefix)
    sink = BusSink(bus)
    sink.write(list(synthetic_spans(150, seed=9)))
    # An agent recording through the SDK publishes on the same topics.
    collector = TraceCollector(sink, "sdk-agent", reward_computer=RewardComputer())
    with collector.trace("List the files changed since the last commit.") as t:
        t.prompt("PlanStep", prompt="List the files changed since the last commit.", response="git status")
        t.tool("git_status", status="success")
    bus.close()

    run_dir = tmp_path / "run"
    rc = main(
        [
            "train",
            "--continuous",
            "--max-iterations",
            "2",
            "stream=kafka",
            f"stream.bootstrap_servers={kafka_broker}",
            f"stream.topic_prefix={topic_prefix}",
            f"stream.group_id={topic_prefix}loop",
            f"store={tmp_path / 't.db'}",
            f"run_dir={run_dir}",
            "iteration_events=100000",
            "iteration_seconds=20",
            "ingest.session_timeout_ms=6000",
        ]
    )
    assert rc == 0
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2 and records[0]["events_ingested"] > 0 and records[0]["train/updated"] == 1

    consumer = KafkaConsumer(
        topic_prefix + TOPIC_METRICS,
        bootstrap_servers=kafka_broker,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=15000,
    )
    published = []
    deadline = time.monotonic() + 30
    for message in consumer:
        published.append(json.loads(message.value))
        if len(published) == 2 or time.monotonic() > deadline:
            break
    consumer.close()
    assert [p["iteration"] for p in published] == [0, 1]
    assert published == records
