"""Tests for the synthetic Live Events generator (ledbelly.simulate)."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import types
import uuid
from collections import Counter
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledbelly.simulate import (
    CALIPER_WEIGHTS,
    EVENT_WEIGHTS,
    generate_events,
    generate_messages,
)

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
GLOBAL_ID_KEYS = {
    "root_account_id",
    "user_account_id",
    "user_id",
    "context_id",
    "context_account_id",
    "asset_id",
    "submission_id",
    "assignment_id",
    "grader_id",
    "student_id",
    "quiz_id",
    "wiki_page_id",
    "enrollment_id",
    "course_id",
    "course_section_id",
    "attachment_id",
    "folder_id",
    "discussion_entry_id",
    "discussion_topic_id",
    "entity_id",
    "account_id",
}


def caliper_name(event: dict[str, Any]) -> str:
    """Derive the Canvas event name from a Caliper event, independently of the generator."""
    etype, action = event["type"], event["action"]
    fixed = {
        ("NavigationEvent", "NavigatedTo"): "asset_accessed",
        ("SessionEvent", "LoggedIn"): "logged_in",
        ("SessionEvent", "LoggedOut"): "logged_out",
        ("AssignableEvent", "Submitted"): "submission_created",
        ("GradeEvent", "Graded"): "grade_change",
        ("AssessmentEvent", "Submitted"): "quiz_submitted",
        ("MessageEvent", "Posted"): "discussion_entry_created",
        ("ThreadEvent", "Created"): "discussion_topic_created",
    }
    if (etype, action) in fixed:
        return fixed[(etype, action)]
    assert etype == "Event"
    kind = event["object"]["id"].split(":")[3]
    noun = {"wikiPage": "wiki_page"}.get(kind, kind)
    verb = {"Created": "created", "Modified": "updated", "Deleted": "deleted"}[action]
    return f"{noun}_{verb}"


def event_name_and_time(payload: dict[str, Any]) -> tuple[str, str]:
    if "data" in payload:
        event = payload["data"][0]
        return caliper_name(event), event["eventTime"]
    return payload["metadata"]["event_name"], payload["metadata"]["event_time"]


def walk(obj: Any) -> Any:
    """Yield (key, value) pairs from nested dicts/lists."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k, v
            yield from walk(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from walk(v)


def test_weights_cover_enough_event_types() -> None:
    assert len(EVENT_WEIGHTS) >= 15
    assert len(CALIPER_WEIGHTS) >= 10
    assert max(EVENT_WEIGHTS, key=EVENT_WEIGHTS.__getitem__) == "asset_accessed"
    assert max(CALIPER_WEIGHTS, key=CALIPER_WEIGHTS.__getitem__) == "asset_accessed"
    for w in (EVENT_WEIGHTS, CALIPER_WEIGHTS):
        assert 0.55 < w["asset_accessed"] / sum(w.values()) < 0.65


@pytest.mark.parametrize("fmt", ["canvas", "caliper", "mixed"])
def test_deterministic(fmt: str) -> None:
    a = list(generate_messages(300, seed=7, fmt=fmt))
    b = list(generate_messages(300, seed=7, fmt=fmt))
    assert a == b
    c = list(generate_messages(300, seed=8, fmt=fmt))
    assert [m["Body"] for m in a] != [m["Body"] for m in c]


def test_messages_wrap_the_same_events() -> None:
    events = list(generate_events(200, seed=3, fmt="mixed"))
    messages = list(generate_messages(200, seed=3, fmt="mixed"))
    for (name, ts, payload), msg in zip(events, messages, strict=True):
        assert json.loads(msg["Body"]) == payload
        assert msg["MessageAttributes"]["event_name"]["StringValue"] == name
        assert msg["MessageAttributes"]["event_time"]["StringValue"] == ts


def test_is_a_lazy_stream() -> None:
    gen = generate_messages(10**9, seed=1)
    assert isinstance(gen, types.GeneratorType)
    assert len(list(itertools.islice(gen, 5))) == 5


@pytest.mark.parametrize("n", [0, 1, 17, 1000])
def test_count(n: int) -> None:
    assert sum(1 for _ in generate_events(n)) == n
    assert sum(1 for _ in generate_messages(n, fmt="mixed")) == n


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        generate_events(1, fmt="xml")
    with pytest.raises(ValueError):
        generate_messages(-1)


@pytest.mark.parametrize("fmt", ["canvas", "caliper"])
def test_message_shape(fmt: str) -> None:
    ids = set()
    for msg in generate_messages(1000, seed=11, fmt=fmt):
        assert set(msg) == {"MessageId", "ReceiptHandle", "MD5OfBody", "Body", "MessageAttributes"}
        assert uuid.UUID(msg["MessageId"]).version == 4
        ids.add(msg["MessageId"])
        assert isinstance(msg["ReceiptHandle"], str) and len(msg["ReceiptHandle"]) > 100
        assert msg["MD5OfBody"] == hashlib.md5(msg["Body"].encode("utf-8")).hexdigest()
        attrs = msg["MessageAttributes"]
        assert attrs["event_name"]["DataType"] == "String"
        assert attrs["event_time"]["DataType"] == "String"
        payload = json.loads(msg["Body"])
        name, ts = event_name_and_time(payload)
        assert attrs["event_name"]["StringValue"] == name
        assert attrs["event_time"]["StringValue"] == ts
        if fmt == "canvas":
            assert set(payload) == {"metadata", "body"}
            assert name in EVENT_WEIGHTS
            assert payload["metadata"]["producer"] == "canvas"
        else:
            assert name in CALIPER_WEIGHTS
            assert payload["dataVersion"] == "http://purl.imsglobal.org/ctx/caliper/v1p1"
            assert payload["sensor"] == "http://lms.example.edu/"
            event = payload["data"][0]
            assert event["id"].startswith("urn:uuid:")
            assert event["actor"]["type"] == "Person"
            assert event["edApp"]["type"] == "SoftwareApplication"
            assert event["extensions"]["com.instructure.canvas"]["version"] == "1.0.0"
            assert payload["sendTime"] >= event["eventTime"]
    assert len(ids) == 1000


def test_asset_accessed_share() -> None:
    for fmt in ("canvas", "caliper", "mixed"):
        names = Counter(name for name, _, _ in generate_events(5000, seed=5, fmt=fmt))
        assert 0.50 <= names["asset_accessed"] / 5000 <= 0.70, fmt
        assert len(names) >= 10


def test_mixed_proportion() -> None:
    kinds = Counter("data" in p for _, _, p in generate_events(5000, seed=9, fmt="mixed"))
    assert 0.65 <= kinds[False] / 5000 <= 0.75


def test_ids_are_big_digit_strings() -> None:
    checked = 0
    for _, _, payload in generate_events(2000, seed=2, fmt="mixed"):
        for key, value in walk(payload):
            if key in GLOBAL_ID_KEYS and value is not None:
                assert isinstance(value, str), (key, value)
                if value.startswith("urn:instructure:canvas:"):  # caliper references
                    value = value.rsplit(":", 1)[1]
                assert value.isdigit(), (key, value)
                assert int(value) > 2**31, (key, value)
                checked += 1
            elif (
                key == "id"
                and isinstance(value, str)
                and value.startswith("urn:instructure:canvas:")
                and not value.startswith("urn:instructure:canvas:session:")
            ):
                assert int(value.rsplit(":", 1)[1]) > 2**31, value
    assert checked > 10_000


def test_event_times() -> None:
    times = []
    for name, ts, payload in generate_events(3000, seed=4, fmt="mixed"):
        assert ISO_MS.match(ts), ts
        times.append(datetime.fromisoformat(ts.replace("Z", "+00:00")))
        assert event_name_and_time(payload) == (name, ts)
    deltas = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert times[-1] > times[0]
    assert any(d < 0 for d in deltas)  # occasionally out of order ...
    assert min(deltas) > -10  # ... but only by a few seconds
    assert sum(d < 0 for d in deltas) < len(deltas) * 0.1


def test_realistic_variety() -> None:
    payloads = [p for _, _, p in generate_events(5000, seed=6)]
    text = json.dumps(payloads, ensure_ascii=False)
    assert re.search(r"[\u4e00-\u9fff]", text)  # CJK
    assert re.search(r"[\U0001F300-\U0001FAFF]", text)  # emoji
    assert "é" in text or "ñ" in text
    assert any(v is None for p in payloads for _, v in walk(p))
    bodies = [
        p["body"]["body"] for p in payloads if p["metadata"]["event_name"] == "wiki_page_updated"
    ]
    assert max(len(b.encode()) for b in bodies) > 2000
    system = [p for p in payloads if "job_id" in p["metadata"]]
    assert system and all("request_id" not in p["metadata"] for p in system)
    assert all(
        p["metadata"]["hostname"] == "lms.example.edu"
        for p in payloads
        if "job_id" not in p["metadata"]
    )


def test_documented_body_fields() -> None:
    want = {
        "asset_accessed": {
            "asset_id",
            "asset_name",
            "asset_type",
            "asset_subtype",
            "category",
            "role",
            "level",
        },
        "submission_created": {
            "submission_id",
            "assignment_id",
            "user_id",
            "submitted_at",
            "graded_at",
            "updated_at",
            "score",
            "grade",
            "submission_type",
            "body",
            "url",
            "attempt",
            "late",
            "missing",
            "workflow_state",
            "lti_user_id",
            "group_id",
        },
        "grade_change": {
            "submission_id",
            "assignment_id",
            "grade",
            "old_grade",
            "score",
            "old_score",
            "points_possible",
            "old_points_possible",
            "grader_id",
            "student_id",
            "student_sis_id",
            "user_id",
            "grading_complete",
            "muted",
        },
    }
    seen = set()
    for name, _, payload in generate_events(2000, seed=12):
        if name in want:
            assert want[name] <= set(payload["body"])
            seen.add(name)
    assert seen == set(want)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(min_value=-(2**40), max_value=2**40),
    fmt=st.sampled_from(["canvas", "caliper", "mixed"]),
)
def test_every_message_is_valid_json(seed: int, fmt: str) -> None:
    for msg in generate_messages(60, seed=seed, fmt=fmt):
        payload = json.loads(msg["Body"])
        assert isinstance(payload, dict)
        if "data" in payload:
            assert {"sensor", "sendTime", "dataVersion", "data"} <= set(payload)
            assert {
                "@context",
                "id",
                "type",
                "actor",
                "action",
                "object",
                "eventTime",
                "edApp",
                "extensions",
            } <= set(payload["data"][0])
        else:
            assert {"metadata", "body"} <= set(payload)
            assert {"root_account_id", "event_name", "event_time", "producer"} <= set(
                payload["metadata"]
            )
        name, ts = event_name_and_time(payload)
        assert msg["MessageAttributes"]["event_name"]["StringValue"] == name
        assert ISO_MS.match(ts)
