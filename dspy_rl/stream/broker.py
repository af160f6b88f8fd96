"""Wait for a Kafka broker at start: one clear line and a retry schedule instead of a client traceback."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

#: Seconds between connection attempts (the last one repeats).
RETRY_SCHEDULE_S = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)


class BrokerUnavailable(RuntimeError):
    """No bootstrap server accepted a connection within the wait; the message is one line saying what to do."""


def _addresses(bootstrap: str) -> list[tuple[str, int]]:
    out = []
    for part in bootstrap.split(","):
        host, _, port = part.strip().rpartition(":")
        if not host or not port.isdigit():
            raise BrokerUnavailable(
                f"bootstrap server {part.strip()!r} is not host:port (stream.bootstrap_servers)"
            )
        out.append((host.strip("[]"), int(port)))
    return out


def probe(bootstrap: str, timeout_s: float = 2.0) -> str | None:
    """None when one of the servers accepts a TCP connection, else why none did."""
    reasons = []
    for host, port in _addresses(bootstrap):
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                return None
        except OSError as exc:
            reasons.append(f"{host}:{port}: {exc.strerror or exc}")
    return "; ".join(reasons)


def wait_for_broker(
    bootstrap: str,
    wait_s: float,
    sleep: Callable[[float], None] = time.sleep,
    setting: str = "ingest.broker_wait_s",
) -> None:
    """Return once the broker accepts connections; retry on :data:`RETRY_SCHEDULE_S` for up to ``wait_s``
    seconds, logging one line when it is down and one per retry; then raise :class:`BrokerUnavailable`."""
    why = probe(bootstrap)
    if why is None:
        return
    schedule = ", ".join(f"{s:g}s" for s in RETRY_SCHEDULE_S)
    logger.warning(
        "Kafka broker %s is down (%s); retrying every %s (then every %gs) for up to %gs (%s)",
        bootstrap, why, schedule, RETRY_SCHEDULE_S[-1], wait_s, setting,
    )  # fmt: skip
    waited = 0.0
    attempt = 0
    while waited < wait_s:
        delay = min(RETRY_SCHEDULE_S[min(attempt, len(RETRY_SCHEDULE_S) - 1)], wait_s - waited)
        sleep(delay)
        waited += delay
        attempt += 1
        why = probe(bootstrap)
        if why is None:
            logger.info("Kafka broker %s is up after %.0fs", bootstrap, waited)
            return
        logger.info("Kafka broker %s still down after %.0fs (%s)", bootstrap, waited, why)
    raise BrokerUnavailable(
        f"Kafka broker {bootstrap} unreachable for {wait_s:g}s ({why}): start it (scripts/kafka.sh start), fix "
        f"stream.bootstrap_servers, or wait longer ({setting}=<seconds>)"
    )
