"""Kafka fixtures: the shared broker (``scripts/kafka.sh start``), private brokers for restart tests, producers.

Every test's topics share a unique prefix (``topic_prefix``) and are deleted when the test ends, so the shared
broker's state dir does not grow with every local run.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KAFKA_SH = REPO / "scripts" / "kafka.sh"


def kafka_sh(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run scripts/kafka.sh with ``args``; returns the completed process (output captured)."""
    return subprocess.run(["bash", str(KAFKA_SH), *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def kafka_broker() -> str:
    """Bootstrap address of the shared local broker; skips when ``scripts/kafka.sh status`` says it is down."""
    port = os.environ.get("KAFKA_PORT", "9092")
    status = kafka_sh("status", "--port", port, timeout=30)
    if status.returncode != 0:
        pytest.skip(
            f"Kafka broker on 127.0.0.1:{port} is down (`scripts/kafka.sh status` exit {status.returncode}: "
            f"{status.stdout.strip()}); start it with `scripts/kafka.sh start`"
        )
    return f"127.0.0.1:{port}"


#: DeleteTopics error codes that mean "nothing left to delete": none, and UNKNOWN_TOPIC_OR_PARTITION.
_DELETED_OR_GONE = (0, 3)


def delete_topics_with_prefix(bootstrap: str, prefix: str, timeout_s: float = 60.0) -> list[str]:
    """Delete every topic on ``bootstrap`` whose name starts with ``prefix``; returns the names deleted.

    A fresh admin client per attempt, retried until ``timeout_s``: a test may have just restarted the broker, which
    then refuses connections or answers NOT_CONTROLLER for a moment. Raises the last error when time runs out.
    """
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    if not prefix:
        raise ValueError("refusing to delete topics with an empty prefix (that is every topic on the broker)")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap,
                client_id="dspy-rl-test-cleanup",
                bootstrap_timeout_ms=10000,
                request_timeout_ms=30000,
            )
            try:
                topics = sorted(t for t in admin.list_topics() if t.startswith(prefix))
                if not topics:
                    return []
                result = admin.delete_topics(topics, timeout_ms=30000, raise_errors=False)
                failed = {
                    t["name"]: t["error_code"]
                    for t in result["topics"]
                    if t["error_code"] not in _DELETED_OR_GONE
                }
                if not failed:
                    return topics
                raise RuntimeError(f"DeleteTopics failed for {failed} (topic: Kafka error code)")
            finally:
                admin.close()
        except (KafkaError, RuntimeError):
            if time.monotonic() >= deadline:
                raise
            time.sleep(1.0)  # back off before the next attempt against a (re)starting broker


@pytest.fixture
def topic_prefix(kafka_broker: str) -> Iterator[str]:
    """A fresh topic prefix, so each test has its own agent.* topics on the shared broker; the topics with this
    prefix are deleted after the test (a failed deletion is a warning, not a test error)."""
    prefix = f"test{uuid.uuid4().hex[:10]}."
    yield prefix
    try:
        delete_topics_with_prefix(kafka_broker, prefix)
    except Exception as exc:  # cleanup must not turn a passed test into an error
        warnings.warn(f"could not delete the test topics {prefix}* on {kafka_broker}: {exc!r}", stacklevel=1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateBroker:
    """A second broker with its own ports and state dir, which a test may stop and restart."""

    def __init__(self, state_dir: Path) -> None:
        self.port, self.controller_port = _free_port(), _free_port()
        self.state_dir = state_dir
        self.bootstrap = f"127.0.0.1:{self.port}"

    def _args(self) -> list[str]:
        return [
            "--port",
            str(self.port),
            "--controller-port",
            str(self.controller_port),
            "--state-dir",
            str(self.state_dir),
        ]

    def start(self) -> None:
        result = kafka_sh("start", *self._args())
        if result.returncode != 0:
            raise RuntimeError(f"private broker failed to start:\n{result.stdout}\n{result.stderr}")

    def stop(self) -> None:
        kafka_sh("stop", *self._args())

    def running(self) -> bool:
        return kafka_sh("status", *self._args(), timeout=30).returncode == 0


@pytest.fixture
def private_kafka_broker(kafka_broker: str, tmp_path: Path) -> Iterator[PrivateBroker]:
    """A broker of this test's own (needs the jars the shared broker already fetched)."""
    broker = PrivateBroker(tmp_path / "kafka-state")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
        if not broker.running():
            shutil.rmtree(broker.state_dir, ignore_errors=True)


def _produce(bootstrap: str, messages: Iterable[tuple[str, bytes | None]]) -> int:
    """Publish ``(topic, value)`` pairs with acks=all and batching; returns how many were sent. A ``None``
    value (a tombstone) is sent with a key, as Kafka requires."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=1 << 20, max_request_size=16 << 20
    )
    n = 0
    for topic, value in messages:
        producer.send(topic, value=value, key=b"tombstone" if value is None else None)
        n += 1
    producer.flush(timeout=120)
    producer.close()
    return n


def _ingest_command(bootstrap: str, prefix: str, db: Path, *extra: str) -> list[str]:
    """``dspy-rl stream ingest`` against ``bootstrap`` with the test's topics and store."""
    return [
        sys.executable,
        "-m",
        "dspy_rl",
        "stream",
        "ingest",
        "stream=kafka",
        f"stream.bootstrap_servers={bootstrap}",
        f"stream.topic_prefix={prefix}",
        f"stream.group_id={prefix}ingest",
        f"store={db}",
        *extra,
    ]


@pytest.fixture
def produce():
    """``produce(bootstrap, [(topic, value), ...]) -> count`` (acks=all, batched)."""
    return _produce


@pytest.fixture
def ingest_command():
    """``ingest_command(bootstrap, prefix, db, *overrides) -> argv`` of a ``dspy-rl stream ingest`` process."""
    return _ingest_command


#: Both client libraries run the same fault tests; the kafka-python variant of a slow test is marked slow.
KAFKA_CLIENTS = ["confluent", "kafka-python"]
KAFKA_CLIENTS_SLOW_FALLBACK = ["confluent", pytest.param("kafka-python", marks=pytest.mark.slow)]
