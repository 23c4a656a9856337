"""IMS Caliper 1.1 Live Events, as Canvas sends them: one event in a sensor envelope.

Only events Canvas documents in Caliper format have a builder here.
:data:`CALIPER_BUILDERS` maps each event name to its builder; the stream looks builders
up there, so a name in the Caliper mix without a builder fails at import.
"""

from __future__ import annotations

from ledbelly.simulate import tables as t
from ledbelly.simulate.state import Builder, Payload, Sim
from ledbelly.simulate.world import (
    BASE,
    HOST,
    LTI_GUID,
    ROOT_ID,
    ROOT_UUID,
    SENSOR,
    Course,
    User,
    uuid4,
)

__all__ = ["CALIPER_BUILDERS"]

_CALIPER_CTX = "http://purl.imsglobal.org/ctx/caliper/v1p1"
_URN = "urn:instructure:canvas:"


def _cal(
    g: Sim,
    etype: str,
    action: str,
    ts: str,
    u: User,
    obj: Payload,
    request_url: str,
    referrer: str | None,
    c: Course | None,
    role: str | None,
    extra: Payload | None = None,
    job_tag: str | None = None,
) -> Payload:
    """Wrap an object in the Canvas Caliper envelope (actor, edApp, group, session...)."""
    rng = g.rng
    ugid = u.gid
    ev: Payload = {
        "@context": _CALIPER_CTX,
        "id": "urn:uuid:" + uuid4(rng),
        "type": etype,
        "actor": {
            "id": _URN + "user:" + ugid,
            "type": "Person",
            "extensions": {
                "com.instructure.canvas": {
                    "user_login": u.login,
                    "user_sis_id": u.sis_id,
                    "root_account_id": ROOT_ID,
                    "root_account_lti_guid": LTI_GUID,
                    "root_account_uuid": ROOT_UUID,
                    "entity_id": ugid,
                }
            },
        },
        "action": action,
        "object": obj,
        "eventTime": ts,
    }
    if extra:
        ev.update(extra)
    if referrer is not None:
        ev["referrer"] = referrer
    ev["edApp"] = {"id": SENSOR, "type": "SoftwareApplication"}
    if c is not None:
        cid = _URN + "course:" + c.gid
        ev.setdefault(
            "group",
            {
                "id": cid,
                "type": "CourseOffering",
                "extensions": {
                    "com.instructure.canvas": {"context_type": "Course", "entity_id": c.gid}
                },
            },
        )
        if role is not None:
            crole = t.CALIPER_ROLE.get(role, "Learner")
            ev["membership"] = {
                "id": f"{cid}:{crole}:{ugid}",
                "type": "Membership",
                "member": {"id": _URN + "user:" + ugid, "type": "Person"},
                "organization": {"id": cid, "type": "CourseOffering"},
                "roles": [crole],
            }
    ext: Payload
    if job_tag is None:
        ev["session"] = {"id": _URN + "session:" + u.session_id, "type": "Session"}
        ext = {
            "hostname": HOST,
            "request_id": uuid4(rng),
            "user_agent": u.user_agent,
            "client_ip": u.client_ip,
            "request_url": request_url,
            "version": "1.0.0",
        }
    else:
        ext = {
            "job_id": str(rng.randint(10**15, 10**16 - 1)),
            "job_tag": job_tag,
            "version": "1.0.0",
        }
    ev["extensions"] = {"com.instructure.canvas": ext}
    ms = int(ts[20:23]) + 20 + rng.randrange(600)
    send = ts[:20] + f"{ms % 1000:03d}Z" if ms < 1000 else ts[:19] + ".999Z"
    return {
        "sensor": SENSOR,
        "sendTime": send,
        "dataVersion": _CALIPER_CTX,
        "data": [ev],
    }


def asset_accessed(g: Sim, name: str, ts: str) -> Payload:
    """A page view (NavigationEvent), the bulk of all traffic."""
    u, c, role = g.actor()
    kind, agid, aname, sub, _, path, _, ctype, _ = g.asset(c)
    urn_kind, otype = t.CALIPER_OBJ_TYPE.get(kind, ("context_external_tool", "SoftwareApplication"))
    ext: Payload = {
        "asset_name": aname,
        "asset_type": kind,
        "entity_id": agid,
        "context_account_id": c.account,
        "http_method": "GET",
    }
    if sub is not None:
        ext["asset_subtype"] = sub
    obj = {
        "id": f"{_URN}{urn_kind}:{agid}",
        "type": otype,
        "name": aname,
        "extensions": {"com.instructure.canvas": ext},
    }
    in_course = ctype == "Course" and g.rng.random() < 0.8
    return _cal(
        g,
        "NavigationEvent",
        "NavigatedTo",
        ts,
        u,
        obj,
        BASE + path,
        g.referrer(c),
        c if in_course else None,
        role,
    )


def logged_in(g: Sim, name: str, ts: str) -> Payload:
    """A login through the district's SAML identity provider."""
    u, _, _ = g.actor()
    obj = {
        "id": SENSOR,
        "type": "SoftwareApplication",
        "extensions": {"com.instructure.canvas": {"redirect_url": f"{BASE}/"}},
    }
    return _cal(
        g,
        "SessionEvent",
        "LoggedIn",
        ts,
        u,
        obj,
        f"{BASE}/login/saml",
        "https://idp.example.edu/idp/profile/SAML2/Redirect/SSO",
        None,
        None,
    )


def logged_out(g: Sim, name: str, ts: str) -> Payload:
    """A logout."""
    u, c, _ = g.actor()
    obj = {"id": SENSOR, "type": "SoftwareApplication"}
    return _cal(
        g,
        "SessionEvent",
        "LoggedOut",
        ts,
        u,
        obj,
        f"{BASE}/logout",
        f"{BASE}/courses/{c.local}",
        None,
        None,
    )


def _attempt(sub_gid: str, s: User, a_urn: str, a_type: str) -> Payload:
    return {
        "id": f"{_URN}submission:{sub_gid}",
        "type": "Attempt",
        "assignee": {"id": _URN + "user:" + s.gid, "type": "Person"},
        "assignable": {"id": a_urn, "type": a_type},
    }


def submission_created(g: Sim, name: str, ts: str) -> Payload:
    """A student hands in an assignment (AssignableEvent Submitted)."""
    s, c, _ = g.actor(1.0)
    a = g.rng.choice(c.assignments)
    f = g.submission_fields(ts, c, a, s, graded=False)
    obj = _attempt(f["submission_id"], s, f"{_URN}assignment:{a.gid}", "AssignableDigitalResource")
    obj["dateCreated"] = ts
    obj["extensions"] = {
        "com.instructure.canvas": {
            "submission_type": f["submission_type"],
            "url": f["url"],
            "entity_id": f["submission_id"],
        }
    }
    obj["count"] = f["attempt"]
    obj["body"] = f["body"]
    return _cal(
        g,
        "AssignableEvent",
        "Submitted",
        ts,
        s,
        obj,
        f"{BASE}/courses/{c.local}/assignments/{a.local}/submissions",
        None,
        c if g.rng.random() < 0.5 else None,
        "StudentEnrollment",
    )


def submission_updated(g: Sim, name: str, ts: str) -> Payload:
    """A teacher updates a submission in the gradebook (Event Modified)."""
    c = g.course()
    a = g.rng.choice(c.assignments)
    s = g.student(c)
    tch = g.teacher(c)
    f = g.submission_fields(ts, c, a, s, graded=g.rng.random() < 0.7)
    obj = _attempt(f["submission_id"], s, f"{_URN}assignment:{a.gid}", "AssignableDigitalResource")
    obj["dateModified"] = ts
    obj["extensions"] = {
        "com.instructure.canvas": {
            "submission_type": f["submission_type"],
            "entity_id": f["submission_id"],
        }
    }
    obj["count"] = f["attempt"]
    return _cal(
        g,
        "Event",
        "Modified",
        ts,
        tch,
        obj,
        f"{BASE}/courses/{c.local}/gradebook/update_submission",
        f"{BASE}/courses/{c.local}/gradebook",
        c,
        "TeacherEnrollment",
    )


def grade_change(g: Sim, name: str, ts: str) -> Payload:
    """A grade (GradeEvent Graded) with the generated Score nested inside."""
    c = g.course()
    a, s, tch, gr = g.grade(c)
    sub = gr["submission_id"]
    grade_ext = {"com.instructure.canvas": {"grade": gr["grade"], "entity_id": sub}}
    assignee = {
        "id": _URN + "user:" + s.gid,
        "type": "Person",
        "extensions": {"com.instructure.canvas": {"sis_id": s.sis_id}},
    }
    assignable = {"id": f"{_URN}assignment:{a.gid}", "type": "AssignableDigitalResource"}
    obj = {
        "id": f"{_URN}submission:{sub}",
        "type": "Attempt",
        "extensions": grade_ext,
        "assignee": assignee,
        "assignable": assignable,
    }
    generated = {
        "id": f"{_URN}submission:{sub}",
        "type": "Score",
        "extensions": {"com.instructure.canvas": {"grade": gr["grade"], "entity_id": sub}},
        "attempt": {
            "id": f"{_URN}submission:{sub}",
            "type": "Attempt",
            "extensions": {"com.instructure.canvas": {"grade": gr["grade"]}},
            "assignee": {
                "id": _URN + "user:" + s.gid,
                "type": "Person",
                "extensions": {"com.instructure.canvas": {"sis_id": s.sis_id}},
            },
            "assignable": {"id": f"{_URN}assignment:{a.gid}", "type": "AssignableDigitalResource"},
        },
        "maxScore": gr["points_possible"],
        "scoreGiven": gr["score"],
        "scoredBy": _URN + "user:" + tch.gid,
    }
    url = (
        f"{BASE}/api/v1/courses/{c.local}/assignments/{a.local}/submissions/"
        f"{s.local}?include%5B%5D=visibility"
    )
    return _cal(
        g,
        "GradeEvent",
        "Graded",
        ts,
        tch,
        obj,
        url,
        f"{BASE}/courses/{c.local}/gradebook",
        c,
        "TeacherEnrollment",
        extra={"generated": generated},
    )


def discussion_entry_created(g: Sim, name: str, ts: str) -> Payload:
    """A discussion post (MessageEvent Posted)."""
    u, c, role = g.actor()
    tp = g.rng.choice(c.topics)
    eid = g.new_gid()
    obj = {
        "id": f"{_URN}discussionEntry:{eid}",
        "type": "Message",
        "extensions": {"com.instructure.canvas": {"entity_id": eid}},
        "isPartOf": {"id": f"{_URN}discussion:{tp.gid}", "type": "Thread"},
        "body": g.entry_text(),
    }
    return _cal(
        g,
        "MessageEvent",
        "Posted",
        ts,
        u,
        obj,
        f"{BASE}/api/v1/courses/{c.local}/discussion_topics/{tp.local}/entries",
        f"{BASE}/courses/{c.local}/discussion_topics/{tp.local}",
        c,
        role,
    )


def discussion_topic_created(g: Sim, name: str, ts: str) -> Payload:
    """A new discussion or announcement (ThreadEvent Created)."""
    c = g.course()
    tp = g.rng.choice(c.topics)
    tgid = g.new_gid()
    obj = {
        "id": f"{_URN}discussion:{tgid}",
        "type": "Thread",
        "name": tp.name,
        "extensions": {
            "com.instructure.canvas": {"is_announcement": g.rng.random() < 0.35, "entity_id": tgid}
        },
    }
    return _cal(
        g,
        "ThreadEvent",
        "Created",
        ts,
        g.teacher(c),
        obj,
        f"{BASE}/api/v1/courses/{c.local}/discussion_topics",
        f"{BASE}/courses/{c.local}/discussion_topics/new",
        c,
        "TeacherEnrollment",
    )


def _assignment(g: Sim, ts: str, created: bool) -> Payload:
    c = g.course()
    a = g.rng.choice(c.assignments)
    agid = g.new_gid() if created else a.gid
    obj: Payload = {
        "id": f"{_URN}assignment:{agid}",
        "type": "AssignableDigitalResource",
        "name": a.title,
        "description": a.description,
    }
    obj["dateCreated" if created else "dateModified"] = ts
    ext: Payload = {"lock_at": a.lock_at, "entity_id": agid}
    if not created:
        ext["workflow_state"] = "published"
    obj["extensions"] = {"com.instructure.canvas": ext}
    obj["dateToShow"] = a.unlock_at
    obj["dateToSubmit"] = a.due_at
    obj["maxScore"] = a.points
    return _cal(
        g,
        "Event",
        "Created" if created else "Modified",
        ts,
        g.teacher(c),
        obj,
        f"{BASE}/api/v1/courses/{c.local}/assignments",
        f"{BASE}/courses/{c.local}/assignments/{a.local}/edit",
        c,
        "TeacherEnrollment",
    )


def assignment_created(g: Sim, name: str, ts: str) -> Payload:
    """A teacher creates an assignment (Event Created)."""
    return _assignment(g, ts, created=True)


def assignment_updated(g: Sim, name: str, ts: str) -> Payload:
    """A teacher edits an assignment (Event Modified)."""
    return _assignment(g, ts, created=False)


def attachment_created(g: Sim, name: str, ts: str) -> Payload:
    """A file upload (Event Created on a Document)."""
    u, c, role = g.actor(0.6)
    f = g.file(c)
    agid = g.new_gid()
    obj = {
        "id": f"{_URN}attachment:{agid}",
        "type": "Document",
        "name": f.name,
        "dateCreated": ts,
        "extensions": {
            "com.instructure.canvas": {
                "context_id": c.gid,
                "context_type": "Course",
                "filename": f.extra2,
                "folder_id": c.folder,
                "entity_id": agid,
            }
        },
        "mediaType": f.extra,
    }
    return _cal(g, "Event", "Created", ts, u, obj, f"{BASE}/api/v1/files/capture", None, c, role)


def _enrollment(g: Sim, ts: str, created: bool) -> Payload:
    c, u, b = g.enrollment(ts, created)
    section = b["course_section_id"]
    eid = b["enrollment_id"]
    ext = {
        "course_id": _URN + "course:" + c.gid,
        "course_section_id": f"{_URN}course:{c.gid}:section:{section}",
        "limit_privileges_to_course_section": b["limit_privileges_to_course_section"],
        "type": b["type"],
        "user_id": _URN + "user:" + u.gid,
        "user_name": u.name,
        "workflow_state": b["workflow_state"],
        "entity_id": eid,
    }
    obj: Payload = {
        "id": f"{_URN}enrollment:{eid}",
        "type": "Entity",
        "dateCreated": ts if created else c.created_at[:19] + ".000Z",
    }
    if not created:
        obj["dateModified"] = ts
    obj["extensions"] = {"com.instructure.canvas": ext}
    system = g.rng.random() < 0.6
    admin = g.teacher(c)
    course_urn = _URN + "course:" + c.gid
    group = {
        "id": ext["course_section_id"],
        "type": "CourseSection",
        "extensions": {"com.instructure.canvas": {"context_type": "Course", "entity_id": c.gid}},
        "subOrganizationOf": {"id": course_urn, "type": "CourseOffering"},
    }
    return _cal(
        g,
        "Event",
        "Created" if created else "Modified",
        ts,
        admin,
        obj,
        f"{BASE}/courses/{c.local}/enroll_users",
        None,
        c,
        None if system else "TeacherEnrollment",
        extra={"group": group},
        job_tag="SIS::CSV::ImportRefactored#run_parallel_importer" if system else None,
    )


def enrollment_created(g: Sim, name: str, ts: str) -> Payload:
    """Someone is enrolled (Event Created, grouped by course section)."""
    return _enrollment(g, ts, created=True)


def enrollment_updated(g: Sim, name: str, ts: str) -> Payload:
    """An enrollment changes (Event Modified, grouped by course section)."""
    return _enrollment(g, ts, created=False)


def _wiki(g: Sim, ts: str, created: bool) -> Payload:
    c = g.course()
    page = g.rng.choice(c.pages)
    pgid = g.new_gid() if created else page.gid
    obj = {
        "id": f"{_URN}wikiPage:{pgid}",
        "type": "Page",
        "name": page.name,
        "extensions": {"com.instructure.canvas": {"body": g.page_body(), "entity_id": pgid}},
    }
    return _cal(
        g,
        "Event",
        "Created" if created else "Modified",
        ts,
        g.teacher(c),
        obj,
        f"{BASE}/api/v1/courses/{c.local}/pages/{page.extra}",
        f"{BASE}/courses/{c.local}/pages/{page.extra}/edit",
        c,
        "TeacherEnrollment",
    )


def wiki_page_created(g: Sim, name: str, ts: str) -> Payload:
    """A new wiki page (Event Created on a Page)."""
    return _wiki(g, ts, created=True)


def wiki_page_updated(g: Sim, name: str, ts: str) -> Payload:
    """A page edit (Event Modified on a Page)."""
    return _wiki(g, ts, created=False)


def quiz_submitted(g: Sim, name: str, ts: str) -> Payload:
    """A student turns in a quiz (AssessmentEvent Submitted)."""
    s, c, _ = g.actor(1.0)
    q = g.rng.choice(c.quizzes)
    sub = g.new_gid()
    obj = _attempt(sub, s, f"{_URN}quiz:{q.gid}", "Assessment")
    obj["extensions"] = {"com.instructure.canvas": {"entity_id": sub}}
    return _cal(
        g,
        "AssessmentEvent",
        "Submitted",
        ts,
        s,
        obj,
        f"{BASE}/courses/{c.local}/quizzes/{q.local}/submissions?user_id={s.local}",
        f"{BASE}/courses/{c.local}/quizzes/{q.local}/take",
        c,
        "StudentEnrollment",
    )


CALIPER_BUILDERS: dict[str, Builder] = {
    "asset_accessed": asset_accessed,
    "logged_in": logged_in,
    "logged_out": logged_out,
    "submission_created": submission_created,
    "submission_updated": submission_updated,
    "grade_change": grade_change,
    "discussion_entry_created": discussion_entry_created,
    "assignment_updated": assignment_updated,
    "attachment_created": attachment_created,
    "wiki_page_updated": wiki_page_updated,
    "enrollment_created": enrollment_created,
    "enrollment_updated": enrollment_updated,
    "quiz_submitted": quiz_submitted,
    "assignment_created": assignment_created,
    "wiki_page_created": wiki_page_created,
    "discussion_topic_created": discussion_topic_created,
}
