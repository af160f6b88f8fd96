"""`serve proxy stream=kafka`: a private broker (never the shared one) is stopped mid-run and restarted; every
call still succeeds and every record reaches the topic afterwards (the spool delivers the backlog)."""

from __future__ import annotations

import json
import shutil
import time
import uuid

import httpx
import openai
import pytest

from tests.serving.conftest import free_port
from tests.stream.conftest import PrivateBroker, kafka_sh

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture
def private_broker(tmp_path):
    if kafka_sh("status", timeout=30).returncode != 0:
        pytest.skip("the shared Kafka broker is down, so its jars may be missing; run scripts/kafka.sh start")
    broker = PrivateBroker(tmp_path / "kafka-state")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(broker.state_dir, ignore_errors=True)


def _consume(bootstrap: str, topic: str, want: int, timeout_s: float = 60.0) -> list[dict]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        consumer_timeout_ms=2000,
    )
    events, deadline = {}, time.time() + timeout_s
    try:
        while len(events) < want and time.time() < deadline:
            for msg in consumer:
                e = json.loads(msg.value)
                events[e["event_id"]] = e
    finally:
        consumer.close()
    return list(events.values())


def test_broker_stopped_mid_stream_loses_no_record(ray_session, private_broker, tmp_path):
    from ray import serve

    from dspy_rl.serving import lm_app, proxy_app
    from dspy_rl.serving.lm_config import LMServeConfig
    from dspy_rl.serving.proxy_config import ProxyConfig, ProxyKafkaConfig

    port, suffix = free_port(), uuid.uuid4().hex[:6]
    lm = LMServeConfig(port=port, app_name=f"lmk_{suffix}", route_prefix="/lm", num_cpus=0)
    lm_app.deploy(lm)
    prefix = f"proxytest{suffix}."
    cfg = ProxyConfig(
        upstream=f"http://127.0.0.1:{port}/lm/v1",
        port=port,
        sink="kafka",
        kafka=ProxyKafkaConfig(bootstrap_servers=private_broker.bootstrap, topic_prefix=prefix),
        spool_dir=str(tmp_path / "spool"),
        app_name=f"proxyk_{suffix}",
        route_prefix="/proxy",
        deliver_timeout_s=2.0,
    )
    proxy_app.deploy(cfg)
    base = f"http://127.0.0.1:{port}/proxy"
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0, timeout=60)
    try:

        def call(i: int) -> str:
            chunks = client.chat.completions.create(
                model="tiny-gpt2",
                messages=[{"role": "user", "content": f"call {i}"}],
                max_tokens=3,
                stream=True,
                extra_headers={"x-trace-id": f"kafka-{suffix}"},
            )
            return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

        for i in range(3):
            call(i)
        private_broker.stop()
        assert not private_broker.running()
        for i in range(3, 8):  # the broker is down: calls still succeed
            call(i)
        health = httpx.get(f"{base}/healthz").json()
        assert health["spool_backlog"] >= 5, health
        private_broker.start()
        deadline = time.time() + 120
        while httpx.get(f"{base}/healthz").json()["spool_backlog"] and time.time() < deadline:
            time.sleep(0.5)
        events = _consume(private_broker.bootstrap, prefix + "agent.actions", want=8)
        contents = sorted(e["attributes"]["messages"][0]["content"] for e in events if e["kind"] == "prompt")
        assert contents == [f"call {i}" for i in range(8)]
    finally:
        serve.delete(cfg.app_name)
        serve.delete(lm.app_name)
        serve.shutdown()
