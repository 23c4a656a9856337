"""The fictional district every synthetic event happens in: tenant, users and courses.

The district is built once per seed (:func:`pools`) from its own RNG, so events only
pick from ready-made tuples; that keeps generation fast and the event stream's random
draws independent of how the district was built.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote_plus

from ledbelly.simulate import tables as t

__all__ = [
    "BASE",
    "HOST",
    "LTI_GUID",
    "ROOT_ID",
    "ROOT_UUID",
    "SENSOR",
    "START_MS",
    "Assignment",
    "Clock",
    "Course",
    "Item",
    "Pools",
    "User",
    "gid",
    "pools",
    "uuid4",
]

HOST = t.HOST
BASE = f"https://{HOST}"
SENSOR = f"http://{HOST}/"
ROOT_ID = str(t.SHARD + 1)
ROOT_UUID = t.ROOT_UUID
LTI_GUID = t.LTI_GUID
START_MS = t.START_MS

_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_DAY_MS = 86_400_000


def gid(local: int) -> str:
    """Render a Canvas global id string, the form Live Events use for every id."""
    return str(t.SHARD + local)


def iso_s(ms: int) -> str:
    """Second-precision UTC timestamp, as Canvas writes most body timestamps."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))


def uuid4(rng: random.Random) -> str:
    """Version-4 UUID from the seeded RNG; uuid.uuid4() would break determinism."""
    n = rng.getrandbits(128)
    n = (n & ~(0xF000 << 64)) | (4 << 76)
    n = (n & ~(0xC000 << 48)) | (0x8000 << 48)
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Clock:
    """Formats millisecond timestamps, caching the per-second prefix (strftime is slow)."""

    __slots__ = ("_prefix", "_sec")

    def __init__(self) -> None:
        self._sec = -1
        self._prefix = ""

    def iso_ms(self, ms: int) -> str:
        """Millisecond-precision UTC timestamp, the form of Live Events ``event_time``."""
        sec, milli = divmod(ms, 1000)
        if sec != self._sec:
            self._sec = sec
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        return f"{self._prefix}.{milli:03d}Z"


@dataclass(frozen=True, slots=True)
class User:
    """A student or staff member, with the request details their events carry."""

    gid: str
    local: int
    name: str
    short_name: str
    login: str
    sis_id: str | None
    uuid: str
    lti_user_id: str | None
    time_zone: str
    user_agent: str
    client_ip: str
    session_id: str
    created_at: str


@dataclass(frozen=True, slots=True)
class Assignment:
    """An assignment; its fields feed assignment, submission and grade events alike."""

    gid: str
    local: int
    title: str
    points: float
    submission_types: str
    submission_type: str
    description: str
    group_gid: str
    lti_assignment_id: str
    lti_resource_link_id: str
    created_at: str
    unlock_at: str | None
    due_at: str | None
    lock_at: str | None


@dataclass(frozen=True, slots=True)
class Item:
    """A quiz, wiki page, discussion topic, file or group: id, url-local id and name."""

    gid: str
    local: int
    name: str
    extra: str  # page slug, file content type, quiz assignment gid, topic body
    extra2: str  # file name on disk / folder id, page body key


@dataclass(frozen=True, slots=True)
class Course:
    """A course with its roster and content, so events in it refer to each other."""

    gid: str
    local: int
    name: str
    sis: str | None
    account: str
    uuid: str
    created_at: str
    sections: tuple[str, ...]
    students: tuple[int, ...]
    teachers: tuple[int, ...]
    assignments: tuple[Assignment, ...]
    quizzes: tuple[Item, ...]
    pages: tuple[Item, ...]
    topics: tuple[Item, ...]
    files: tuple[Item, ...]
    groups: tuple[Item, ...]
    folder: str


@dataclass(frozen=True, slots=True)
class Pools:
    """The whole district; ``course_cum`` skews traffic towards busy courses."""

    users: tuple[User, ...]
    courses: tuple[Course, ...]
    course_cum: tuple[float, ...]
    short_html: tuple[str, ...]
    long_html: tuple[str, ...]


def _rand_str(rng: random.Random, k: int, alphabet: str = _ALNUM) -> str:
    return "".join(rng.choices(alphabet, k=k))


def _html(rng: random.Random, paragraphs: int) -> str:
    """Course-page HTML of a given length: wide columns are what exercise the sinks."""
    parts = [f"<h2>{rng.choice(t.TOPICS)}</h2>"]
    for i in range(paragraphs):
        p = rng.choice(t.PARAGRAPHS)
        if i % 4:
            parts.append(f"<p>{p}</p>")
        else:
            parts.append(f"<ul><li>{p}</li><li>{rng.choice(t.TOPICS)}</li></ul>")
    return "".join(parts)


def _users(rng: random.Random, past: int) -> list[User]:
    """1,500 people; every twelfth is staff (login by email, ``T`` SIS id)."""
    tz_names = [name for name, _ in t.TIME_ZONES]
    tz_weights = [w for _, w in t.TIME_ZONES]
    users: list[User] = []
    for i in range(1500):
        local = 1001 + i * 3 + rng.randrange(3)
        r = rng.random()
        if r < 0.06:
            name, short, slug = rng.choice(t.CJK_NAMES)
        else:
            (first, fslug), (last, lslug) = rng.choice(t.FIRST_NAMES), rng.choice(t.LAST_NAMES)
            name, short, slug = f"{first} {last}", first, f"{fslug[0]}{lslug}"
            if r > 0.97:
                short = f"{first} {rng.choice(t.EMOJI)}"
        is_staff = i % 12 == 0
        sis: str | None
        if rng.random() < 0.05:
            sis = None
        elif is_staff:
            sis = f"T{rng.randint(10000, 99999)}"
        else:
            sis = f"S{rng.randint(1000000, 9999999)}"
        login = f"{slug}{local % 1000}@{HOST}" if is_staff else f"{slug}{local}"
        ip = (
            f"2001:db8:{rng.randrange(65536):x}::{rng.randrange(65536):x}"
            if rng.random() < 0.1
            else f"{rng.choice(t.IP_PREFIXES)}.{rng.randint(1, 254)}"
        )
        users.append(
            User(
                gid=gid(local),
                local=local,
                name=name,
                short_name=short,
                login=login,
                sis_id=sis,
                uuid=_rand_str(rng, 40),
                lti_user_id=None if rng.random() < 0.1 else f"{rng.getrandbits(160):040x}",
                time_zone=rng.choices(tz_names, tz_weights)[0],
                user_agent=rng.choice(t.USER_AGENTS),
                client_ip=ip,
                session_id=f"{rng.getrandbits(128):032x}",
                created_at=iso_s(past - rng.randrange(900 * _DAY_MS)),
            )
        )
    return users


class _Locals:
    """Hands out increasing local ids with random gaps, as a busy Canvas shard does."""

    __slots__ = ("_next", "_rng")

    def __init__(self, rng: random.Random, start: int) -> None:
        self._rng = rng
        self._next = start

    def __call__(self) -> int:
        self._next += self._rng.randint(1, 40)
        return self._next


def _assignments(
    rng: random.Random, new_local: _Locals, created: str, short_html: tuple[str, ...]
) -> list[Assignment]:
    """One course's assignments, spread from three weeks before to two months after start."""
    agroups = [gid(new_local()) for _ in range(rng.randint(2, 4))]
    assignments: list[Assignment] = []
    for _ in range(rng.randint(8, 20)):
        alocal = new_local()
        n = rng.randint(1, 12)
        title = rng.choice(t.ASSIGNMENT_TEMPLATES).format(n=n, t=rng.choice(t.TOPICS))
        stype = rng.choice(t.SUBMISSION_TYPES)
        types = stype if rng.random() < 0.6 else f"{stype},online_upload"
        due_ms = START_MS + rng.randrange(-20, 60) * _DAY_MS + 6 * 3_600_000
        assignments.append(
            Assignment(
                gid=gid(alocal),
                local=alocal,
                title=title,
                points=float(rng.choice(t.POINTS_POSSIBLE)),
                submission_types=types,
                submission_type=stype,
                description=rng.choice(short_html) if rng.random() < 0.9 else "",
                group_gid=rng.choice(agroups),
                lti_assignment_id=uuid4(rng),
                lti_resource_link_id=f"{rng.getrandbits(160):040x}",
                created_at=created,
                unlock_at=None if rng.random() < 0.5 else iso_s(due_ms - 7 * _DAY_MS),
                due_at=None if rng.random() < 0.1 else iso_s(due_ms),
                lock_at=None if rng.random() < 0.6 else iso_s(due_ms + _DAY_MS),
            )
        )
    return assignments


def _course(
    rng: random.Random,
    ci: int,
    past: int,
    new_local: _Locals,
    short_html: tuple[str, ...],
    accounts: tuple[str, ...],
    students: list[int],
    staff: list[int],
) -> Course:
    """One course and everything in it, drawn in a fixed order (the output depends on it)."""
    clocal = 2000 + ci * 7 + rng.randrange(7)
    subject = rng.choice(t.SUBJECTS)
    period = rng.randint(1, 7)
    name = f"{subject} \u2013 Period {period}" if rng.random() < 0.7 else f"{subject} (2026-27)"
    school = rng.randint(100, 999)
    sis = None if rng.random() < 0.1 else f"2026.{school}.{clocal}.{period}-1"
    created = iso_s(past + rng.randrange(60 * _DAY_MS))
    assignments = _assignments(rng, new_local, created, short_html)
    quizzes = tuple(
        Item(
            gid(q := new_local()),
            q,
            f"Quiz {k + 1}: {rng.choice(t.TOPICS)}",
            rng.choice(assignments).gid,
            "",
        )
        for k in range(rng.randint(2, 5))
    )
    pages = []
    for k in range(rng.randint(3, 8)):
        plocal = new_local()
        title = rng.choice(t.PAGE_TITLES).format(n=k + 1)
        slug = quote_plus(title.lower().replace(" ", "-"))
        pages.append(Item(gid(plocal), plocal, title, slug, ""))
    topics = tuple(
        Item(
            gid(tl := new_local()),
            tl,
            f"Week {k + 1}: {rng.choice(t.TOPICS)}",
            rng.choice(short_html),
            "",
        )
        for k in range(rng.randint(2, 5))
    )
    folder = gid(new_local())
    files = []
    for k in range(rng.randint(3, 10)):
        flocal = new_local()
        tmpl, ctype = rng.choice(t.FILE_TEMPLATES)
        display = tmpl.format(n=k + 1)
        files.append(Item(gid(flocal), flocal, display, ctype, quote_plus(display)))
    groups = tuple(
        Item(gid(g := new_local()), g, rng.choice(t.GROUP_NAMES).format(n=k + 1), "", "")
        for k in range(rng.randint(0, 4))
    )
    return Course(
        gid=gid(clocal),
        local=clocal,
        name=name,
        sis=sis,
        account=rng.choice(accounts),
        uuid=_rand_str(rng, 40),
        created_at=created,
        sections=tuple(gid(new_local()) for _ in range(rng.randint(1, 3))),
        students=tuple(rng.sample(students, rng.randint(12, 35))),
        teachers=tuple(rng.sample(staff, rng.randint(1, 2))),
        assignments=tuple(assignments),
        quizzes=quizzes,
        pages=tuple(pages),
        topics=topics,
        files=tuple(files),
        groups=groups,
        folder=folder,
    )


@lru_cache(maxsize=4)
def pools(seed: int) -> Pools:
    """Build the fictional district once per seed; events only pick from it (speed)."""
    rng = random.Random(f"ledbelly-pools:{seed}")
    past = START_MS - 120 * _DAY_MS
    users = _users(rng, past)
    staff = [i for i in range(len(users)) if i % 12 == 0]
    students = [i for i in range(len(users)) if i % 12]
    new_local = _Locals(rng, 100_000)
    short_html = tuple(_html(rng, rng.randint(1, 3)) for _ in range(40))
    long_html = tuple(_html(rng, rng.randint(8, 40)) for _ in range(24))
    accounts = tuple(gid(10 + k) for k in range(12))
    courses = [
        _course(rng, ci, past, new_local, short_html, accounts, students, staff)
        for ci in range(120)
    ]
    # Busy courses get more traffic than quiet ones.
    cum: list[float] = []
    total = 0.0
    for _ in courses:
        total += rng.paretovariate(1.5)
        cum.append(total)
    return Pools(
        users=tuple(users),
        courses=tuple(courses),
        course_cum=tuple(c / total for c in cum),
        short_html=short_html,
        long_html=long_html,
    )
