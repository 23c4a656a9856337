"""Route a Canvas Caliper 1.1 event to its Canvas event name from its content alone.

Canvas delivers Caliper events over HTTPS without the SQS ``event_name`` attribute, so the
table (``schemas/caliper/ims_<name>.yml``) has to be found from the event itself: its
``type``, ``action``, ``object.type``, the kind in the object's URN id
(``urn:instructure:canvas:<kind>:<id>``) and, where those tie, the keys of the object's
``extensions["com.instructure.canvas"]``.

Source. Canvas turns its raw live events into Caliper in Instructure's hosted live events
service, which is not part of canvas-lms; what canvas-lms publishes is the contract, one
file per event name in ``doc/api/data_services/json/caliper/event-types/<name>.json``
(each names ``data[0].object.type`` and gives an example payload) and the envelope and
extension rules in ``doc/api/data_services/md/dynamic/data_service_caliper_structure.md``.
The table below was read from instructure/canvas-lms at these commits:

- ``event-types/{assignment_created,assignment_override_updated,attachment_created,
  discussion_topic_created,enrollment_state_created,grade_change,logged_in,
  wiki_page_created,wiki_page_deleted}.json@38845a5d262f4ccaac3935c43f2d0308b4abcacf``
- ``event-types/{asset_accessed,assignment_updated,enrollment_state_updated,quiz_submitted,
  submission_updated}.json@b236a6c18cc7e1ea9d49e4b9a30dda0098b70572``
- ``event-types/{assignment_override_created,course_updated,group_created,
  group_membership_created,submission_created}.json@4f71e0480eed886bee938c6b98339046695984cd``
- ``event-types/{attachment_deleted,attachment_updated,course_created,
  discussion_entry_created,enrollment_updated,group_category_created,
  wiki_page_updated}.json@05e9653c12ef7afc65815ca84e5da7aa2e4c3bd3``
- ``event-types/{enrollment_created,logged_out,syllabus_updated,
  user_account_association_created}.json@4a6f2d4e48b8dc6a1dc3ce16c0d33b582a540e65``
- ``event-types/quiz_created.json@4befecf3e9644ff5f950bf403f7282fc675507f2``,
  ``event-types/quiz_updated.json@811e606ec7f2f276fc5953ed59c7da3cddeeb7ff``
- ``md/dynamic/data_service_caliper_structure.md@87036e7c6a5ed49e646c3e75db551ef585caed18``

Ambiguities (events whose ``type``/``action``/``object.type``/URN kind are identical):

- ``enrollment_created`` / ``enrollment_state_created`` and ``enrollment_updated`` /
  ``enrollment_state_updated``: all are ``Event`` on an ``Entity`` whose id is an
  ``enrollment`` URN. Only the object extension tells them apart: the enrollment state
  events carry ``state`` / ``state_is_current`` / ``access_is_current`` /
  ``restricted_access`` / ``state_valid_until``; the enrollment events carry ``course_id``,
  ``user_id``, ``type``, ``workflow_state``. An enrollment ``Entity`` with none of the
  state keys goes to the enrollment table (a deterministic choice, not a certainty).
- ``attachment_updated`` / ``syllabus_updated``: both ``Event``/``Modified`` on a
  ``Document``; the syllabus object's id is the course URN (``course`` kind), the
  attachment's an ``attachment`` URN. A ``Document`` without a Canvas URN id goes to
  ``attachment_updated``.
- ``submission_created`` (``AssignableEvent``/``Submitted``) and ``quiz_submitted``
  (``AssessmentEvent``/``Submitted``) share ``object.type`` ``Attempt`` but not ``type``.

Where the URN kind is missing or unexpected the rules fall back to the object extension
keys Canvas documents for the event, and otherwise the first matching rule wins, so the
result is always deterministic. An event that carries no Canvas mark (no
``extensions["com.instructure.canvas"]`` and no ``urn:instructure:canvas:`` id on actor,
object, group or membership) is not Canvas's and gets ``None``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

CANVAS_EXTENSION = "com.instructure.canvas"
URN_PREFIX = "urn:instructure:canvas:"
_URN = re.compile(r"^urn:instructure:canvas:([A-Za-z_]+):")

Predicate = Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True, slots=True)
class Rule:
    """One routing rule: every given field must match; ``None`` matches anything."""

    type: str
    action: str
    object_type: str | None
    predicate: Predicate | None
    name: str


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _object(event: Mapping[str, Any]) -> Mapping[str, Any]:
    return _dict(event.get("object"))


def canvas_extension(entity: Mapping[str, Any]) -> Mapping[str, Any]:
    """``entity["extensions"]["com.instructure.canvas"]``, or an empty mapping."""
    return _dict(_dict(entity.get("extensions")).get(CANVAS_EXTENSION))


def urn_kind(value: Any) -> str | None:
    """``"enrollment"`` for ``urn:instructure:canvas:enrollment:2107...``, else ``None``."""
    if not isinstance(value, str):
        return None
    match = _URN.match(value)
    return match.group(1) if match else None


def _kind(*kinds: str) -> Predicate:
    wanted = frozenset(kinds)

    def check(event: Mapping[str, Any]) -> bool:
        return urn_kind(_object(event).get("id")) in wanted

    return check


def _extension_has(*keys: str) -> Predicate:
    wanted = frozenset(keys)

    def check(event: Mapping[str, Any]) -> bool:
        return not wanted.isdisjoint(canvas_extension(_object(event)))

    return check


def _either(*predicates: Predicate) -> Predicate:
    def check(event: Mapping[str, Any]) -> bool:
        return any(p(event) for p in predicates)

    return check


_ENROLLMENT_STATE_KEYS = (
    "state",
    "state_is_current",
    "access_is_current",
    "restricted_access",
    "state_valid_until",
)
_is_enrollment_state = _extension_has(*_ENROLLMENT_STATE_KEYS)
_is_override = _either(_kind("assignment_override"), _extension_has("assignment_id", "all_day"))
_is_user_account = _either(_kind("account"), _extension_has("is_admin"))
_is_group_category = _kind("groupCategory", "group_category")
_is_syllabus = _kind("course")

# Order matters only among rules with the same type/action/object type: the first wins.
RULES: tuple[Rule, ...] = (
    # Navigation / Session / Grading / Assessment / Assignable / Forum profiles
    Rule("NavigationEvent", "NavigatedTo", None, None, "asset_accessed"),
    Rule("SessionEvent", "LoggedIn", None, None, "logged_in"),
    Rule("SessionEvent", "LoggedOut", None, None, "logged_out"),
    Rule("GradeEvent", "Graded", None, None, "grade_change"),
    Rule("AssessmentEvent", "Submitted", None, None, "quiz_submitted"),
    Rule("AssignableEvent", "Submitted", None, None, "submission_created"),
    Rule("MessageEvent", "Posted", None, None, "discussion_entry_created"),
    Rule("ThreadEvent", "Created", None, None, "discussion_topic_created"),
    # Basic profile: a generic Event, told apart by what its object is
    Rule("Event", "Created", "AssignableDigitalResource", None, "assignment_created"),
    Rule("Event", "Modified", "AssignableDigitalResource", None, "assignment_updated"),
    Rule("Event", "Created", "Assessment", None, "quiz_created"),
    Rule("Event", "Modified", "Assessment", None, "quiz_updated"),
    Rule("Event", "Modified", "Attempt", None, "submission_updated"),
    Rule("Event", "Created", "CourseOffering", None, "course_created"),
    Rule("Event", "Modified", "CourseOffering", None, "course_updated"),
    Rule("Event", "Created", "Page", None, "wiki_page_created"),
    Rule("Event", "Modified", "Page", None, "wiki_page_updated"),
    Rule("Event", "Deleted", "Page", None, "wiki_page_deleted"),
    Rule("Event", "Created", "Group", None, "group_created"),
    Rule("Event", "Created", "Membership", None, "group_membership_created"),
    Rule("Event", "Created", "Document", None, "attachment_created"),
    Rule("Event", "Deleted", "Document", None, "attachment_deleted"),
    Rule("Event", "Modified", "Document", _is_syllabus, "syllabus_updated"),
    Rule("Event", "Modified", "Document", None, "attachment_updated"),
    Rule("Event", "Created", "Entity", _is_override, "assignment_override_created"),
    Rule("Event", "Modified", "Entity", _is_override, "assignment_override_updated"),
    Rule("Event", "Created", "Entity", _is_group_category, "group_category_created"),
    Rule("Event", "Created", "Entity", _is_user_account, "user_account_association_created"),
    Rule("Event", "Created", "Entity", _is_enrollment_state, "enrollment_state_created"),
    Rule("Event", "Modified", "Entity", _is_enrollment_state, "enrollment_state_updated"),
    Rule("Event", "Created", "Entity", _kind("enrollment"), "enrollment_created"),
    Rule("Event", "Modified", "Entity", _kind("enrollment"), "enrollment_updated"),
)


def is_canvas(event: Mapping[str, Any]) -> bool:
    """Whether the event bears Canvas's mark: its extension or a Canvas URN id."""
    if CANVAS_EXTENSION in _dict(event.get("extensions")):
        return True
    for part in ("actor", "object", "group", "membership"):
        ident = _dict(event.get(part)).get("id")
        if isinstance(ident, str) and ident.startswith(URN_PREFIX):
            return True
    return False


def event_name(event: Mapping[str, Any]) -> str | None:
    """The Canvas event name of one Caliper event (an element of ``envelope["data"]``).

    ``None`` for an event that is not Canvas's or that no rule in ``RULES`` matches.
    """
    if not is_canvas(event):
        return None
    kind, action = event.get("type"), event.get("action")
    object_type = _object(event).get("type")
    for rule in RULES:
        if rule.type != kind or rule.action != action:
            continue
        if rule.object_type is not None and rule.object_type != object_type:
            continue
        if rule.predicate is not None and not rule.predicate(event):
            continue
        return rule.name
    return None
