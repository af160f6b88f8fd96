"""Wire format: round trip, validation reasons, and that no input makes the parser raise anything else."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dspy_rl.traces import spans as spans_module
from dspy_rl.traces.spans import (
    TOPIC_ACTIONS,
    TOPIC_REWARDS,
    MalformedEvent,
    Span,
    decode_event_row,
    parse_event,
)


def _valid(**overrides) -> dict:
    event = {
        "v": 1,
        "event_id": "e1",
        "trace_id": "t1",
        "agent_id": "a1",
        "kind": "prompt",
        "name": "Plan",
        "parent_id": None,
        "ts": 1.8e9,
        "end_ts": 1.8e9 + 1,
        "reward": None,
        "attributes": {"prompt": "p"},
    }
    event.update(overrides)
    return event


def test_round_trip():
    span = Span(
        kind="tool", trace_id="t", agent_id="a", name="pytest", start_ts=1.8e9, attributes={"status": "ok"}
    )
    back = parse_event(span.to_json_bytes(), "prefix.agent.tool_usage")
    assert back == span


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "empty message"),
        (b"\xff\xfe", "invalid JSON|not UTF-8"),
        (b"[1, 2]", "JSON object"),
        (json.dumps(_valid(kind="shout")).encode(), "'kind' must be one of"),
        (json.dumps(_valid(event_id="")).encode(), "'event_id' must be a non-empty string"),
        (json.dumps(_valid(trace_id="x" * 300)).encode(), "limit is 256"),
        (json.dumps(_valid(ts="yesterday")).encode(), "'ts' must be a number"),
        (json.dumps(_valid(ts=17e11)).encode(), "unix seconds"),
        (json.dumps(_valid(end_ts=1.0e9)).encode(), "before 'ts'"),
        (json.dumps(_valid(kind="reward", reward=None)).encode(), "'reward' must be a number"),
        (json.dumps(_valid(kind="reward", reward=True)).encode(), "'reward' must be a number, got bool"),
        (
            b'{"v":1,"event_id":"e","trace_id":"t","agent_id":"a","kind":"reward","ts":1.8e9,"reward":NaN}',
            "invalid JSON|finite",
        ),
        (json.dumps(_valid(attributes=[1])).encode(), "'attributes' must be an object"),
        (json.dumps(_valid(v=7)).encode(), "unsupported wire version"),
        (b"[" * 100000, "invalid JSON|nested too deeply"),
    ],
)
def test_malformed_events_have_reasons(raw, reason):
    with pytest.raises(MalformedEvent, match=reason):
        parse_event(raw)


def test_kind_must_match_topic():
    raw = json.dumps(_valid(kind="reward", reward=1.0)).encode()
    assert parse_event(raw, TOPIC_REWARDS).reward == 1.0
    with pytest.raises(MalformedEvent, match="belongs on topic"):
        parse_event(raw, TOPIC_ACTIONS)


def test_unencodable_attributes_are_malformed_not_fatal():
    """orjson parses 1024 levels but encodes only 254: such attributes must become a dead letter, not an
    exception that would fail (and endlessly retry) the whole batch."""
    deep: dict = {}
    node = deep
    for _ in range(400):
        node["x"] = {}
        node = node["x"]
    raw = json.dumps(_valid(attributes=deep)).encode()
    if spans_module._orjson is None:
        assert decode_event_row(raw)[0] == "e1"
    else:
        with pytest.raises(MalformedEvent, match="attributes cannot be stored as JSON"):
            decode_event_row(raw)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
            lambda children: (
                st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
            ),
            max_leaves=20,
        ).map(lambda obj: json.dumps(obj).encode()),
    )
)
def test_parser_only_ever_raises_malformed_event(raw):
    try:
        decode_event_row(raw)
    except MalformedEvent:
        pass
