"""Synthetic Canvas Live Events for demos, tests and benchmarks.

Real Live Events contain student data, so ledbelly cannot ship recorded traffic. This
module fabricates events shaped like Instructure's documented examples (Canvas raw and
IMS Caliper 1.1) for a fictional district at ``lms.example.edu``. Output depends only
on ``(n, seed, fmt)`` so tests are reproducible, and generation streams fast enough
(well above 20k messages/second) that benchmarks measure ledbelly rather than this file.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import random
import time
from bisect import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import quote_plus

try:
    import orjson

    def _dumps(obj: Any) -> bytes:
        """Serialise compactly to UTF-8; orjson is ~10x faster than json (benchmarks)."""
        return orjson.dumps(obj)

except ImportError:  # pragma: no cover - orjson is a hard dependency, keep a fallback anyway
    import json

    def _dumps(obj: Any) -> bytes:
        """Serialise compactly with the standard library when orjson is missing."""
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


__all__ = ["CALIPER_WEIGHTS", "EVENT_WEIGHTS", "generate_events", "generate_messages"]

Payload = dict[str, Any]

# Relative frequencies, roughly what a K-12 district sees: page views dominate.
EVENT_WEIGHTS: dict[str, float] = {
    "asset_accessed": 60.0,
    "logged_in": 8.0,
    "submission_created": 4.5,
    "submission_updated": 4.0,
    "grade_change": 3.5,
    "discussion_entry_created": 2.4,
    "wiki_page_updated": 1.8,
    "enrollment_updated": 1.6,
    "attachment_created": 1.5,
    "assignment_updated": 1.4,
    "quiz_submitted": 1.3,
    "logged_out": 1.2,
    "submission_comment_created": 1.0,
    "user_updated": 0.9,
    "enrollment_created": 0.9,
    "course_updated": 0.8,
    "enrollment_state_updated": 0.8,
    "assignment_created": 0.7,
    "wiki_page_created": 0.6,
    "discussion_topic_created": 0.6,
    "attachment_updated": 0.4,
    "conversation_created": 0.4,
    "user_created": 0.3,
    "course_created": 0.3,
}

# Only events Canvas documents in its Caliper format.
CALIPER_WEIGHTS: dict[str, float] = {
    "asset_accessed": 60.0,
    "logged_in": 8.5,
    "logged_out": 2.0,
    "submission_created": 5.0,
    "submission_updated": 4.5,
    "grade_change": 4.0,
    "discussion_entry_created": 3.0,
    "assignment_updated": 2.0,
    "attachment_created": 2.0,
    "wiki_page_updated": 2.0,
    "enrollment_created": 1.5,
    "enrollment_updated": 1.5,
    "quiz_submitted": 1.5,
    "assignment_created": 1.0,
    "wiki_page_created": 1.0,
    "discussion_topic_created": 0.5,
}

_FORMATS = ("canvas", "caliper", "mixed")
_MIXED_CANVAS_SHARE = 0.7

# --- fictional tenant -------------------------------------------------------------------

_HOST = "lms.example.edu"
_BASE = f"https://{_HOST}"
_SENSOR = f"http://{_HOST}/"
_SHARD = 2107 * 10**13  # Canvas global id = shard * 10**13 + local id
_ROOT_ID = str(_SHARD + 1)
_ROOT_UUID = "Lm8pQe2RzT4vWx9YbNc3Kd7Fg1Hj5Ks6Ua0Vo2Xi"
_LTI_GUID = f"5e0c1a7b93d24f68a1c0e2b4d6f8091a3c5e7b9d.{_HOST}"
_CALIPER_CTX = "http://purl.imsglobal.org/ctx/caliper/v1p1"
_URN = "urn:instructure:canvas:"
_START_MS = calendar.timegm((2026, 9, 1, 13, 0, 0, 0, 0, 0)) * 1000

_CALIPER_ROLE = {
    "StudentEnrollment": "Learner",
    "TeacherEnrollment": "Instructor",
    "TaEnrollment": "TeachingAssistant",
}

_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _gid(local: int) -> str:
    """Render a Canvas global id string, the form Live Events use for every id."""
    return str(_SHARD + local)


def _iso_s(ms: int) -> str:
    """Second-precision UTC timestamp, as Canvas writes most body timestamps."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))


def _uuid4(rng: random.Random) -> str:
    """Version-4 UUID from the seeded RNG; uuid.uuid4() would break determinism."""
    n = rng.getrandbits(128)
    n = (n & ~(0xF000 << 64)) | (4 << 76)
    n = (n & ~(0xC000 << 48)) | (0x8000 << 48)
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class _Clock:
    """Formats millisecond timestamps, caching the per-second prefix (strftime is slow)."""

    __slots__ = ("_prefix", "_sec")

    def __init__(self) -> None:
        self._sec = -1
        self._prefix = ""

    def iso_ms(self, ms: int) -> str:
        sec, milli = divmod(ms, 1000)
        if sec != self._sec:
            self._sec = sec
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        return f"{self._prefix}.{milli:03d}Z"


# --- name material (invented, with deliberate unicode variety) --------------------------

_FIRST = (
    ("Sofía", "sofia"), ("Mateo", "mateo"), ("Zoë", "zoe"), ("Chloé", "chloe"),
    ("Jürgen", "jurgen"), ("Søren", "soren"), ("Łukasz", "lukasz"), ("Ama", "ama"),
    ("Kwame", "kwame"), ("Priya", "priya"), ("Arjun", "arjun"), ("Mei", "mei"),
    ("Hiroshi", "hiroshi"), ("Yuna", "yuna"), ("Dmitri", "dmitri"), ("Olga", "olga"),
    ("Liam", "liam"), ("Noah", "noah"), ("Emma", "emma"), ("Olivia", "olivia"),
    ("Fatima", "fatima"), ("Omar", "omar"), ("Tomás", "tomas"), ("Inés", "ines"),
    ("François", "francois"), ("Björn", "bjorn"), ("Siobhán", "siobhan"),
    ("Aroha", "aroha"), ("Ngọc", "ngoc"), ("Jayden", "jayden"), ("Aaliyah", "aaliyah"),
    ("Elijah", "elijah"), ("Camila", "camila"), ("Leilani", "leilani"), ("Ximena", "ximena"),
)
_LAST = (
    ("García", "garcia"), ("Müller", "muller"), ("O'Brien", "obrien"), ("Nguyễn", "nguyen"),
    ("Kowalski", "kowalski"), ("Østergaard", "ostergaard"), ("Hernández", "hernandez"),
    ("Smith", "smith"), ("Johnson", "johnson"), ("Okafor", "okafor"), ("Patel", "patel"),
    ("Kim", "kim"), ("Tanaka", "tanaka"), ("Ivanova", "ivanova"), ("Dubois", "dubois"),
    ("Rossi", "rossi"), ("Fernández", "fernandez"), ("Martínez", "martinez"),
    ("Núñez", "nunez"), ("Schäfer", "schafer"), ("Zhang", "zhang"), ("Kealoha", "kealoha"),
    ("Brooks", "brooks"), ("Ramírez", "ramirez"), ("Van der Berg", "vanderberg"),
)
_CJK_NAMES = (
    ("王小明", "小明", "wangxm"), ("李华", "华", "lihua"), ("田中 さくら", "さくら", "tanakas"),
    ("김민준", "민준", "kimmj"), ("陈静", "静", "chenj"), ("佐藤 健", "健", "satok"),
)
_EMOJI = ("🌻", "🚀", "⚽", "🎨", "🦊", "🎸", "📚")
_TIME_ZONES = (
    ("America/Los_Angeles", 80), ("America/Denver", 6), ("America/New_York", 6),
    ("Pacific/Honolulu", 3), ("America/Mexico_City", 2), ("Europe/Madrid", 2),
    ("Asia/Tokyo", 1),
)
_USER_AGENTS = (
    "Mozilla/5.0 (X11; CrOS x86_64 15917.71.0) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.6367.95 Safari/537.36",
    "Mozilla/5.0 (X11; CrOS aarch64 15886.44.0) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/123.0.6312.112 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.67",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4_1) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4.1 Safari/605.1.15",
    "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "candroid/7.9.0 (Android 14; Pixel 7a)",
    "iCanvas/7.11.0 (iOS 17.4.1; iPhone15,4)",
)
_SUBJECTS = (
    "Biología", "Español III", "Français 2", "日本語 I", "中文 (Mandarin) 1", "AP Calculus BC",
    "Algebra 1", "Geometry", "World History", "Chemistry Honors", "Physics 🧪 Lab",
    "English 10", "Art & Design", "Computer Science Principles", "Música — Coro", "Health",
    "Economics", "Deutsch 1", "US Government", "Earth Science", "Statistics", "Ceramics",
)
_TOPICS = (
    "Photosynthesis", "Les Misérables", "Función cuadrática", "Newton's Laws",
    "La Révolution française", "百人一首", "Cell Division", "The Great Gatsby",
    "Plate Tectonics", "Pythagorean Theorem", "Ökosysteme", "Supply & Demand",
    "El Niño", "Haiku 🌸", "Mitosis vs. Meiosis", "Ohm's Law",
)
_ASSIGNMENT_TEMPLATES = (
    "Unit {n} Quiz", "Lab Report: {t}", "Essay — {t}", "Homework {n}",
    "Reading Response: {t}", "Project 🎨 {t}", "Exit Ticket {n}", "第{n}課 練習",
    "Tarea {n}: {t}", "Final Review {n}",
)
_PAGE_TITLES = (
    "Syllabus & Expectations", "Unit {n} Overview", "Semana {n}: Resumen", "Class Resources",
    "Lab Safety Rules", "Études — Week {n}", "読書リスト {n}", "Study Guide ✏️ {n}",
)
_FILE_TEMPLATES = (
    ("Worksheet {n}.pdf", "application/pdf"),
    ("notes_ch{n}.docx",
     "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("Présentation {n}.pptx",
     "application/vnd.openxmlformats-officedocument.presentationml.presentation"),
    ("lab-data ({n}).csv", "text/csv"),
    ("写真 {n}.jpg", "image/jpeg"),
    ("rubric 📋 {n}.pdf", "application/pdf"),
    ("Screen Recording {n}.mp4", "video/mp4"),
)
_GROUP_NAMES = ("Lab Group {n}", "Équipe {n}", "Team 🦊 {n}", "Study Circle {n}", "班 {n}")
_TOOLS = ("Video Library", "Math Practice (LTI 1.3)", "Digital Textbook", "Plagiarism Review")
_PARAGRAPHS = (
    "Read the chapter carefully and take notes on the key vocabulary before class. "
    "We will use your notes during Thursday's Socratic seminar, so bring questions!",
    "Lee el capítulo con atención y anota el vocabulario clave. Mañana trabajaremos en "
    "grupos pequeños para comparar las respuestas — ¡no olvides tu cuaderno!",
    "Rappel : le devoir doit être rendu avant vendredi à 23 h 59. Les travaux en retard "
    "perdront 10 % par jour, sauf accord préalable avec l'enseignant.",
    # Non-ASCII punctuation below is deliberate: it is what real course content contains.
    "本单元我们将学习生态系统中的能量流动。请在周五之前完成第三章的阅读，并准备好讨论问题。",  # noqa: RUF001
    "今週の課題：教科書の二十五ページから三十ページまでを読んで、要点を三つまとめてください。",  # noqa: RUF001
    "Lab safety reminder 🔬: goggles on at all times, long hair tied back, and no food or "
    "drinks near the benches. Report any spills to the teacher immediately.",
    "Grading rubric: thesis (4 pts), evidence (4 pts), analysis (4 pts), conventions "
    "(3 pts). Use at least two primary sources and cite them in MLA format.",
    "Die Hausaufgaben für diese Woche: Übungen 4–9 auf Seite 112. Bitte zeigt euren "  # noqa: RUF001
    "Rechenweg, sonst gibt es nur Teilpunkte.",
    "Office hours are Tuesdays and Thursdays after school in room 214. You can also "
    "message me through the Inbox — I usually reply within one school day. 😊",
)
_ENTRY_TEXTS = (
    "<p>I agree with Zoë — the data shows a clear trend 📈 after week three.</p>",
    "<p>¿Alguien entendió la pregunta 3? No sé cómo empezar.</p>",
    "<p>我觉得第二个答案更好，因为它解释了原因。</p>",  # noqa: RUF001
    "<p>Great point! 👍</p>",
    "<p>I think the author uses the storm as a symbol for the family's conflict.</p>",
    "<p>Can we use a calculator on the quiz tomorrow?</p>",
    "<p>Mon groupe a trouvé que la réponse est <strong>42</strong>.</p>",
    "<p>Here is my lab hypothesis: if light intensity increases, then the rate of "
    "photosynthesis increases until the enzymes are saturated.</p>",
)
_COMMENTS = (
    "Nice work — see my notes on paragraph 2.", "Please resubmit with your sources cited.",
    "¡Excelente trabajo!", "Great improvement since the last draft 🎉",
    "Check question 4 again.", "I attached the rubric with feedback.",
    "よくできました。", None,
)


@dataclass(frozen=True, slots=True)
class _User:
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
class _Assignment:
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
class _Item:
    """A quiz, wiki page, discussion topic, file or group: id, url-local id and name."""

    gid: str
    local: int
    name: str
    extra: str  # page slug, file content type, quiz assignment gid, topic body
    extra2: str  # file name on disk / folder id, page body key


@dataclass(frozen=True, slots=True)
class _Course:
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
    assignments: tuple[_Assignment, ...]
    quizzes: tuple[_Item, ...]
    pages: tuple[_Item, ...]
    topics: tuple[_Item, ...]
    files: tuple[_Item, ...]
    groups: tuple[_Item, ...]
    folder: str


@dataclass(frozen=True, slots=True)
class _Pools:
    users: tuple[_User, ...]
    courses: tuple[_Course, ...]
    course_cum: tuple[float, ...]
    short_html: tuple[str, ...]
    long_html: tuple[str, ...]


def _rand_str(rng: random.Random, k: int, alphabet: str = _ALNUM) -> str:
    return "".join(rng.choices(alphabet, k=k))


def _html(rng: random.Random, paragraphs: int) -> str:
    parts = [f"<h2>{rng.choice(_TOPICS)}</h2>"]
    for i in range(paragraphs):
        p = rng.choice(_PARAGRAPHS)
        if i % 4:
            parts.append(f"<p>{p}</p>")
        else:
            parts.append(f"<ul><li>{p}</li><li>{rng.choice(_TOPICS)}</li></ul>")
    return "".join(parts)


@lru_cache(maxsize=4)
def _pools(seed: int) -> _Pools:
    """Build the fictional district once per seed; events only pick from it (speed)."""
    rng = random.Random(f"ledbelly-pools:{seed}")
    past = _START_MS - 120 * 86_400_000
    tz_names = [t for t, _ in _TIME_ZONES]
    tz_weights = [w for _, w in _TIME_ZONES]

    users: list[_User] = []
    for i in range(1500):
        local = 1001 + i * 3 + rng.randrange(3)
        r = rng.random()
        if r < 0.06:
            name, short, slug = rng.choice(_CJK_NAMES)
        else:
            (first, fslug), (last, lslug) = rng.choice(_FIRST), rng.choice(_LAST)
            name, short, slug = f"{first} {last}", first, f"{fslug[0]}{lslug}"
            if r > 0.97:
                short = f"{first} {rng.choice(_EMOJI)}"
        is_staff = i % 12 == 0
        sis: str | None
        if rng.random() < 0.05:
            sis = None
        elif is_staff:
            sis = f"T{rng.randint(10000, 99999)}"
        else:
            sis = f"S{rng.randint(1000000, 9999999)}"
        login = f"{slug}{local % 1000}@{_HOST}" if is_staff else f"{slug}{local}"
        ip = (
            f"2001:db8:{rng.randrange(65536):x}::{rng.randrange(65536):x}"
            if rng.random() < 0.1
            else f"{rng.choice(('192.0.2', '198.51.100', '203.0.113'))}.{rng.randint(1, 254)}"
        )
        users.append(
            _User(
                gid=_gid(local),
                local=local,
                name=name,
                short_name=short,
                login=login,
                sis_id=sis,
                uuid=_rand_str(rng, 40),
                lti_user_id=None if rng.random() < 0.1 else f"{rng.getrandbits(160):040x}",
                time_zone=rng.choices(tz_names, tz_weights)[0],
                user_agent=rng.choice(_USER_AGENTS),
                client_ip=ip,
                session_id=f"{rng.getrandbits(128):032x}",
                created_at=_iso_s(past - rng.randrange(900 * 86_400_000)),
            )
        )
    staff = [i for i in range(len(users)) if i % 12 == 0]
    students = [i for i in range(len(users)) if i % 12]

    next_local = 100_000

    def new_local() -> int:
        nonlocal next_local
        next_local += rng.randint(1, 40)
        return next_local

    short_html = tuple(_html(rng, rng.randint(1, 3)) for _ in range(40))
    long_html = tuple(_html(rng, rng.randint(8, 40)) for _ in range(24))
    accounts = tuple(_gid(10 + k) for k in range(12))

    courses: list[_Course] = []
    for ci in range(120):
        clocal = 2000 + ci * 7 + rng.randrange(7)
        subject = rng.choice(_SUBJECTS)
        period = rng.randint(1, 7)
        name = (
            f"{subject} \u2013 Period {period}" if rng.random() < 0.7 else f"{subject} (2026-27)"
        )
        school = rng.randint(100, 999)
        sis = None if rng.random() < 0.1 else f"2026.{school}.{clocal}.{period}-1"
        created = _iso_s(past + rng.randrange(60 * 86_400_000))
        agroups = [_gid(new_local()) for _ in range(rng.randint(2, 4))]
        assignments: list[_Assignment] = []
        for _ in range(rng.randint(8, 20)):
            alocal = new_local()
            n = rng.randint(1, 12)
            title = rng.choice(_ASSIGNMENT_TEMPLATES).format(n=n, t=rng.choice(_TOPICS))
            stype = rng.choice(
                ("online_text_entry", "online_upload", "online_upload", "online_quiz",
                 "online_url", "external_tool", "discussion_topic", "media_recording")
            )
            types = stype if rng.random() < 0.6 else f"{stype},online_upload"
            due_ms = _START_MS + rng.randrange(-20, 60) * 86_400_000 + 6 * 3_600_000
            assignments.append(
                _Assignment(
                    gid=_gid(alocal),
                    local=alocal,
                    title=title,
                    points=float(rng.choice((1, 5, 10, 10, 20, 25, 50, 100, 100))),
                    submission_types=types,
                    submission_type=stype,
                    description=rng.choice(short_html) if rng.random() < 0.9 else "",
                    group_gid=rng.choice(agroups),
                    lti_assignment_id=_uuid4(rng),
                    lti_resource_link_id=f"{rng.getrandbits(160):040x}",
                    created_at=created,
                    unlock_at=None if rng.random() < 0.5 else _iso_s(due_ms - 7 * 86_400_000),
                    due_at=None if rng.random() < 0.1 else _iso_s(due_ms),
                    lock_at=None if rng.random() < 0.6 else _iso_s(due_ms + 86_400_000),
                )
            )
        quizzes = tuple(
            _Item(_gid(q := new_local()), q, f"Quiz {k + 1}: {rng.choice(_TOPICS)}",
                  rng.choice(assignments).gid, "")
            for k in range(rng.randint(2, 5))
        )
        pages = []
        for k in range(rng.randint(3, 8)):
            plocal = new_local()
            title = rng.choice(_PAGE_TITLES).format(n=k + 1)
            slug = quote_plus(title.lower().replace(" ", "-"))
            pages.append(_Item(_gid(plocal), plocal, title, slug, ""))
        topics = tuple(
            _Item(_gid(t := new_local()), t, f"Week {k + 1}: {rng.choice(_TOPICS)}",
                  rng.choice(short_html), "")
            for k in range(rng.randint(2, 5))
        )
        folder = _gid(new_local())
        files = []
        for k in range(rng.randint(3, 10)):
            flocal = new_local()
            tmpl, ctype = rng.choice(_FILE_TEMPLATES)
            display = tmpl.format(n=k + 1)
            files.append(_Item(_gid(flocal), flocal, display, ctype, quote_plus(display)))
        groups = tuple(
            _Item(_gid(g := new_local()), g, rng.choice(_GROUP_NAMES).format(n=k + 1), "", "")
            for k in range(rng.randint(0, 4))
        )
        courses.append(
            _Course(
                gid=_gid(clocal),
                local=clocal,
                name=name,
                sis=sis,
                account=rng.choice(accounts),
                uuid=_rand_str(rng, 40),
                created_at=created,
                sections=tuple(_gid(new_local()) for _ in range(rng.randint(1, 3))),
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
        )
    # Busy courses get more traffic than quiet ones.
    cum: list[float] = []
    total = 0.0
    for _ in courses:
        total += rng.paretovariate(1.5)
        cum.append(total)
    return _Pools(
        users=tuple(users),
        courses=tuple(courses),
        course_cum=tuple(c / total for c in cum),
        short_html=short_html,
        long_html=long_html,
    )


def _cumulative(weights: dict[str, float]) -> tuple[tuple[str, ...], tuple[float, ...]]:
    names = tuple(weights)
    total = sum(weights.values())
    acc = 0.0
    cum = []
    for name in names:
        acc += weights[name]
        cum.append(acc / total)
    cum[-1] = 1.0
    return names, tuple(cum)


_COURSE_SUBTYPES = (
    ("home", "home"), ("home", "home"), ("home", "home"), ("modules", "modules"),
    ("modules", "modules"), ("assignments", "assignments"), ("grades", "grades"),
    ("grades", "grades"), ("announcements", "announcements"), ("pages", "wiki"),
    ("files", "files"), ("syllabus", "syllabus"), ("quizzes", "quizzes"),
    ("discussion_topics", "topics"), ("roster", "roster"), ("calendar_feed", "calendar"),
)
_GROUP_SUBTYPES = ("home", "conferences", "collaborations", "files", "pages", "announcements")
# asset kinds for asset_accessed: cumulative probabilities
_ASSET_KINDS = (
    (0.30, "course"), (0.52, "assignment"), (0.64, "wiki_page"), (0.74, "attachment"),
    (0.82, "quiz"), (0.90, "discussion_topic"), (0.96, "group"), (1.0, "external_tool"),
)
_ASSET_CUM = tuple(p for p, _ in _ASSET_KINDS)
_ASSET_NAMES = tuple(k for _, k in _ASSET_KINDS)
_CALIPER_OBJ_TYPE = {
    "course": ("course", "CourseOffering"),
    "assignment": ("assignment", "AssignableDigitalResource"),
    "wiki_page": ("wikiPage", "Page"),
    "attachment": ("attachment", "Document"),
    "quiz": ("quiz", "Assessment"),
    "discussion_topic": ("discussion", "Thread"),
    "group": ("group", "Group"),
    "external_tool": ("context_external_tool", "SoftwareApplication"),
}
_LETTER = ((93, "A"), (90, "A-"), (87, "B+"), (83, "B"), (80, "B-"), (77, "C+"), (70, "C"),
           (60, "D"), (0, "F"))

# (asset_type, gid, name, subtype, category, url path, level, context type, context id)
_Asset = tuple[str, str, str, str | None, str, str, str | None, str, str]


class _Generator:
    """Holds RNG, clock and id counters; one builder method per (format, event name)."""

    def __init__(self, seed: int, fmt: str) -> None:
        if fmt not in _FORMATS:
            raise ValueError(f"fmt must be one of {_FORMATS}, not {fmt!r}")
        self.rng = random.Random(seed)
        self.pools = _pools(seed)
        self.fmt = fmt
        self.clock = _Clock()
        self.now = _START_MS
        self.next_local = 50_000_000
        self.cv_names, self.cv_cum = _cumulative(EVENT_WEIGHTS)
        self.cl_names, self.cl_cum = _cumulative(CALIPER_WEIGHTS)
        self.cv_build: tuple[Callable[[str, str], Payload], ...] = tuple(
            getattr(self, f"_cv_{n}") for n in self.cv_names
        )
        self.cl_build: tuple[Callable[[str, str], Payload], ...] = tuple(
            getattr(self, f"_cl_{n}") for n in self.cl_names
        )

    # -- streaming ----------------------------------------------------------------------

    def events(self, n: int) -> Iterator[tuple[str, str, Payload]]:
        rng = self.rng
        fmt = self.fmt
        iso = self.clock.iso_ms
        for _ in range(n):
            self.now += 1 + int(rng.random() * 300)
            ms = self.now
            if rng.random() < 0.02:  # late/out-of-order delivery, a few seconds back
                ms -= rng.randint(500, 5000)
            ts = iso(ms)
            caliper = fmt == "caliper" or (fmt == "mixed" and rng.random() >= _MIXED_CANVAS_SHARE)
            if caliper:
                k = bisect(self.cl_cum, rng.random())
                name = self.cl_names[k]
                yield name, ts, self.cl_build[k](name, ts)
            else:
                k = bisect(self.cv_cum, rng.random())
                name = self.cv_names[k]
                yield name, ts, self.cv_build[k](name, ts)

    # -- shared helpers -----------------------------------------------------------------

    def _new_gid(self) -> str:
        self.next_local += 1 + self.rng.randrange(7)
        return _gid(self.next_local)

    def _course(self) -> _Course:
        p = self.pools
        return p.courses[bisect(p.course_cum, self.rng.random() * 0.999999)]

    def _actor(self, student_share: float = 0.86) -> tuple[_User, _Course, str]:
        rng = self.rng
        c = self._course()
        users = self.pools.users
        if rng.random() < student_share:
            return users[rng.choice(c.students)], c, "StudentEnrollment"
        role = "TaEnrollment" if rng.random() < 0.1 else "TeacherEnrollment"
        return users[rng.choice(c.teachers)], c, role

    def _teacher(self, c: _Course) -> _User:
        return self.pools.users[self.rng.choice(c.teachers)]

    def _student(self, c: _Course) -> _User:
        return self.pools.users[self.rng.choice(c.students)]

    def _meta(
        self,
        name: str,
        ts: str,
        u: _User,
        c: _Course | None,
        role: str | None,
        method: str,
        url: str,
        referrer: str | None,
        ctx_type: str = "Course",
        ctx_id: str | None = None,
    ) -> Payload:
        """User-generated metadata (an HTTP request triggered the event)."""
        m: Payload = {
            "root_account_uuid": _ROOT_UUID,
            "root_account_id": _ROOT_ID,
            "root_account_lti_guid": _LTI_GUID,
            "user_login": u.login,
            "user_account_id": _ROOT_ID,
            "user_sis_id": u.sis_id,
            "user_id": u.gid,
            "time_zone": u.time_zone,
        }
        if c is not None:
            m["context_type"] = ctx_type
            m["context_id"] = ctx_id or c.gid
            m["context_sis_source_id"] = c.sis if ctx_type == "Course" else None
            m["context_account_id"] = c.account
            m["context_role"] = role
        m["request_id"] = _uuid4(self.rng)
        m["session_id"] = u.session_id
        m["hostname"] = _HOST
        m["http_method"] = method
        m["user_agent"] = u.user_agent
        m["client_ip"] = u.client_ip
        m["url"] = url
        m["referrer"] = referrer
        m["producer"] = "canvas"
        m["event_name"] = name
        m["event_time"] = ts
        return m

    def _sys_meta(self, name: str, ts: str, job_tag: str) -> Payload:
        """System-generated metadata (a background job triggered the event)."""
        return {
            "root_account_uuid": _ROOT_UUID,
            "root_account_id": _ROOT_ID,
            "root_account_lti_guid": _LTI_GUID,
            "job_id": str(self.rng.randint(10**15, 10**16 - 1)),
            "job_tag": job_tag,
            "producer": "canvas",
            "event_name": name,
            "event_time": ts,
        }

    def _asset(self, u: _User, c: _Course, role: str) -> _Asset:
        rng = self.rng
        kind = _ASSET_NAMES[bisect(_ASSET_CUM, rng.random())]
        cl = c.local
        if kind == "assignment":
            a = rng.choice(c.assignments)
            level = "participate" if rng.random() < 0.1 else None
            return (kind, a.gid, a.title, None, "assignments",
                    f"/courses/{cl}/assignments/{a.local}", level, "Course", c.gid)
        if kind == "wiki_page":
            p = rng.choice(c.pages)
            return (kind, p.gid, p.name, None, "wiki", f"/courses/{cl}/pages/{p.extra}",
                    None, "Course", c.gid)
        if kind == "attachment":
            f = rng.choice(c.files)
            return (kind, f.gid, f.name, None, "files",
                    f"/courses/{cl}/files/{f.local}/download?wrap=1", None, "Course", c.gid)
        if kind == "quiz":
            q = rng.choice(c.quizzes)
            level = "participate" if rng.random() < 0.15 else None
            return (kind, q.gid, q.name, None, "quizzes", f"/courses/{cl}/quizzes/{q.local}",
                    level, "Course", c.gid)
        if kind == "discussion_topic":
            t = rng.choice(c.topics)
            level = "participate" if rng.random() < 0.05 else None
            return (kind, t.gid, t.name, None, "topics",
                    f"/courses/{cl}/discussion_topics/{t.local}", level, "Course", c.gid)
        if kind == "group" and c.groups:
            g = rng.choice(c.groups)
            sub = rng.choice(_GROUP_SUBTYPES)
            path = f"/groups/{g.local}" if sub == "home" else f"/groups/{g.local}/{sub}"
            return (kind, g.gid, g.name, sub, sub, path, None, "Group", g.gid)
        if kind == "external_tool":
            tool = rng.randrange(len(_TOOLS))
            return ("context_external_tool", _gid(900 + tool), _TOOLS[tool], None,
                    "external_tools", f"/courses/{cl}/external_tools/{900 + tool}", None,
                    "Course", c.gid)
        sub, cat = rng.choice(_COURSE_SUBTYPES)
        path = f"/courses/{cl}" if sub == "home" else f"/courses/{cl}/{sub}"
        return ("course", c.gid, c.name, sub, cat, path, None, "Course", c.gid)

    def _referrer(self, c: _Course) -> str | None:
        r = self.rng.random()
        if r < 0.15:
            return None
        if r < 0.6:
            return f"{_BASE}/courses/{c.local}"
        if r < 0.8:
            return f"{_BASE}/courses/{c.local}/modules"
        return f"{_BASE}/"

    def _submission_fields(
        self, ts: str, c: _Course, a: _Assignment, s: _User, graded: bool
    ) -> Payload:
        rng = self.rng
        stype = a.submission_type
        body: str | None = None
        url: str | None = None
        if stype == "online_text_entry":
            body = (
                rng.choice(self.pools.long_html) if rng.random() < 0.2
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
                grade = next(g for lim, g in _LETTER if pct >= lim)
            graded_at = ts[:19] + "Z"
        return {
            "submission_id": self._new_gid(),
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
            "attempt": rng.choice((1, 1, 1, 1, 2, 2, 3)),
            "late": rng.random() < 0.1,
            "missing": rng.random() < 0.03,
            "workflow_state": "graded" if graded else "submitted",
            "lti_user_id": s.lti_user_id,
            "lti_assignment_id": a.lti_assignment_id,
            "group_id": rng.choice(c.groups).gid if c.groups and rng.random() < 0.05 else None,
        }

    # -- canvas raw builders ------------------------------------------------------------

    def _cv_asset_accessed(self, name: str, ts: str) -> Payload:
        u, c, role = self._actor()
        kind, gid, aname, sub, cat, path, level, ctype, cid = self._asset(u, c, role)
        if ctype == "Group":
            role = "GroupMembership"
        meta = self._meta(name, ts, u, c, role, "GET", _BASE + path, self._referrer(c),
                          ctype, cid)
        return {
            "metadata": meta,
            "body": {
                "asset_name": aname,
                "asset_type": kind,
                "asset_id": gid,
                "asset_subtype": sub,
                "category": cat,
                "role": role,
                "level": level,
            },
        }

    def _cv_logged_in(self, name: str, ts: str) -> Payload:
        u, c, _ = self._actor()
        rng = self.rng
        sso = rng.random() < 0.7
        url = f"{_BASE}/login/saml" if sso else f"{_BASE}/login/canvas"
        ref = (
            "https://idp.example.edu/idp/profile/SAML2/Redirect/SSO"
            f"?execution=e{rng.randint(1, 9)}s2"
        )
        redirect = f"{_BASE}/" if rng.random() < 0.8 else f"{_BASE}/courses/{c.local}"
        meta = self._meta(name, ts, u, None, None, "POST", url, ref if sso else None)
        return {"metadata": meta, "body": {"redirect_url": redirect}}

    def _cv_logged_out(self, name: str, ts: str) -> Payload:
        u, c, _ = self._actor()
        meta = self._meta(name, ts, u, None, None, "DELETE", f"{_BASE}/logout",
                          f"{_BASE}/courses/{c.local}")
        return {"metadata": meta, "body": {}}

    def _cv_submission_created(self, name: str, ts: str) -> Payload:
        s, c, _ = self._actor(1.0)
        a = self.rng.choice(c.assignments)
        url = f"{_BASE}/courses/{c.local}/assignments/{a.local}/submissions"
        meta = self._meta(name, ts, s, c, "StudentEnrollment", "POST", url,
                          f"{_BASE}/courses/{c.local}/assignments/{a.local}")
        return {"metadata": meta, "body": self._submission_fields(ts, c, a, s, graded=False)}

    def _cv_submission_updated(self, name: str, ts: str) -> Payload:
        c = self._course()
        a = self.rng.choice(c.assignments)
        s = self._student(c)
        graded = self.rng.random() < 0.7
        if graded:
            t = self._teacher(c)
            url = f"{_BASE}/courses/{c.local}/gradebook/update_submission"
            meta = self._meta(name, ts, t, c, "TeacherEnrollment", "POST", url,
                              f"{_BASE}/courses/{c.local}/gradebook/speed_grader?assignment_id={a.local}")
        else:
            url = f"{_BASE}/courses/{c.local}/assignments/{a.local}/submissions/{s.local}"
            meta = self._meta(name, ts, s, c, "StudentEnrollment", "PUT", url, None)
        return {"metadata": meta, "body": self._submission_fields(ts, c, a, s, graded)}

    def _grade(self, c: _Course) -> tuple[_Assignment, _User, _User, Payload]:
        rng = self.rng
        a = rng.choice(c.assignments)
        s = self._student(c)
        t = self._teacher(c)
        score = round(rng.uniform(0.3, 1.0) * a.points, 1)
        old_score: float | None = None if rng.random() < 0.6 else round(
            rng.uniform(0.0, 1.0) * a.points, 1)
        body: Payload = {
            "submission_id": self._new_gid(),
            "assignment_id": a.gid,
            "grade": f"{score:g}",
            "old_grade": None if old_score is None else f"{old_score:g}",
            "score": score,
            "old_score": old_score,
            "points_possible": a.points,
            "old_points_possible": a.points if old_score is not None else None,
            "grader_id": t.gid,
            "student_id": s.gid,
            "student_sis_id": s.sis_id,
            "user_id": s.gid,
            "grading_complete": rng.random() < 0.95,
            "muted": rng.random() < 0.08,
        }
        return a, s, t, body

    def _cv_grade_change(self, name: str, ts: str) -> Payload:
        c = self._course()
        a, s, t, body = self._grade(c)
        if self.rng.random() < 0.25:  # quiz auto-grading runs in a job
            body["grader_id"] = None
            meta = self._sys_meta(name, ts, "Quizzes::SubmissionGrader#grade_submission")
        else:
            url = (f"{_BASE}/api/v1/courses/{c.local}/assignments/{a.local}/submissions/"
                   f"{s.local}?include%5B%5D=visibility")
            meta = self._meta(name, ts, t, c, "TeacherEnrollment", "PUT", url,
                              f"{_BASE}/courses/{c.local}/gradebook")
        return {"metadata": meta, "body": body}

    def _entry(self) -> str:
        rng = self.rng
        if rng.random() < 0.05:
            return rng.choice(self.pools.long_html)
        return rng.choice(_ENTRY_TEXTS)

    def _cv_discussion_entry_created(self, name: str, ts: str) -> Payload:
        u, c, role = self._actor()
        t = self.rng.choice(c.topics)
        parent = self._new_gid() if self.rng.random() < 0.4 else None
        url = f"{_BASE}/api/v1/courses/{c.local}/discussion_topics/{t.local}/entries"
        meta = self._meta(name, ts, u, c, role, "POST", url,
                          f"{_BASE}/courses/{c.local}/discussion_topics/{t.local}")
        return {
            "metadata": meta,
            "body": {
                "created_at": ts[:19] + "Z",
                "discussion_entry_id": self._new_gid(),
                "discussion_topic_id": t.gid,
                "parent_discussion_entry_id": parent,
                "text": self._entry(),
                "user_id": u.gid,
            },
        }

    def _page_meta(self, name: str, ts: str, c: _Course, page: _Item) -> Payload:
        if self.rng.random() < 0.3:  # blueprint sync pushes page edits from a job
            return self._sys_meta(name, ts, "MasterCourses::MasterMigration#perform_imports")
        t = self._teacher(c)
        return self._meta(name, ts, t, c, "TeacherEnrollment", "PUT",
                          f"{_BASE}/api/v1/courses/{c.local}/pages/{page.extra}",
                          f"{_BASE}/courses/{c.local}/pages/{page.extra}/edit")

    def _page_body(self) -> str:
        p = self.pools
        return p.long_html[self.rng.randrange(len(p.long_html))] if self.rng.random() < 0.4 \
            else self.rng.choice(p.short_html)

    def _cv_wiki_page_updated(self, name: str, ts: str) -> Payload:
        c = self._course()
        page = self.rng.choice(c.pages)
        retitle = self.rng.random() < 0.1
        return {
            "metadata": self._page_meta(name, ts, c, page),
            "body": {
                "body": self._page_body(),
                "old_body": self._page_body(),
                "old_title": page.name,
                "title": f"{page.name} (updated)" if retitle else page.name,
                "wiki_page_id": page.gid,
            },
        }

    def _cv_wiki_page_created(self, name: str, ts: str) -> Payload:
        c = self._course()
        page = self.rng.choice(c.pages)
        return {
            "metadata": self._page_meta(name, ts, c, page),
            "body": {
                "body": self._page_body(),
                "title": page.name,
                "wiki_page_id": self._new_gid(),
            },
        }

    def _enrollment(self, ts: str, created: bool) -> tuple[_Course, _User, Payload]:
        rng = self.rng
        c = self._course()
        student = rng.random() < 0.85
        u = self._student(c) if student else self._teacher(c)
        etype = "StudentEnrollment" if student else rng.choice(
            ("TeacherEnrollment", "TaEnrollment", "ObserverEnrollment"))
        if created:
            state = rng.choice(("invited", "active", "active", "creation_pending"))
        else:
            state = rng.choice(("active", "active", "completed", "inactive", "deleted", "invited"))
        assoc = self._student(c).gid if etype == "ObserverEnrollment" else None
        body: Payload = {
            "associated_user_id": assoc,
            "course_id": c.gid,
            "course_section_id": rng.choice(c.sections),
            "created_at": ts[:19] + "Z" if created else c.created_at,
            "enrollment_id": self._new_gid(),
            "limit_privileges_to_course_section": rng.random() < 0.1,
            "type": etype,
            "updated_at": ts[:19] + "Z",
            "user_id": u.gid,
            "user_name": u.name,
            "workflow_state": state,
        }
        return c, u, body

    def _enrollment_meta(self, name: str, ts: str, c: _Course) -> Payload:
        if self.rng.random() < 0.75:  # nightly SIS imports
            return self._sys_meta(name, ts, "SIS::CSV::ImportRefactored#run_parallel_importer")
        admin = self._teacher(c)
        return self._meta(name, ts, admin, c, "TeacherEnrollment", "POST",
                          f"{_BASE}/courses/{c.local}/enroll_users",
                          f"{_BASE}/courses/{c.local}/users")

    def _cv_enrollment_updated(self, name: str, ts: str) -> Payload:
        c, _, body = self._enrollment(ts, created=False)
        return {"metadata": self._enrollment_meta(name, ts, c), "body": body}

    def _cv_enrollment_created(self, name: str, ts: str) -> Payload:
        c, _, body = self._enrollment(ts, created=True)
        return {"metadata": self._enrollment_meta(name, ts, c), "body": body}

    def _cv_enrollment_state_updated(self, name: str, ts: str) -> Payload:
        rng = self.rng
        meta = self._sys_meta(name, ts, "EnrollmentState.process_states_for_ids")
        return {
            "metadata": meta,
            "body": {
                "access_is_current": rng.random() < 0.9,
                "enrollment_id": self._new_gid(),
                "restricted_access": rng.random() < 0.05,
                "state": rng.choice(("active", "active", "pending_active", "pending_invited",
                                     "completed", "inactive")),
                "state_is_current": True,
                "state_started_at": ts[:19] + "Z",
                "state_valid_until": None if rng.random() < 0.7 else "2027-06-15T07:00:00Z",
            },
        }

    def _file(self, c: _Course) -> _Item:
        return self.rng.choice(c.files)

    def _attachment_body(self, ts: str, u: _User, c: _Course, f: _Item, gid: str) -> Payload:
        rng = self.rng
        return {
            "attachment_id": gid,
            "content_type": f.extra,
            "context_id": c.gid,
            "context_type": "Course",
            "display_name": f.name,
            "filename": f.extra2,
            "folder_id": c.folder,
            "lock_at": None,
            "unlock_at": None if rng.random() < 0.9 else ts[:19] + "Z",
            "updated_at": ts[:19] + "Z",
            "user_id": u.gid,
        }

    def _cv_attachment_created(self, name: str, ts: str) -> Payload:
        u, c, role = self._actor(0.6)
        f = self._file(c)
        meta = self._meta(name, ts, u, c, role, "POST", f"{_BASE}/api/v1/files/capture",
                          None)
        return {"metadata": meta, "body": self._attachment_body(ts, u, c, f, self._new_gid())}

    def _cv_attachment_updated(self, name: str, ts: str) -> Payload:
        c = self._course()
        t = self._teacher(c)
        f = self._file(c)
        meta = self._meta(name, ts, t, c, "TeacherEnrollment", "PUT",
                          f"{_BASE}/api/v1/files/{f.local}", f"{_BASE}/courses/{c.local}/files")
        return {"metadata": meta, "body": self._attachment_body(ts, t, c, f, f.gid)}

    def _assignment_body(self, ts: str, c: _Course, a: _Assignment, created: bool) -> Payload:
        rng = self.rng
        return {
            "assignment_group_id": a.group_gid,
            "assignment_id": a.gid if not created else self._new_gid(),
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
            "domain": _HOST,
            "points_possible": a.points,
            "submission_types": a.submission_types,
            "title": a.title,
            "unlock_at": a.unlock_at,
            "updated_at": ts[:19] + "Z",
            "workflow_state": "unpublished" if created and rng.random() < 0.5 else "published",
        }

    def _assignment_meta(self, name: str, ts: str, c: _Course, a: _Assignment) -> Payload:
        t = self._teacher(c)
        meta = self._meta(name, ts, t, c, "TeacherEnrollment", "PUT",
                          f"{_BASE}/api/v1/courses/{c.local}/assignments/{a.local}",
                          f"{_BASE}/courses/{c.local}/assignments/{a.local}/edit")
        meta["developer_key_id"] = None
        return meta

    def _cv_assignment_updated(self, name: str, ts: str) -> Payload:
        c = self._course()
        a = self.rng.choice(c.assignments)
        return {"metadata": self._assignment_meta(name, ts, c, a),
                "body": self._assignment_body(ts, c, a, created=False)}

    def _cv_assignment_created(self, name: str, ts: str) -> Payload:
        c = self._course()
        a = self.rng.choice(c.assignments)
        meta = self._assignment_meta(name, ts, c, a)
        meta["http_method"] = "POST"
        return {"metadata": meta, "body": self._assignment_body(ts, c, a, created=True)}

    def _cv_quiz_submitted(self, name: str, ts: str) -> Payload:
        s, c, _ = self._actor(1.0)
        q = self.rng.choice(c.quizzes)
        url = f"{_BASE}/courses/{c.local}/quizzes/{q.local}/submissions?user_id={s.local}"
        meta = self._meta(name, ts, s, c, "StudentEnrollment", "POST", url,
                          f"{_BASE}/courses/{c.local}/quizzes/{q.local}/take")
        return {"metadata": meta, "body": {"quiz_id": q.gid, "submission_id": self._new_gid()}}

    def _cv_submission_comment_created(self, name: str, ts: str) -> Payload:
        rng = self.rng
        u, c, role = self._actor(0.3)
        a = rng.choice(c.assignments)
        n_att = rng.choice((0, 0, 0, 1, 2))
        meta = self._meta(name, ts, u, c, role, "PUT",
                          f"{_BASE}/api/v1/courses/{c.local}/assignments/{a.local}/submissions/"
                          f"{self._student(c).local}", None)
        return {
            "metadata": meta,
            "body": {
                "attachment_ids": [self._new_gid() for _ in range(n_att)],
                "body": rng.choice(_COMMENTS),
                "created_at": ts[:19] + "Z",
                "submission_comment_id": self._new_gid(),
                "submission_id": self._new_gid(),
                "user_id": u.gid,
            },
        }

    def _user_body(self, ts: str, u: _User, state: str) -> Payload:
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

    def _cv_user_updated(self, name: str, ts: str) -> Payload:
        u, c, role = self._actor()
        meta = self._meta(name, ts, u, c, role, "PUT", f"{_BASE}/api/v1/users/{u.local}",
                          f"{_BASE}/profile/settings")
        return {"metadata": meta, "body": self._user_body(ts, u, "registered")}

    def _cv_user_created(self, name: str, ts: str) -> Payload:
        u, c, _ = self._actor()
        admin = self._teacher(c)
        meta = self._meta(name, ts, admin, c, "TeacherEnrollment", "POST",
                          f"{_BASE}/api/v1/accounts/1/users", None)
        meta["developer_key_id"] = _gid(7)
        body = self._user_body(ts, u, "pre_registered")
        body["user_id"] = self._new_gid()
        body["created_at"] = ts[:19] + "Z"
        return {"metadata": meta, "body": body}

    def _course_body(self, ts: str, c: _Course) -> Payload:
        return {
            "account_id": c.account,
            "course_id": c.gid,
            "created_at": c.created_at,
            "name": c.name,
            "updated_at": ts,
            "uuid": c.uuid,
            "workflow_state": self.rng.choice(("available", "available", "claimed")),
        }

    def _cv_course_updated(self, name: str, ts: str) -> Payload:
        c = self._course()
        if self.rng.random() < 0.6:
            meta = self._sys_meta(name, ts, "SIS::CSV::ImportRefactored#run_parallel_importer")
        else:
            meta = self._meta(name, ts, self._teacher(c), c, "TeacherEnrollment", "PUT",
                              f"{_BASE}/courses/{c.local}", f"{_BASE}/courses/{c.local}/settings")
        return {"metadata": meta, "body": self._course_body(ts, c)}

    def _cv_course_created(self, name: str, ts: str) -> Payload:
        c = self._course()
        meta = self._sys_meta(name, ts, "SIS::CSV::ImportRefactored#run_parallel_importer")
        body = self._course_body(ts, c)
        body["course_id"] = self._new_gid()
        body["created_at"] = ts
        body["workflow_state"] = "claimed"
        return {"metadata": meta, "body": body}

    def _cv_discussion_topic_created(self, name: str, ts: str) -> Payload:
        rng = self.rng
        c = self._course()
        t = rng.choice(c.topics)
        announce = rng.random() < 0.35
        meta = self._meta(name, ts, self._teacher(c), c, "TeacherEnrollment", "POST",
                          f"{_BASE}/api/v1/courses/{c.local}/discussion_topics",
                          f"{_BASE}/courses/{c.local}/discussion_topics/new")
        return {
            "metadata": meta,
            "body": {
                "assignment_id": None if rng.random() < 0.8 else rng.choice(c.assignments).gid,
                "body": t.extra,
                "context_id": c.gid,
                "context_type": "Course",
                "discussion_topic_id": self._new_gid(),
                "is_announcement": announce,
                "lock_at": None,
                "title": t.name,
                "updated_at": ts,
                "workflow_state": "active",
            },
        }

    def _cv_conversation_created(self, name: str, ts: str) -> Payload:
        u, _, _ = self._actor()
        meta = self._meta(name, ts, u, None, None, "POST", f"{_BASE}/api/v1/conversations",
                          f"{_BASE}/conversations")
        return {"metadata": meta, "body": {"conversation_id": self._new_gid(),
                                           "updated_at": ts[:19] + "Z"}}

    # -- caliper builders ---------------------------------------------------------------

    def _cal(
        self,
        etype: str,
        action: str,
        ts: str,
        u: _User,
        obj: Payload,
        request_url: str,
        referrer: str | None,
        c: _Course | None,
        role: str | None,
        extra: Payload | None = None,
        job_tag: str | None = None,
    ) -> Payload:
        """Wrap an object in the Canvas Caliper envelope (actor, edApp, group, session...)."""
        rng = self.rng
        ugid = u.gid
        ev: Payload = {
            "@context": _CALIPER_CTX,
            "id": "urn:uuid:" + _uuid4(rng),
            "type": etype,
            "actor": {
                "id": _URN + "user:" + ugid,
                "type": "Person",
                "extensions": {
                    "com.instructure.canvas": {
                        "user_login": u.login,
                        "user_sis_id": u.sis_id,
                        "root_account_id": _ROOT_ID,
                        "root_account_lti_guid": _LTI_GUID,
                        "root_account_uuid": _ROOT_UUID,
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
        ev["edApp"] = {"id": _SENSOR, "type": "SoftwareApplication"}
        if c is not None:
            cid = _URN + "course:" + c.gid
            ev.setdefault("group", {
                "id": cid,
                "type": "CourseOffering",
                "extensions": {"com.instructure.canvas": {"context_type": "Course",
                                                          "entity_id": c.gid}},
            })
            if role is not None:
                crole = _CALIPER_ROLE.get(role, "Learner")
                ev["membership"] = {
                    "id": f"{cid}:{crole}:{ugid}",
                    "type": "Membership",
                    "member": {"id": _URN + "user:" + ugid, "type": "Person"},
                    "organization": {"id": cid, "type": "CourseOffering"},
                    "roles": [crole],
                }
        if job_tag is None:
            ev["session"] = {"id": _URN + "session:" + u.session_id, "type": "Session"}
            ext: Payload = {
                "hostname": _HOST,
                "request_id": _uuid4(rng),
                "user_agent": u.user_agent,
                "client_ip": u.client_ip,
                "request_url": request_url,
                "version": "1.0.0",
            }
        else:
            ext = {"job_id": str(rng.randint(10**15, 10**16 - 1)), "job_tag": job_tag,
                   "version": "1.0.0"}
        ev["extensions"] = {"com.instructure.canvas": ext}
        ms = int(ts[20:23]) + 20 + rng.randrange(600)
        send = ts[:20] + f"{ms % 1000:03d}Z" if ms < 1000 else ts[:19] + ".999Z"
        return {
            "sensor": _SENSOR,
            "sendTime": send,
            "dataVersion": _CALIPER_CTX,
            "data": [ev],
        }

    def _cl_asset_accessed(self, name: str, ts: str) -> Payload:
        u, c, role = self._actor()
        kind, gid, aname, sub, _, path, _, ctype, _ = self._asset(u, c, role)
        urn_kind, otype = _CALIPER_OBJ_TYPE.get(kind, ("context_external_tool",
                                                       "SoftwareApplication"))
        ext: Payload = {
            "asset_name": aname,
            "asset_type": kind,
            "entity_id": gid,
            "context_account_id": c.account,
            "http_method": "GET",
        }
        if sub is not None:
            ext["asset_subtype"] = sub
        obj = {
            "id": f"{_URN}{urn_kind}:{gid}",
            "type": otype,
            "name": aname,
            "extensions": {"com.instructure.canvas": ext},
        }
        in_course = ctype == "Course" and self.rng.random() < 0.8
        return self._cal("NavigationEvent", "NavigatedTo", ts, u, obj, _BASE + path,
                         self._referrer(c), c if in_course else None, role)

    def _cl_logged_in(self, name: str, ts: str) -> Payload:
        u, _, _ = self._actor()
        obj = {
            "id": _SENSOR,
            "type": "SoftwareApplication",
            "extensions": {"com.instructure.canvas": {"redirect_url": f"{_BASE}/"}},
        }
        return self._cal("SessionEvent", "LoggedIn", ts, u, obj, f"{_BASE}/login/saml",
                         "https://idp.example.edu/idp/profile/SAML2/Redirect/SSO", None, None)

    def _cl_logged_out(self, name: str, ts: str) -> Payload:
        u, c, _ = self._actor()
        obj = {"id": _SENSOR, "type": "SoftwareApplication"}
        return self._cal("SessionEvent", "LoggedOut", ts, u, obj, f"{_BASE}/logout",
                         f"{_BASE}/courses/{c.local}", None, None)

    def _attempt(self, sub_gid: str, s: _User, a_urn: str, a_type: str) -> Payload:
        return {
            "id": f"{_URN}submission:{sub_gid}",
            "type": "Attempt",
            "assignee": {"id": _URN + "user:" + s.gid, "type": "Person"},
            "assignable": {"id": a_urn, "type": a_type},
        }

    def _cl_submission_created(self, name: str, ts: str) -> Payload:
        s, c, _ = self._actor(1.0)
        a = self.rng.choice(c.assignments)
        f = self._submission_fields(ts, c, a, s, graded=False)
        obj = self._attempt(f["submission_id"], s, f"{_URN}assignment:{a.gid}",
                            "AssignableDigitalResource")
        obj["dateCreated"] = ts
        obj["extensions"] = {"com.instructure.canvas": {
            "submission_type": f["submission_type"], "url": f["url"],
            "entity_id": f["submission_id"]}}
        obj["count"] = f["attempt"]
        obj["body"] = f["body"]
        return self._cal("AssignableEvent", "Submitted", ts, s, obj,
                         f"{_BASE}/courses/{c.local}/assignments/{a.local}/submissions",
                         None, c if self.rng.random() < 0.5 else None, "StudentEnrollment")

    def _cl_submission_updated(self, name: str, ts: str) -> Payload:
        c = self._course()
        a = self.rng.choice(c.assignments)
        s = self._student(c)
        t = self._teacher(c)
        f = self._submission_fields(ts, c, a, s, graded=self.rng.random() < 0.7)
        obj = self._attempt(f["submission_id"], s, f"{_URN}assignment:{a.gid}",
                            "AssignableDigitalResource")
        obj["dateModified"] = ts
        obj["extensions"] = {"com.instructure.canvas": {
            "submission_type": f["submission_type"], "entity_id": f["submission_id"]}}
        obj["count"] = f["attempt"]
        return self._cal("Event", "Modified", ts, t, obj,
                         f"{_BASE}/courses/{c.local}/gradebook/update_submission",
                         f"{_BASE}/courses/{c.local}/gradebook", c, "TeacherEnrollment")

    def _cl_grade_change(self, name: str, ts: str) -> Payload:
        c = self._course()
        a, s, t, g = self._grade(c)
        sub = g["submission_id"]
        grade_ext = {"com.instructure.canvas": {"grade": g["grade"], "entity_id": sub}}
        assignee = {"id": _URN + "user:" + s.gid, "type": "Person",
                    "extensions": {"com.instructure.canvas": {"sis_id": s.sis_id}}}
        assignable = {"id": f"{_URN}assignment:{a.gid}", "type": "AssignableDigitalResource"}
        obj = {"id": f"{_URN}submission:{sub}", "type": "Attempt", "extensions": grade_ext,
               "assignee": assignee, "assignable": assignable}
        generated = {
            "id": f"{_URN}submission:{sub}",
            "type": "Score",
            "extensions": {"com.instructure.canvas": {"grade": g["grade"], "entity_id": sub}},
            "attempt": {
                "id": f"{_URN}submission:{sub}",
                "type": "Attempt",
                "extensions": {"com.instructure.canvas": {"grade": g["grade"]}},
                "assignee": {"id": _URN + "user:" + s.gid, "type": "Person",
                             "extensions": {"com.instructure.canvas": {"sis_id": s.sis_id}}},
                "assignable": {"id": f"{_URN}assignment:{a.gid}",
                               "type": "AssignableDigitalResource"},
            },
            "maxScore": g["points_possible"],
            "scoreGiven": g["score"],
            "scoredBy": _URN + "user:" + t.gid,
        }
        url = (f"{_BASE}/api/v1/courses/{c.local}/assignments/{a.local}/submissions/"
               f"{s.local}?include%5B%5D=visibility")
        return self._cal("GradeEvent", "Graded", ts, t, obj, url,
                         f"{_BASE}/courses/{c.local}/gradebook", c, "TeacherEnrollment",
                         extra={"generated": generated})

    def _cl_discussion_entry_created(self, name: str, ts: str) -> Payload:
        u, c, role = self._actor()
        t = self.rng.choice(c.topics)
        eid = self._new_gid()
        obj = {
            "id": f"{_URN}discussionEntry:{eid}",
            "type": "Message",
            "extensions": {"com.instructure.canvas": {"entity_id": eid}},
            "isPartOf": {"id": f"{_URN}discussion:{t.gid}", "type": "Thread"},
            "body": self._entry(),
        }
        return self._cal("MessageEvent", "Posted", ts, u, obj,
                         f"{_BASE}/api/v1/courses/{c.local}/discussion_topics/{t.local}/entries",
                         f"{_BASE}/courses/{c.local}/discussion_topics/{t.local}", c, role)

    def _cl_discussion_topic_created(self, name: str, ts: str) -> Payload:
        c = self._course()
        t = self.rng.choice(c.topics)
        gid = self._new_gid()
        obj = {
            "id": f"{_URN}discussion:{gid}",
            "type": "Thread",
            "name": t.name,
            "extensions": {"com.instructure.canvas": {
                "is_announcement": self.rng.random() < 0.35, "entity_id": gid}},
        }
        return self._cal("ThreadEvent", "Created", ts, self._teacher(c), obj,
                         f"{_BASE}/api/v1/courses/{c.local}/discussion_topics",
                         f"{_BASE}/courses/{c.local}/discussion_topics/new", c,
                         "TeacherEnrollment")

    def _cl_assignment(self, ts: str, created: bool) -> Payload:
        c = self._course()
        a = self.rng.choice(c.assignments)
        gid = self._new_gid() if created else a.gid
        obj: Payload = {
            "id": f"{_URN}assignment:{gid}",
            "type": "AssignableDigitalResource",
            "name": a.title,
            "description": a.description,
        }
        obj["dateCreated" if created else "dateModified"] = ts
        ext: Payload = {"lock_at": a.lock_at, "entity_id": gid}
        if not created:
            ext["workflow_state"] = "published"
        obj["extensions"] = {"com.instructure.canvas": ext}
        obj["dateToShow"] = a.unlock_at
        obj["dateToSubmit"] = a.due_at
        obj["maxScore"] = a.points
        return self._cal("Event", "Created" if created else "Modified", ts, self._teacher(c),
                         obj, f"{_BASE}/api/v1/courses/{c.local}/assignments",
                         f"{_BASE}/courses/{c.local}/assignments/{a.local}/edit", c,
                         "TeacherEnrollment")

    def _cl_assignment_created(self, name: str, ts: str) -> Payload:
        return self._cl_assignment(ts, created=True)

    def _cl_assignment_updated(self, name: str, ts: str) -> Payload:
        return self._cl_assignment(ts, created=False)

    def _cl_attachment_created(self, name: str, ts: str) -> Payload:
        u, c, role = self._actor(0.6)
        f = self._file(c)
        gid = self._new_gid()
        obj = {
            "id": f"{_URN}attachment:{gid}",
            "type": "Document",
            "name": f.name,
            "dateCreated": ts,
            "extensions": {"com.instructure.canvas": {
                "context_id": c.gid, "context_type": "Course", "filename": f.extra2,
                "folder_id": c.folder, "entity_id": gid}},
            "mediaType": f.extra,
        }
        return self._cal("Event", "Created", ts, u, obj, f"{_BASE}/api/v1/files/capture",
                         None, c, role)

    def _cl_enrollment(self, ts: str, created: bool) -> Payload:
        c, u, b = self._enrollment(ts, created)
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
        obj: Payload = {"id": f"{_URN}enrollment:{eid}", "type": "Entity",
                        "dateCreated": ts if created else c.created_at[:19] + ".000Z"}
        if not created:
            obj["dateModified"] = ts
        obj["extensions"] = {"com.instructure.canvas": ext}
        system = self.rng.random() < 0.6
        admin = self._teacher(c)
        course_urn = _URN + "course:" + c.gid
        group = {
            "id": ext["course_section_id"],
            "type": "CourseSection",
            "extensions": {"com.instructure.canvas": {"context_type": "Course",
                                                      "entity_id": c.gid}},
            "subOrganizationOf": {"id": course_urn, "type": "CourseOffering"},
        }
        return self._cal(
            "Event", "Created" if created else "Modified", ts, admin, obj,
            f"{_BASE}/courses/{c.local}/enroll_users", None, c,
            None if system else "TeacherEnrollment",
            extra={"group": group},
            job_tag="SIS::CSV::ImportRefactored#run_parallel_importer" if system else None,
        )

    def _cl_enrollment_created(self, name: str, ts: str) -> Payload:
        return self._cl_enrollment(ts, created=True)

    def _cl_enrollment_updated(self, name: str, ts: str) -> Payload:
        return self._cl_enrollment(ts, created=False)

    def _cl_wiki(self, ts: str, created: bool) -> Payload:
        c = self._course()
        page = self.rng.choice(c.pages)
        gid = self._new_gid() if created else page.gid
        obj = {
            "id": f"{_URN}wikiPage:{gid}",
            "type": "Page",
            "name": page.name,
            "extensions": {"com.instructure.canvas": {"body": self._page_body(),
                                                      "entity_id": gid}},
        }
        return self._cal("Event", "Created" if created else "Modified", ts, self._teacher(c),
                         obj, f"{_BASE}/api/v1/courses/{c.local}/pages/{page.extra}",
                         f"{_BASE}/courses/{c.local}/pages/{page.extra}/edit", c,
                         "TeacherEnrollment")

    def _cl_wiki_page_created(self, name: str, ts: str) -> Payload:
        return self._cl_wiki(ts, created=True)

    def _cl_wiki_page_updated(self, name: str, ts: str) -> Payload:
        return self._cl_wiki(ts, created=False)

    def _cl_quiz_submitted(self, name: str, ts: str) -> Payload:
        s, c, _ = self._actor(1.0)
        q = self.rng.choice(c.quizzes)
        sub = self._new_gid()
        obj = self._attempt(sub, s, f"{_URN}quiz:{q.gid}", "Assessment")
        obj["extensions"] = {"com.instructure.canvas": {"entity_id": sub}}
        return self._cal("AssessmentEvent", "Submitted", ts, s, obj,
                         f"{_BASE}/courses/{c.local}/quizzes/{q.local}/submissions?user_id={s.local}",
                         f"{_BASE}/courses/{c.local}/quizzes/{q.local}/take", c,
                         "StudentEnrollment")


def generate_events(
    n: int, seed: int = 0, fmt: str = "canvas"
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Yield ``(event_name, event_time, payload)`` for ``n`` synthetic Live Events.

    Streams (constant memory) so benchmarks can ask for millions. ``fmt`` is
    ``"canvas"`` (raw), ``"caliper"`` (IMS Caliper 1.1) or ``"mixed"`` (~70/30), matching
    the three ways a Canvas Data Services subscription can be configured.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    return _Generator(seed, fmt).events(n)


def generate_messages(n: int, seed: int = 0, fmt: str = "canvas") -> Iterator[dict[str, Any]]:
    """Yield ``n`` SQS messages shaped like boto3 ``receive_message()["Messages"]`` items.

    Payloads equal ``generate_events(n, seed, fmt)``; the SQS envelope (MessageId,
    ReceiptHandle) comes from a separate seeded RNG so both views stay in step.
    """
    events = generate_events(n, seed, fmt)
    return _messages(events, random.Random(f"ledbelly-sqs:{seed}"))


def _messages(
    events: Iterator[tuple[str, str, Payload]], rng: random.Random
) -> Iterator[dict[str, Any]]:
    md5 = hashlib.md5
    b64 = base64.b64encode
    for name, ts, payload in events:
        raw = _dumps(payload)
        yield {
            "MessageId": _uuid4(rng),
            "ReceiptHandle": "AQEB" + b64(rng.randbytes(132)).decode(),
            "MD5OfBody": md5(raw, usedforsecurity=False).hexdigest(),  # what SQS checks
            "Body": raw.decode(),
            "MessageAttributes": {
                "event_name": {"StringValue": name, "DataType": "String"},
                "event_time": {"StringValue": ts, "DataType": "String"},
            },
        }
