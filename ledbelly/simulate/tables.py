"""The simulator's literal data, read once from the JSON files in ``data/``.

The tables are data, not code: keeping them in JSON lets someone add a name, a course
or a user agent without touching the builders. Values are checked and converted to
tuples here so a mistake in a data file fails at import with the file and key named,
not as a puzzling error deep inside a builder. Order matters (random draws index into
these tuples), so editing a table changes the output for every seed.
"""

from __future__ import annotations

import calendar
import json
import time
from importlib import resources

__all__ = [
    "ASSET_CUM",
    "ASSET_NAMES",
    "ASSIGNMENT_TEMPLATES",
    "ATTEMPTS",
    "CALIPER_OBJ_TYPE",
    "CALIPER_ROLE",
    "CALIPER_WEIGHTS",
    "CJK_NAMES",
    "COMMENTS",
    "COMMENT_ATTACHMENT_COUNTS",
    "COURSE_SUBTYPES",
    "COURSE_WORKFLOW_STATES",
    "EMOJI",
    "ENROLLMENT_ACCESS_STATES",
    "ENROLLMENT_CREATED_STATES",
    "ENROLLMENT_UPDATED_STATES",
    "ENTRY_TEXTS",
    "EVENT_WEIGHTS",
    "FILE_TEMPLATES",
    "FIRST_NAMES",
    "GROUP_NAMES",
    "GROUP_SUBTYPES",
    "HOST",
    "IP_PREFIXES",
    "LAST_NAMES",
    "LETTER_GRADES",
    "LTI_GUID",
    "MIXED_CANVAS_SHARE",
    "PAGE_TITLES",
    "PARAGRAPHS",
    "POINTS_POSSIBLE",
    "ROOT_UUID",
    "SHARD",
    "STAFF_ENROLLMENT_TYPES",
    "START_MS",
    "SUBJECTS",
    "SUBMISSION_TYPES",
    "TIME_ZONES",
    "TOOLS",
    "TOPICS",
    "USER_AGENTS",
]


class _Doc:
    """One data file; typed getters name the file and key when a value is malformed."""

    __slots__ = ("_name", "_values")

    def __init__(self, name: str) -> None:
        path = resources.files("ledbelly.simulate") / "data" / name
        values = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(values, dict):
            raise ValueError(f"simulate data {name}: expected a JSON object")
        self._name = name
        self._values: dict[str, object] = values

    def _fail(self, key: str, what: str) -> ValueError:
        return ValueError(f"simulate data {self._name}, {key!r}: expected {what}")

    def _list(self, key: str) -> list[object]:
        value = self._values.get(key)
        if not isinstance(value, list) or not value:
            raise self._fail(key, "a non-empty list")
        return value

    def _rows(self, key: str, width: int) -> list[list[object]]:
        rows = self._list(key)
        if not all(isinstance(r, list) and len(r) == width for r in rows):
            raise self._fail(key, f"a list of {width}-item lists")
        return [r for r in rows if isinstance(r, list)]

    def _mapping(self, key: str) -> dict[str, object]:
        value = self._values.get(key)
        if not isinstance(value, dict) or not value:
            raise self._fail(key, "a non-empty object")
        return value

    def text(self, key: str) -> str:
        value = self._values.get(key)
        if not isinstance(value, str):
            raise self._fail(key, "a string")
        return value

    def integer(self, key: str) -> int:
        value = self._values.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._fail(key, "an integer")
        return value

    def number(self, key: str) -> float:
        value = self._values.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self._fail(key, "a number")
        return float(value)

    def strs(self, key: str) -> tuple[str, ...]:
        out = tuple(v for v in self._list(key) if isinstance(v, str))
        if len(out) != len(self._list(key)):
            raise self._fail(key, "a list of strings")
        return out

    def optional_strs(self, key: str) -> tuple[str | None, ...]:
        out = tuple(v for v in self._list(key) if v is None or isinstance(v, str))
        if len(out) != len(self._list(key)):
            raise self._fail(key, "a list of strings or nulls")
        return out

    def ints(self, key: str) -> tuple[int, ...]:
        out = tuple(v for v in self._list(key) if isinstance(v, int) and not isinstance(v, bool))
        if len(out) != len(self._list(key)):
            raise self._fail(key, "a list of integers")
        return out

    def str_pairs(self, key: str) -> tuple[tuple[str, str], ...]:
        out = tuple(
            (a, b) for a, b in self._rows(key, 2) if isinstance(a, str) and isinstance(b, str)
        )
        if len(out) != len(self._list(key)):
            raise self._fail(key, "a list of [string, string]")
        return out

    def str_triples(self, key: str) -> tuple[tuple[str, str, str], ...]:
        out = tuple(
            (a, b, c)
            for a, b, c in self._rows(key, 3)
            if isinstance(a, str) and isinstance(b, str) and isinstance(c, str)
        )
        if len(out) != len(self._list(key)):
            raise self._fail(key, "a list of [string, string, string]")
        return out

    def weighted(self, key: str) -> dict[str, float]:
        out = {
            k: float(v)
            for k, v in self._mapping(key).items()
            if isinstance(v, int | float) and not isinstance(v, bool) and v > 0
        }
        if len(out) != len(self._mapping(key)):
            raise self._fail(key, "an object of positive numbers")
        return out

    def str_map(self, key: str) -> dict[str, str]:
        out = {k: v for k, v in self._mapping(key).items() if isinstance(v, str)}
        if len(out) != len(self._mapping(key)):
            raise self._fail(key, "an object of strings")
        return out

    def pair_map(self, key: str) -> dict[str, tuple[str, str]]:
        out = {
            k: (v[0], v[1])
            for k, v in self._mapping(key).items()
            if isinstance(v, list)
            and len(v) == 2
            and isinstance(v[0], str)
            and isinstance(v[1], str)
        }
        if len(out) != len(self._mapping(key)):
            raise self._fail(key, "an object of [string, string]")
        return out

    def weighted_rows(self, key: str) -> tuple[tuple[str, int], ...]:
        """``[label, integer weight]`` rows, for ``random.choices``."""
        out = tuple(
            (s, w)
            for s, w in self._rows(key, 2)
            if isinstance(s, str) and isinstance(w, int) and not isinstance(w, bool)
        )
        if len(out) != len(self._list(key)):
            raise self._fail(key, "a list of [string, integer]")
        return out

    def ranked(self, key: str) -> tuple[tuple[int, str], ...]:
        """``[integer, label]`` rows, e.g. letter-grade floors (highest first)."""
        out = tuple(
            (n, s)
            for n, s in self._rows(key, 2)
            if isinstance(n, int) and not isinstance(n, bool) and isinstance(s, str)
        )
        if len(out) != len(self._list(key)):
            raise self._fail(key, "a list of [integer, string]")
        return out

    def cumulative(self, key: str) -> tuple[tuple[float, str], ...]:
        """``[cumulative probability, label]`` rows, increasing and ending at 1.0."""
        out = tuple(
            (float(p), s)
            for p, s in self._rows(key, 2)
            if isinstance(p, int | float) and not isinstance(p, bool) and isinstance(s, str)
        )
        probs = [p for p, _ in out]
        if len(out) != len(self._list(key)) or probs != sorted(probs) or probs[-1] != 1.0:
            raise self._fail(key, "[probability, string] rows, increasing to 1.0")
        return out


_mix = _Doc("event_mix.json")
# Relative frequencies; Caliper has only the events Canvas documents in that format.
EVENT_WEIGHTS: dict[str, float] = _mix.weighted("canvas")
CALIPER_WEIGHTS: dict[str, float] = _mix.weighted("caliper")
MIXED_CANVAS_SHARE: float = _mix.number("mixed_canvas_share")

_tenant = _Doc("tenant.json")
HOST: str = _tenant.text("host")
SHARD: int = _tenant.integer("shard")
ROOT_UUID: str = _tenant.text("root_account_uuid")
LTI_GUID: str = _tenant.text("root_account_lti_guid")
START_MS: int = (
    calendar.timegm(time.strptime(_tenant.text("term_start"), "%Y-%m-%dT%H:%M:%SZ")) * 1000
)

_people = _Doc("people.json")
FIRST_NAMES: tuple[tuple[str, str], ...] = _people.str_pairs("first_names")
LAST_NAMES: tuple[tuple[str, str], ...] = _people.str_pairs("last_names")
CJK_NAMES: tuple[tuple[str, str, str], ...] = _people.str_triples("cjk_names")
EMOJI: tuple[str, ...] = _people.strs("emoji")
TIME_ZONES: tuple[tuple[str, int], ...] = _people.weighted_rows("time_zones")
USER_AGENTS: tuple[str, ...] = _people.strs("user_agents")
IP_PREFIXES: tuple[str, ...] = _people.strs("ip_prefixes")

_content = _Doc("content.json")
SUBJECTS: tuple[str, ...] = _content.strs("subjects")
TOPICS: tuple[str, ...] = _content.strs("topics")
ASSIGNMENT_TEMPLATES: tuple[str, ...] = _content.strs("assignment_templates")
PAGE_TITLES: tuple[str, ...] = _content.strs("page_titles")
FILE_TEMPLATES: tuple[tuple[str, str], ...] = _content.str_pairs("file_templates")
GROUP_NAMES: tuple[str, ...] = _content.strs("group_names")
TOOLS: tuple[str, ...] = _content.strs("tools")
PARAGRAPHS: tuple[str, ...] = _content.strs("paragraphs")
ENTRY_TEXTS: tuple[str, ...] = _content.strs("entry_texts")
COMMENTS: tuple[str | None, ...] = _content.optional_strs("comments")

_nav = _Doc("navigation.json")
COURSE_SUBTYPES: tuple[tuple[str, str], ...] = _nav.str_pairs("course_subtypes")
GROUP_SUBTYPES: tuple[str, ...] = _nav.strs("group_subtypes")
_asset_kinds = _nav.cumulative("asset_kinds")
ASSET_CUM: tuple[float, ...] = tuple(p for p, _ in _asset_kinds)
ASSET_NAMES: tuple[str, ...] = tuple(k for _, k in _asset_kinds)
CALIPER_OBJ_TYPE: dict[str, tuple[str, str]] = _nav.pair_map("caliper_object_types")
CALIPER_ROLE: dict[str, str] = _nav.str_map("caliper_roles")

_choices = _Doc("choices.json")
SUBMISSION_TYPES: tuple[str, ...] = _choices.strs("submission_types")
POINTS_POSSIBLE: tuple[int, ...] = _choices.ints("points_possible")
ATTEMPTS: tuple[int, ...] = _choices.ints("attempts")
LETTER_GRADES: tuple[tuple[int, str], ...] = _choices.ranked("letter_grades")
STAFF_ENROLLMENT_TYPES: tuple[str, ...] = _choices.strs("staff_enrollment_types")
ENROLLMENT_CREATED_STATES: tuple[str, ...] = _choices.strs("enrollment_created_states")
ENROLLMENT_UPDATED_STATES: tuple[str, ...] = _choices.strs("enrollment_updated_states")
ENROLLMENT_ACCESS_STATES: tuple[str, ...] = _choices.strs("enrollment_access_states")
COURSE_WORKFLOW_STATES: tuple[str, ...] = _choices.strs("course_workflow_states")
COMMENT_ATTACHMENT_COUNTS: tuple[int, ...] = _choices.ints("comment_attachment_counts")
