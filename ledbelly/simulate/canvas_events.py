"""Canvas raw Live Events: ``{"metadata": ..., "body": ...}`` builders, one per event.

Shapes follow Instructure's documented examples. :data:`CANVAS_BUILDERS` maps each
event name to its builder; the stream looks builders up there, so a name in the event
mix without a builder fails at import, not after a million events.
"""

from __future__ import annotations

from ledbelly.simulate.canvas_content_events import (
    assignment_created,
    assignment_updated,
    attachment_created,
    attachment_updated,
    conversation_created,
    course_created,
    course_updated,
    discussion_topic_created,
    enrollment_created,
    enrollment_state_updated,
    enrollment_updated,
    quiz_submitted,
    submission_comment_created,
    user_created,
    user_updated,
    wiki_page_created,
    wiki_page_updated,
)
from ledbelly.simulate.canvas_meta import request_meta, system_meta
from ledbelly.simulate.state import Builder, Payload, Sim
from ledbelly.simulate.world import (
    BASE,
)

__all__ = ["CANVAS_BUILDERS"]


def asset_accessed(g: Sim, name: str, ts: str) -> Payload:
    """A page view, the bulk of all traffic."""
    u, c, role = g.actor()
    kind, agid, aname, sub, cat, path, level, ctype, cid = g.asset(c)
    if ctype == "Group":
        role = "GroupMembership"
    meta = request_meta(g, name, ts, u, c, role, "GET", BASE + path, g.referrer(c), ctype, cid)
    return {
        "metadata": meta,
        "body": {
            "asset_name": aname,
            "asset_type": kind,
            "asset_id": agid,
            "asset_subtype": sub,
            "category": cat,
            "role": role,
            "level": level,
        },
    }


def logged_in(g: Sim, name: str, ts: str) -> Payload:
    """A login, mostly through the district's SAML identity provider."""
    u, c, _ = g.actor()
    rng = g.rng
    sso = rng.random() < 0.7
    url = f"{BASE}/login/saml" if sso else f"{BASE}/login/canvas"
    ref = f"https://idp.example.edu/idp/profile/SAML2/Redirect/SSO?execution=e{rng.randint(1, 9)}s2"
    redirect = f"{BASE}/" if rng.random() < 0.8 else f"{BASE}/courses/{c.local}"
    meta = request_meta(g, name, ts, u, None, None, "POST", url, ref if sso else None)
    return {"metadata": meta, "body": {"redirect_url": redirect}}


def logged_out(g: Sim, name: str, ts: str) -> Payload:
    """A logout; the body is empty, as in Canvas."""
    u, c, _ = g.actor()
    meta = request_meta(
        g, name, ts, u, None, None, "DELETE", f"{BASE}/logout", f"{BASE}/courses/{c.local}"
    )
    return {"metadata": meta, "body": {}}


def submission_created(g: Sim, name: str, ts: str) -> Payload:
    """A student hands in an assignment."""
    s, c, _ = g.actor(1.0)
    a = g.rng.choice(c.assignments)
    url = f"{BASE}/courses/{c.local}/assignments/{a.local}/submissions"
    meta = request_meta(
        g,
        name,
        ts,
        s,
        c,
        "StudentEnrollment",
        "POST",
        url,
        f"{BASE}/courses/{c.local}/assignments/{a.local}",
    )
    return {"metadata": meta, "body": g.submission_fields(ts, c, a, s, graded=False)}


def submission_updated(g: Sim, name: str, ts: str) -> Payload:
    """A teacher grades a submission, or the student resubmits."""
    c = g.course()
    a = g.rng.choice(c.assignments)
    s = g.student(c)
    graded = g.rng.random() < 0.7
    if graded:
        tch = g.teacher(c)
        url = f"{BASE}/courses/{c.local}/gradebook/update_submission"
        meta = request_meta(
            g,
            name,
            ts,
            tch,
            c,
            "TeacherEnrollment",
            "POST",
            url,
            f"{BASE}/courses/{c.local}/gradebook/speed_grader?assignment_id={a.local}",
        )
    else:
        url = f"{BASE}/courses/{c.local}/assignments/{a.local}/submissions/{s.local}"
        meta = request_meta(g, name, ts, s, c, "StudentEnrollment", "PUT", url, None)
    return {"metadata": meta, "body": g.submission_fields(ts, c, a, s, graded)}


def grade_change(g: Sim, name: str, ts: str) -> Payload:
    """A grade changes, by hand or by quiz auto-grading."""
    c = g.course()
    a, s, tch, body = g.grade(c)
    if g.rng.random() < 0.25:  # quiz auto-grading runs in a job
        body["grader_id"] = None
        meta = system_meta(g, name, ts, "Quizzes::SubmissionGrader#grade_submission")
    else:
        url = (
            f"{BASE}/api/v1/courses/{c.local}/assignments/{a.local}/submissions/"
            f"{s.local}?include%5B%5D=visibility"
        )
        meta = request_meta(
            g,
            name,
            ts,
            tch,
            c,
            "TeacherEnrollment",
            "PUT",
            url,
            f"{BASE}/courses/{c.local}/gradebook",
        )
    return {"metadata": meta, "body": body}


def discussion_entry_created(g: Sim, name: str, ts: str) -> Payload:
    """A discussion post or reply."""
    u, c, role = g.actor()
    tp = g.rng.choice(c.topics)
    parent = g.new_gid() if g.rng.random() < 0.4 else None
    url = f"{BASE}/api/v1/courses/{c.local}/discussion_topics/{tp.local}/entries"
    meta = request_meta(
        g,
        name,
        ts,
        u,
        c,
        role,
        "POST",
        url,
        f"{BASE}/courses/{c.local}/discussion_topics/{tp.local}",
    )
    return {
        "metadata": meta,
        "body": {
            "created_at": ts[:19] + "Z",
            "discussion_entry_id": g.new_gid(),
            "discussion_topic_id": tp.gid,
            "parent_discussion_entry_id": parent,
            "text": g.entry_text(),
            "user_id": u.gid,
        },
    }


CANVAS_BUILDERS: dict[str, Builder] = {
    "asset_accessed": asset_accessed,
    "logged_in": logged_in,
    "logged_out": logged_out,
    "submission_created": submission_created,
    "submission_updated": submission_updated,
    "grade_change": grade_change,
    "discussion_entry_created": discussion_entry_created,
    "wiki_page_updated": wiki_page_updated,
    "wiki_page_created": wiki_page_created,
    "enrollment_updated": enrollment_updated,
    "enrollment_created": enrollment_created,
    "enrollment_state_updated": enrollment_state_updated,
    "attachment_created": attachment_created,
    "attachment_updated": attachment_updated,
    "assignment_updated": assignment_updated,
    "assignment_created": assignment_created,
    "quiz_submitted": quiz_submitted,
    "submission_comment_created": submission_comment_created,
    "user_updated": user_updated,
    "user_created": user_created,
    "course_updated": course_updated,
    "course_created": course_created,
    "discussion_topic_created": discussion_topic_created,
    "conversation_created": conversation_created,
}
