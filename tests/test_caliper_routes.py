"""Every documented Caliper example routes, by content alone, to its Canvas event name."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from ledbelly.parsers.caliper_routes import RULES, event_name, urn_kind

CALIPER_DOCS = (
    Path(__file__).resolve().parent.parent.parent
    / "shared"
    / "fixtures"
    / "canvas-docs"
    / "caliper"
)
NOT_EVENTS = {"extensions", "actor_extensions", "metadata"}
CANVAS_EXT = "com.instructure.canvas"


def _examples() -> list[Any]:
    if not CALIPER_DOCS.is_dir():
        return [
            pytest.param(
                None,
                None,
                marks=pytest.mark.skip(
                    reason=f"Instructure's documented Caliper examples are not at {CALIPER_DOCS}"
                ),
                id="docs-absent",
            )
        ]
    out = []
    for path in sorted(CALIPER_DOCS.glob("*.json")):
        if path.stem in NOT_EVENTS:
            continue
        doc = json.loads(path.read_text(encoding="utf-8"))
        for i, example in enumerate(doc.get("examples", [])):
            out.append(pytest.param(path.stem, example["payload"], id=f"{path.stem}-{i}"))
    return out


@pytest.mark.parametrize(("stem", "payload"), _examples())
def test_documented_example_routes_to_its_event_name(stem: str, payload: dict[str, Any]) -> None:
    assert event_name(payload["data"][0]) == stem


def test_every_rule_names_a_caliper_table() -> None:
    schemas = Path(__file__).resolve().parent.parent / "schemas" / "caliper"
    for rule in RULES:
        assert (schemas / f"ims_{rule.name}.yml").is_file(), rule


def _canvas_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "@context": "http://purl.imsglobal.org/ctx/caliper/v1p1",
        "id": "urn:uuid:4a1d2f0e-7c55-4a8e-9d1c-0b8f6c3e2a11",
        "type": "Event",
        "action": "Created",
        "actor": {"id": "urn:instructure:canvas:user:21070000000000001", "type": "Person"},
        "object": {
            "id": "urn:instructure:canvas:enrollment:21070000000000143",
            "type": "Entity",
            "extensions": {CANVAS_EXT: {"entity_id": "21070000000000143"}},
        },
        "eventTime": "2026-09-01T14:03:07.150Z",
        "extensions": {CANVAS_EXT: {"version": "1.0.0"}},
    }
    event.update(overrides)
    return event


def test_non_canvas_event_is_not_routed() -> None:
    navigation = {
        "@context": "http://purl.imsglobal.org/ctx/caliper/v1p1",
        "id": "urn:uuid:c51570e4-f8ed-4c18-bb3a-dfe51b2cc594",
        "type": "NavigationEvent",
        "actor": {"id": "https://example.edu/users/554433", "type": "Person"},
        "action": "NavigatedTo",
        "object": {
            "id": "https://example.edu/terms/201601/courses/7/sections/1/pages/2",
            "type": "WebPage",
        },
        "eventTime": "2016-11-15T10:15:00.000Z",
        "edApp": "https://example.edu",
    }
    assert event_name(navigation) is None
    assert event_name({}) is None
    assert event_name({"type": 3, "action": None, "object": "x"}) is None


def test_unknown_canvas_combination_is_not_routed() -> None:
    assert event_name(_canvas_event(type="ViewEvent", action="Viewed")) is None
    assert event_name(_canvas_event(action="Archived")) is None


def test_enrollment_without_state_keys_is_an_enrollment() -> None:
    assert event_name(_canvas_event()) == "enrollment_created"
    state = _canvas_event()
    state["object"]["extensions"][CANVAS_EXT]["state"] = "active"
    assert event_name(state) == "enrollment_state_created"
    modified = copy.deepcopy(state)
    modified["action"] = "Modified"
    assert event_name(modified) == "enrollment_state_updated"


def test_system_event_without_user_is_still_canvas() -> None:
    """A job-emitted event: SoftwareApplication actor, only the Canvas extension marks it."""
    event = _canvas_event(
        type="GradeEvent",
        action="Graded",
        actor={"id": "http://oxana.instructure.com/", "type": "SoftwareApplication"},
        object={"id": "https://example.edu/x", "type": "Attempt"},
    )
    assert event_name(event) == "grade_change"


def test_urn_kind() -> None:
    assert urn_kind("urn:instructure:canvas:groupCategory:21070000000000049") == "groupCategory"
    assert urn_kind("urn:instructure:canvas:assignment_override:1") == "assignment_override"
    assert urn_kind("http://oxana.instructure.com/") is None
    assert urn_kind(None) is None


@pytest.mark.parametrize(
    ("action", "object_", "name"),
    [
        (
            "Created",
            {
                "id": "urn:instructure:canvas:groupMembership:51770000000334455",
                "type": "Membership",
            },
            "group_membership_created",
        ),
        (
            "Deleted",
            {"id": "urn:instructure:canvas:wikiPage:51770000000000009", "type": "Page"},
            "wiki_page_deleted",
        ),
        (
            "Modified",
            {"id": "urn:instructure:canvas:course:51770000000008812", "type": "Document"},
            "syllabus_updated",
        ),
        (
            "Modified",
            {"id": "urn:instructure:canvas:attachment:51770000000918273", "type": "Document"},
            "attachment_updated",
        ),
    ],
)
def test_events_documented_in_canvas_lms_only(
    action: str, object_: dict[str, Any], name: str
) -> None:
    """group_membership_created and wiki_page_deleted have canvas-lms docs but no local copy."""
    assert event_name(_canvas_event(action=action, object=object_)) == name
