"""Which Kafka client library a process uses: confluent-kafka (librdkafka) or kafka-python."""

from __future__ import annotations

from typing import Any

from dspy_rl.stream.bus import EventBus, KafkaBus
from dspy_rl.stream.confluent import ConfluentBus, available

CLIENTS = ("auto", "confluent", "kafka-python")


def resolve_client(client: str) -> str:
    """``auto`` -> ``confluent`` when confluent-kafka is installed, else ``kafka-python``; others as given
    (``confluent`` without the package is a ValueError naming the fix)."""
    if client not in CLIENTS:
        raise ValueError(f"stream.client={client!r}; expected one of {list(CLIENTS)}")
    if client == "auto":
        return "confluent" if available() else "kafka-python"
    if client == "confluent" and not available():
        raise ValueError(
            "stream.client=confluent but confluent-kafka is not installed (pip install confluent-kafka)"
        )
    return client


def make_bus(bootstrap_servers: str, client: str = "auto", **kwargs: Any) -> EventBus:
    """A Kafka :class:`EventBus` on the given client library (see :func:`resolve_client`)."""
    if resolve_client(client) == "confluent":
        return ConfluentBus(bootstrap_servers, **kwargs)
    return KafkaBus(bootstrap_servers, **kwargs)
