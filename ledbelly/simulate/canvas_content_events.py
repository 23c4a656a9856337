"""Canvas raw builders for course content and people: pages, enrollments, files,
assignments, quizzes, comments, users, courses, topics and conversations."""

from __future__ import annotations

from ledbelly.simulate import tables as t
from ledbelly.simulate.canvas_meta import SIS_IMPORT, request_meta, system_meta
from ledbelly.simulate.state import Payload, Sim
from ledbelly.simulate.world import (
    BASE,
    HOST,
    Assignment,
    Course,
    Item,
    User,
    gid,
)


def _page_meta(g: Sim, name: str, ts: str, c: Course, page: Item) -> Payload:
    if g.rng.random() < 0.3:  # blueprint sync pushes page edits from a job
        return system_meta(g, name, ts, "MasterCourses::MasterMigration#perform_imports")
    tch = g.teacher(c)
    return request_meta(
        g,
        name,
        ts,
        tch,
        c,
        "TeacherEnrollment",
        "PUT",
        f"{BASE}/api/v1/courses/{c.local}/pages/{page.extra}",
        f"{BASE}/courses/{c.local}/pages/{page.extra}/edit",
    )


def wiki_page_updated(g: Sim, name: str, ts: str) -> Payload:
    """A page edit; old and new bodies make these the widest rows."""
    c = g.course()
    page = g.rng.choice(c.pages)
    retitle = g.rng.random() < 0.1
    return {
        "metadata": _page_meta(g, name, ts, c, page),
        "body": {
            "body": g.page_body(),
            "old_body": g.page_body(),
            "old_title": page.name,
            "title": f"{page.name} (updated)" if retitle else page.name,
            "wiki_page_id": page.gid,
        },
    }


def wiki_page_created(g: Sim, name: str, ts: str) -> Payload:
    """A new wiki page."""
    c = g.course()
    page = g.rng.choice(c.pages)
    return {
        "metadata": _page_meta(g, name, ts, c, page),
        "body": {
            "body": g.page_body(),
            "title": page.name,
            "wiki_page_id": g.new_gid(),
        },
    }


def _enrollment_meta(g: Sim, name: str, ts: str, c: Course) -> Payload:
    if g.rng.random() < 0.75:  # nightly SIS imports
        return system_meta(g, name, ts, SIS_IMPORT)
    admin = g.teacher(c)
    return request_meta(
        g,
        name,
        ts,
        admin,
        c,
        "TeacherEnrollment",
        "POST",
        f"{BASE}/courses/{c.local}/enroll_users",
        f"{BASE}/courses/{c.local}/users",
    )


def enrollment_updated(g: Sim, name: str, ts: str) -> Payload:
    """An enrollment changes state, mostly from an SIS import."""
    c, _, body = g.enrollment(ts, created=False)
    return {"metadata": _enrollment_meta(g, name, ts, c), "body": body}


def enrollment_created(g: Sim, name: str, ts: str) -> Payload:
    """Someone is enrolled, mostly from an SIS import."""
    c, _, body = g.enrollment(ts, created=True)
    return {"metadata": _enrollment_meta(g, name, ts, c), "body": body}


def enrollment_state_updated(g: Sim, name: str, ts: str) -> Payload:
    """Canvas recomputes an enrollment's effective state in a job."""
    rng = g.rng
    meta = system_meta(g, name, ts, "EnrollmentState.process_states_for_ids")
    return {
        "metadata": meta,
        "body": {
            "access_is_current": rng.random() < 0.9,
            "enrollment_id": g.new_gid(),
            "restricted_access": rng.random() < 0.05,
            "state": rng.choice(t.ENROLLMENT_ACCESS_STATES),
            "state_is_current": True,
            "state_started_at": ts[:19] + "Z",
            "state_valid_until": None if rng.random() < 0.7 else "2027-06-15T07:00:00Z",
        },
    }


def _attachment_body(g: Sim, ts: str, u: User, c: Course, f: Item, agid: str) -> Payload:
    return {
        "attachment_id": agid,
        "content_type": f.extra,
        "context_id": c.gid,
        "context_type": "Course",
        "display_name": f.name,
        "filename": f.extra2,
        "folder_id": c.folder,
        "lock_at": None,
        "unlock_at": None if g.rng.random() < 0.9 else ts[:19] + "Z",
        "updated_at": ts[:19] + "Z",
        "user_id": u.gid,
    }


def attachment_created(g: Sim, name: str, ts: str) -> Payload:
    """A file upload, by a student or a teacher."""
    u, c, role = g.actor(0.6)
    f = g.file(c)
    meta = request_meta(g, name, ts, u, c, role, "POST", f"{BASE}/api/v1/files/capture", None)
    return {"metadata": meta, "body": _attachment_body(g, ts, u, c, f, g.new_gid())}


def attachment_updated(g: Sim, name: str, ts: str) -> Payload:
    """A teacher edits a course file."""
    c = g.course()
    tch = g.teacher(c)
    f = g.file(c)
    meta = request_meta(
        g,
        name,
        ts,
        tch,
        c,
        "TeacherEnrollment",
        "PUT",
        f"{BASE}/api/v1/files/{f.local}",
        f"{BASE}/courses/{c.local}/files",
    )
    return {"metadata": meta, "body": _attachment_body(g, ts, tch, c, f, f.gid)}


def _assignment_body(g: Sim, ts: str, c: Course, a: Assignment, created: bool) -> Payload:
    rng = g.rng
    return {
        "assignment_group_id": a.group_gid,
        "assignment_id": a.gid if not created else g.new_gid(),
        "context_id": c.gid,
        "context_type": "Course",
        "context_uuid": c.uuid,
        "created_on_blueprint_sync": rng.random() < 0.05,
        "description": a.description,
        "due_at": a.due_at,
        "lock_at": a.lock_at,
        "lti_assignment_id": a.lti_assignment_id,
        "lti_resource_link_id": a.lti_resource_link_id,
        "lti_resource_link_id_duplicated_from": None,
        "assignment_id_duplicated_from": None,
        "domain_duplicated_from": None,
        "domain": HOST,
        "points_possible": a.points,
        "submission_types": a.submission_types,
        "title": a.title,
        "unlock_at": a.unlock_at,
        "updated_at": ts[:19] + "Z",
        "workflow_state": "unpublished" if created and rng.random() < 0.5 else "published",
    }


def _assignment_meta(g: Sim, name: str, ts: str, c: Course, a: Assignment) -> Payload:
    tch = g.teacher(c)
    meta = request_meta(
        g,
        name,
        ts,
        tch,
        c,
        "TeacherEnrollment",
        "PUT",
        f"{BASE}/api/v1/courses/{c.local}/assignments/{a.local}",
        f"{BASE}/courses/{c.local}/assignments/{a.local}/edit",
    )
    meta["developer_key_id"] = None
    return meta


def assignment_updated(g: Sim, name: str, ts: str) -> Payload:
    """A teacher edits an assignment."""
    c = g.course()
    a = g.rng.choice(c.assignments)
    return {
        "metadata": _assignment_meta(g, name, ts, c, a),
        "body": _assignment_body(g, ts, c, a, created=False),
    }


def assignment_created(g: Sim, name: str, ts: str) -> Payload:
    """A teacher creates an assignment, often unpublished at first."""
    c = g.course()
    a = g.rng.choice(c.assignments)
    meta = _assignment_meta(g, name, ts, c, a)
    meta["http_method"] = "POST"
    return {"metadata": meta, "body": _assignment_body(g, ts, c, a, created=True)}


def quiz_submitted(g: Sim, name: str, ts: str) -> Payload:
    """A student turns in a classic quiz."""
    s, c, _ = g.actor(1.0)
    q = g.rng.choice(c.quizzes)
    url = f"{BASE}/courses/{c.local}/quizzes/{q.local}/submissions?user_id={s.local}"
    meta = request_meta(
        g,
        name,
        ts,
        s,
        c,
        "StudentEnrollment",
        "POST",
        url,
        f"{BASE}/courses/{c.local}/quizzes/{q.local}/take",
    )
    return {"metadata": meta, "body": {"quiz_id": q.gid, "submission_id": g.new_gid()}}


def submission_comment_created(g: Sim, name: str, ts: str) -> Payload:
    """Feedback on a submission, mostly from teachers; the body may be null."""
    rng = g.rng
    u, c, role = g.actor(0.3)
    a = rng.choice(c.assignments)
    n_att = rng.choice(t.COMMENT_ATTACHMENT_COUNTS)
    meta = request_meta(
        g,
        name,
        ts,
        u,
        c,
        role,
        "PUT",
        f"{BASE}/api/v1/courses/{c.local}/assignments/{a.local}/submissions/{g.student(c).local}",
        None,
    )
    return {
        "metadata": meta,
        "body": {
            "attachment_ids": [g.new_gid() for _ in range(n_att)],
            "body": rng.choice(t.COMMENTS),
            "created_at": ts[:19] + "Z",
            "submission_comment_id": g.new_gid(),
            "submission_id": g.new_gid(),
            "user_id": u.gid,
        },
    }


def _user_body(ts: str, u: User, state: str) -> Payload:
    return {
        "created_at": u.created_at,
        "name": u.name,
        "short_name": u.short_name,
        "updated_at": ts,
        "user_id": u.gid,
        "user_login": u.login,
        "user_sis_id": u.sis_id,
        "uuid": u.uuid,
        "workflow_state": state,
    }


def user_updated(g: Sim, name: str, ts: str) -> Payload:
    """Someone edits their profile."""
    u, c, role = g.actor()
    meta = request_meta(
        g, name, ts, u, c, role, "PUT", f"{BASE}/api/v1/users/{u.local}", f"{BASE}/profile/settings"
    )
    return {"metadata": meta, "body": _user_body(ts, u, "registered")}


def user_created(g: Sim, name: str, ts: str) -> Payload:
    """An admin creates a user through the API (so a developer key is set)."""
    u, c, _ = g.actor()
    admin = g.teacher(c)
    meta = request_meta(
        g, name, ts, admin, c, "TeacherEnrollment", "POST", f"{BASE}/api/v1/accounts/1/users", None
    )
    meta["developer_key_id"] = gid(7)
    body = _user_body(ts, u, "pre_registered")
    body["user_id"] = g.new_gid()
    body["created_at"] = ts[:19] + "Z"
    return {"metadata": meta, "body": body}


def _course_body(g: Sim, ts: str, c: Course) -> Payload:
    return {
        "account_id": c.account,
        "course_id": c.gid,
        "created_at": c.created_at,
        "name": c.name,
        "updated_at": ts,
        "uuid": c.uuid,
        "workflow_state": g.rng.choice(t.COURSE_WORKFLOW_STATES),
    }


def course_updated(g: Sim, name: str, ts: str) -> Payload:
    """A course changes, from an SIS import or its settings page."""
    c = g.course()
    if g.rng.random() < 0.6:
        meta = system_meta(g, name, ts, SIS_IMPORT)
    else:
        meta = request_meta(
            g,
            name,
            ts,
            g.teacher(c),
            c,
            "TeacherEnrollment",
            "PUT",
            f"{BASE}/courses/{c.local}",
            f"{BASE}/courses/{c.local}/settings",
        )
    return {"metadata": meta, "body": _course_body(g, ts, c)}


def course_created(g: Sim, name: str, ts: str) -> Payload:
    """An SIS import creates a course."""
    c = g.course()
    meta = system_meta(g, name, ts, SIS_IMPORT)
    body = _course_body(g, ts, c)
    body["course_id"] = g.new_gid()
    body["created_at"] = ts
    body["workflow_state"] = "claimed"
    return {"metadata": meta, "body": body}


def discussion_topic_created(g: Sim, name: str, ts: str) -> Payload:
    """A teacher starts a discussion or posts an announcement."""
    rng = g.rng
    c = g.course()
    tp = rng.choice(c.topics)
    announce = rng.random() < 0.35
    meta = request_meta(
        g,
        name,
        ts,
        g.teacher(c),
        c,
        "TeacherEnrollment",
        "POST",
        f"{BASE}/api/v1/courses/{c.local}/discussion_topics",
        f"{BASE}/courses/{c.local}/discussion_topics/new",
    )
    return {
        "metadata": meta,
        "body": {
            "assignment_id": None if rng.random() < 0.8 else rng.choice(c.assignments).gid,
            "body": tp.extra,
            "context_id": c.gid,
            "context_type": "Course",
            "discussion_topic_id": g.new_gid(),
            "is_announcement": announce,
            "lock_at": None,
            "title": tp.name,
            "updated_at": ts,
            "workflow_state": "active",
        },
    }


def conversation_created(g: Sim, name: str, ts: str) -> Payload:
    """An Inbox message; Canvas sends only ids, never the text."""
    u, _, _ = g.actor()
    meta = request_meta(
        g, name, ts, u, None, None, "POST", f"{BASE}/api/v1/conversations", f"{BASE}/conversations"
    )
    return {"metadata": meta, "body": {"conversation_id": g.new_gid(), "updated_at": ts[:19] + "Z"}}
