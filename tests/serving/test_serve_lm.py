"""`serve lm` end to end: real Ray Serve on 127.0.0.1, the real `openai` client, streaming, logprobs, errors."""

from __future__ import annotations

import math
import signal
import subprocess
import time

import httpx
import openai
import pytest

from tests.serving.conftest import free_port, processes_with_marker, run_cli_until_ready


@pytest.fixture(scope="module")
def client(lm_server):
    base, token, _ = lm_server
    return openai.OpenAI(base_url=base, api_key=token, max_retries=0, timeout=60)


def test_models_lists_the_tiny_model(client):
    models = client.models.list()
    assert [m.id for m in models.data] == ["tiny-gpt2"]


def test_chat_completion_with_logprobs_and_token_ids(client):
    r = client.chat.completions.create(
        model="tiny-gpt2",
        messages=[{"role": "user", "content": "run the test and fix the file"}],
        max_tokens=6,
        temperature=0.7,
        seed=3,
        logprobs=True,
        top_logprobs=3,
    )
    choice = r.choices[0]
    assert choice.finish_reason in ("length", "stop")
    content = choice.logprobs.content
    assert 1 <= len(content) <= 6 and r.usage.completion_tokens == len(content)
    ids = choice.model_extra["token_ids"]
    assert ids == [c.model_extra["token_id"] for c in content]
    assert all(c.logprob <= 0 and len(c.top_logprobs) == 3 for c in content)
    # the sampled token's log-prob is one of the distribution's: at most the best alternative's
    assert all(c.logprob <= c.top_logprobs[0].logprob + 1e-6 for c in content)
    assert choice.message.content.strip() == " ".join(c.token for c in content if c.token != "<eos>").strip()
    assert r.usage.prompt_tokens == len(choice.model_extra["prompt_token_ids"])


def test_seeded_sampling_is_reproducible_and_greedy_is_argmax(client):
    kw = dict(model="tiny-gpt2", messages=[{"role": "user", "content": "hello"}], max_tokens=8)
    a = client.chat.completions.create(seed=11, temperature=1.0, **kw).choices[0].message.content
    b = client.chat.completions.create(seed=11, temperature=1.0, **kw).choices[0].message.content
    assert a == b
    g = client.chat.completions.create(temperature=0, logprobs=True, top_logprobs=2, **kw).choices[0]
    assert all(math.isclose(c.logprob, c.top_logprobs[0].logprob, abs_tol=1e-6) for c in g.logprobs.content)


def test_chat_streaming_matches_the_collected_answer(client):
    kw = dict(
        model="tiny-gpt2", messages=[{"role": "user", "content": "list the files"}], max_tokens=7, seed=5
    )
    whole = client.chat.completions.create(logprobs=True, **kw).choices[0]
    stream = client.chat.completions.create(
        stream=True, logprobs=True, stream_options={"include_usage": True}, **kw
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    ids = [i for c in chunks if c.choices for i in (c.choices[0].model_extra.get("token_ids") or [])]
    assert text == whole.message.content
    assert ids == whole.model_extra["token_ids"]
    assert chunks[-1].usage.completion_tokens == len(ids)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.finish_reason


def test_completions_endpoint_and_stream(client):
    r = client.completions.create(model="tiny-gpt2", prompt="git status", max_tokens=4, logprobs=2, seed=1)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.model_extra["token_ids"]) <= 4
    parts = list(
        client.completions.create(model="tiny-gpt2", prompt="git status", max_tokens=4, seed=1, stream=True)
    )
    assert "".join(p.choices[0].text for p in parts) == r.choices[0].text


def test_stop_sequence_ends_the_answer(client):
    kw = dict(model="tiny-gpt2", messages=[{"role": "user", "content": "hi"}], max_tokens=12, seed=9)
    full = client.chat.completions.create(**kw).choices[0].message.content
    words = full.split()
    if len(words) < 3:
        pytest.skip(f"sample too short to place a stop word: {full!r}")
    stop = words[2]
    cut = client.chat.completions.create(stop=[stop], **kw).choices[0]
    assert cut.finish_reason == "stop" and stop not in cut.message.content
    assert full.startswith(cut.message.content.rstrip())


def test_bad_requests_get_openai_errors_naming_the_field(client, lm_server):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="tiny-gpt2", messages=[{"role": "wizard", "content": "x"}])
    assert e.value.body["param"] == "messages[0].role"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="tiny-gpt2", messages=[{"role": "user", "content": "x"}], max_tokens=10**6
        )
    assert e.value.body["param"] == "max_tokens" and "out of range" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="tiny-gpt2", messages=[], temperature=0.5)
    assert e.value.body["param"] == "messages"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="tiny-gpt2", messages=[{"role": "user", "content": "x"}], temperature="hot"
        )
    assert e.value.body["param"] == "temperature"
    base, token, cfg = lm_server
    big = httpx.post(
        f"{base}/chat/completions",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "model": "tiny-gpt2",
            "messages": [{"role": "user", "content": "x" * (cfg.max_body_bytes + 10)}],
        },
    )
    assert big.status_code == 413 and "max_body_bytes" in big.json()["error"]["message"]
    bad_json = httpx.post(
        f"{base}/chat/completions", headers={"Authorization": f"Bearer {token}"}, content=b"{nope"
    )
    assert bad_json.status_code == 400 and "JSON" in bad_json.json()["error"]["message"]


def test_bearer_token_is_required(lm_server):
    base, _, _ = lm_server
    wrong = openai.OpenAI(base_url=base, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()


@pytest.mark.slow  # starts its own Ray (about 1-2 min on the shared 2-core machine)
def test_cli_serves_a_grpo_run_dir_and_sigterm_leaves_no_ray_process(tmp_path):
    """`dspy-rl serve lm model=<run dir>` loads the run's final/ model; SIGTERM stops it and every Ray process."""
    from dspy_rl.models.hf import build_tiny_causal_lm

    run = tmp_path / "run"
    build_tiny_causal_lm(run / "final", ["alpha beta gamma delta"], n_positions=64)
    (run / "checkpoint.pt").write_bytes(b"")  # a run dir's shape; serve lm only reads final/
    port = free_port()
    proc, marker = run_cli_until_ready(
        ["serve", "lm", f"model={run}", f"port={port}", "num_cpus=0"],
        f"http://127.0.0.1:{port}/v1/models",
        {},
    )
    try:
        out = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        assert [m.id for m in out.models.list().data] == ["run"]
        r = out.chat.completions.create(
            model="run", messages=[{"role": "user", "content": "alpha"}], max_tokens=3
        )
        assert set(r.choices[0].message.content.split()) <= {
            "alpha",
            "beta",
            "gamma",
            "delta",
            "user:",
            "assistant:",
        }
        assert processes_with_marker(marker)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    deadline = time.time() + 30
    while processes_with_marker(marker) and time.time() < deadline:
        time.sleep(1)
    assert processes_with_marker(marker) == [], "Ray processes outlived `serve lm`"
    assert proc.returncode == 0


def test_cli_refuses_a_wrong_checkpoint_in_one_line(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"x")
    r = subprocess.run(
        ["dspy-rl", "serve", "lm", f"model={tmp_path}"], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.startswith("dspy-rl")]
    assert len(lines) == 1 and "not a Hugging Face model directory" in lines[0], r.stderr
