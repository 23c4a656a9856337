"""The state one event stream draws from, and the draws both event formats share.

Canvas raw and Caliper builders describe the same happenings (a submission, a page
view), so picking the actor, course, asset or grade lives here once. Every draw goes
through ``Sim.rng`` in a fixed order: changing the order changes the output for a seed.
"""

from __future__ import annotations

import random
from bisect import bisect
from collections.abc import Callable
from typing import Any

from ledbelly.simulate import tables as t
from ledbelly.simulate.world import (
    BASE,
    START_MS,
    Assignment,
    Clock,
    Course,
    Item,
    User,
    gid,
    pools,
)

__all__ = ["Asset", "Builder", "Payload", "Sim"]

Payload = dict[str, Any]

# (asset_type, gid, name, subtype, category, url path, level, context type, context id)
Asset = tuple[str, str, str, str | None, str, str, str | None, str, str]


class Sim:
    """Holds RNG, clock, time and id counter for one stream; builders take it first."""

    __slots__ = ("clock", "next_local", "now", "pools", "rng")

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.pools = pools(seed)
        self.clock = Clock()
        self.now = START_MS
        self.next_local = 50_000_000

    def new_gid(self) -> str:
        """A fresh global id for something the event creates (submission, entry...)."""
        self.next_local += 1 + self.rng.randrange(7)
        return gid(self.next_local)

    def course(self) -> Course:
        """A course, busy ones more often."""
        p = self.pools
        return p.courses[bisect(p.course_cum, self.rng.random() * 0.999999)]

    def actor(self, student_share: float = 0.86) -> tuple[User, Course, str]:
        """Who acted, in which course, with which enrollment type."""
        rng = self.rng
        c = self.course()
        users = self.pools.users
        if rng.random() < student_share:
            return users[rng.choice(c.students)], c, "StudentEnrollment"
        role = "TaEnrollment" if rng.random() < 0.1 else "TeacherEnrollment"
        return users[rng.choice(c.teachers)], c, role

    def teacher(self, c: Course) -> User:
        """One of the course's teachers."""
        return self.pools.users[self.rng.choice(c.teachers)]

    def student(self, c: Course) -> User:
        """One of the course's students."""
        return self.pools.users[self.rng.choice(c.students)]

    def asset(self, c: Course) -> Asset:
        """What a page view points at: course tab, assignment, page, file, quiz, topic..."""
        rng = self.rng
        kind = t.ASSET_NAMES[bisect(t.ASSET_CUM, rng.random())]
        cl = c.local
        if kind == "assignment":
            a = rng.choice(c.assignments)
            level = "participate" if rng.random() < 0.1 else None
            return (
                kind,
                a.gid,
                a.title,
                None,
                "assignments",
                f"/courses/{cl}/assignments/{a.local}",
                level,
                "Course",
                c.gid,
            )
        if kind == "wiki_page":
            p = rng.choice(c.pages)
            return (
                kind,
                p.gid,
                p.name,
                None,
                "wiki",
                f"/courses/{cl}/pages/{p.extra}",
                None,
                "Course",
                c.gid,
            )
        if kind == "attachment":
            f = rng.choice(c.files)
            return (
                kind,
                f.gid,
                f.name,
                None,
                "files",
                f"/courses/{cl}/files/{f.local}/download?wrap=1",
                None,
                "Course",
                c.gid,
            )
        if kind == "quiz":
            q = rng.choice(c.quizzes)
            level = "participate" if rng.random() < 0.15 else None
            return (
                kind,
                q.gid,
                q.name,
                None,
                "quizzes",
                f"/courses/{cl}/quizzes/{q.local}",
                level,
                "Course",
                c.gid,
            )
        if kind == "discussion_topic":
            tp = rng.choice(c.topics)
            level = "participate" if rng.random() < 0.05 else None
            return (
                kind,
                tp.gid,
                tp.name,
                None,
                "topics",
                f"/courses/{cl}/discussion_topics/{tp.local}",
                level,
                "Course",
                c.gid,
            )
        if kind == "group" and c.groups:
            g = rng.choice(c.groups)
            sub = rng.choice(t.GROUP_SUBTYPES)
            path = f"/groups/{g.local}" if sub == "home" else f"/groups/{g.local}/{sub}"
            return (kind, g.gid, g.name, sub, sub, path, None, "Group", g.gid)
        if kind == "external_tool":
            tool = rng.randrange(len(t.TOOLS))
            return (
                "context_external_tool",
                gid(900 + tool),
                t.TOOLS[tool],
                None,
                "external_tools",
                f"/courses/{cl}/external_tools/{900 + tool}",
                None,
                "Course",
                c.gid,
            )
        sub, cat = rng.choice(t.COURSE_SUBTYPES)
        path = f"/courses/{cl}" if sub == "home" else f"/courses/{cl}/{sub}"
        return ("course", c.gid, c.name, sub, cat, path, None, "Course", c.gid)

    def referrer(self, c: Course) -> str | None:
        """The page a view came from, or none (bookmarks, apps)."""
        r = self.rng.random()
        if r < 0.15:
            return None
        if r < 0.6:
            return f"{BASE}/courses/{c.local}"
        if r < 0.8:
            return f"{BASE}/courses/{c.local}/modules"
        return f"{BASE}/"

    def submission_fields(
        self, ts: str, c: Course, a: Assignment, s: User, graded: bool
    ) -> Payload:
        """A submission in Canvas raw shape; Caliper builders pick fields from it."""
        rng = self.rng
        stype = a.submission_type
        body: str | None = None
        url: str | None = None
        if stype == "online_text_entry":
            body = (
                rng.choice(self.pools.long_html)
                if rng.random() < 0.2
                else rng.choice(self.pools.short_html)
            )
        elif stype == "online_url":
            url = f"https://sites.example.org/{s.login.split('@')[0]}/{a.local}"
        elif stype == "online_quiz":
            body = f"user: {s.local}, quiz: {a.local}, score: {rng.randint(0, int(a.points))}.0"
        elif stype == "external_tool":
            url = f"https://tools.example.org/launch?assignment={a.local}"
        score: float | None = None
        grade: str | None = None
        graded_at: str | None = None
        if graded:
            score = round(rng.uniform(0.4, 1.0) * a.points, 1)
            pct = score * 100 / a.points
            if rng.random() < 0.6:
                grade = f"{score:g}"
            else:
                grade = next(g for lim, g in t.LETTER_GRADES if pct >= lim)
            graded_at = ts[:19] + "Z"
        return {
            "submission_id": self.new_gid(),
            "assignment_id": a.gid,
            "user_id": s.gid,
            "submitted_at": ts[:19] + "Z",
            "graded_at": graded_at,
            "updated_at": ts[:19] + "Z",
            "score": score,
            "grade": grade,
            "submission_type": stype,
            "body": body,
            "url": url,
            "attempt": rng.choice(t.ATTEMPTS),
            "late": rng.random() < 0.1,
            "missing": rng.random() < 0.03,
            "workflow_state": "graded" if graded else "submitted",
            "lti_user_id": s.lti_user_id,
            "lti_assignment_id": a.lti_assignment_id,
            "group_id": rng.choice(c.groups).gid if c.groups and rng.random() < 0.05 else None,
        }

    def grade(self, c: Course) -> tuple[Assignment, User, User, Payload]:
        """A grade change: assignment, student, grader and the Canvas raw body."""
        rng = self.rng
        a = rng.choice(c.assignments)
        s = self.student(c)
        tch = self.teacher(c)
        score = round(rng.uniform(0.3, 1.0) * a.points, 1)
        old_score: float | None = (
            None if rng.random() < 0.6 else round(rng.uniform(0.0, 1.0) * a.points, 1)
        )
        body: Payload = {
            "submission_id": self.new_gid(),
            "assignment_id": a.gid,
            "grade": f"{score:g}",
            "old_grade": None if old_score is None else f"{old_score:g}",
            "score": score,
            "old_score": old_score,
            "points_possible": a.points,
            "old_points_possible": a.points if old_score is not None else None,
            "grader_id": tch.gid,
            "student_id": s.gid,
            "student_sis_id": s.sis_id,
            "user_id": s.gid,
            "grading_complete": rng.random() < 0.95,
            "muted": rng.random() < 0.08,
        }
        return a, s, tch, body

    def entry_text(self) -> str:
        """A discussion reply: usually short, sometimes a long essay."""
        rng = self.rng
        if rng.random() < 0.05:
            return rng.choice(self.pools.long_html)
        return rng.choice(t.ENTRY_TEXTS)

    def page_body(self) -> str:
        """A wiki page body, long often enough to exercise wide text columns."""
        p = self.pools
        rng = self.rng
        if rng.random() < 0.4:
            return p.long_html[rng.randrange(len(p.long_html))]
        return rng.choice(p.short_html)

    def enrollment(self, ts: str, created: bool) -> tuple[Course, User, Payload]:
        """An enrollment change: course, enrolled user and the Canvas raw body."""
        rng = self.rng
        c = self.course()
        is_student = rng.random() < 0.85
        u = self.student(c) if is_student else self.teacher(c)
        etype = "StudentEnrollment" if is_student else rng.choice(t.STAFF_ENROLLMENT_TYPES)
        if created:
            state = rng.choice(t.ENROLLMENT_CREATED_STATES)
        else:
            state = rng.choice(t.ENROLLMENT_UPDATED_STATES)
        assoc = self.student(c).gid if etype == "ObserverEnrollment" else None
        body: Payload = {
            "associated_user_id": assoc,
            "course_id": c.gid,
            "course_section_id": rng.choice(c.sections),
            "created_at": ts[:19] + "Z" if created else c.created_at,
            "enrollment_id": self.new_gid(),
            "limit_privileges_to_course_section": rng.random() < 0.1,
            "type": etype,
            "updated_at": ts[:19] + "Z",
            "user_id": u.gid,
            "user_name": u.name,
            "workflow_state": state,
        }
        return c, u, body

    def file(self, c: Course) -> Item:
        """One of the course's files."""
        return self.rng.choice(c.files)


# A builder turns (state, event name, event time) into one event payload.
Builder = Callable[[Sim, str, str], Payload]
