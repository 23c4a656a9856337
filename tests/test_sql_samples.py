"""The sample queries in sql/samples/: they parse in their dialect and answer on simulated data.

Every dialect folder holds the same queries. Each one parses with sqlglot. On SQLite, PostgreSQL
and MariaDB each one runs on 3,000 events from the real ``simulate`` command, spread over 9 days,
loaded with the real ``ingest`` command, and its answer is checked against the same numbers
worked out in Python from the rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from click.testing import CliRunner
from sqlalchemy import Connection, text

from conftest import ROOT, SCHEMAS, engine_for
from ledbelly.cli import main

SAMPLES = ROOT / "sql" / "samples"
SQLGLOT_DIALECT = {
    "mssql": "tsql",
    "mysql": "mysql",
    "oracle": "oracle",
    "postgresql": "postgres",
    "sqlite": "sqlite",
}
# The database kind of the db_url fixture, by URL scheme, and the folder of its queries.
SAMPLE_DIR = {"sqlite": "sqlite", "postgresql": "postgresql", "mysql": "mysql"}
QUERIES = sorted(p.name for p in (SAMPLES / "postgresql").glob("*.sql"))
ALL_FILES = [(d, q) for d in SQLGLOT_DIALECT for q in QUERIES]

Row = tuple[Any, ...]


@dataclass
class Answer:
    """A sample's result set."""

    columns: list[str]
    rows: list[Row]

    def column(self, name: str) -> list[Any]:
        i = self.columns.index(name)
        return [r[i] for r in self.rows]

    def numbers(self, name: str) -> list[float]:
        return [float(v) for v in self.column(name)]


@dataclass
class Stream:
    """The live_stream rows that the checks need, read back from the database."""

    rows: list[tuple[str, dt.datetime, dt.datetime, str | None, int | None, int | None]]

    @property
    def newest(self) -> dt.datetime:
        return max(r[1] for r in self.rows)

    @property
    def newest_local(self) -> dt.datetime:
        return max(r[2] for r in self.rows)


def _time(value: Any) -> dt.datetime:
    """A datetime column's value (SQLite gives text)."""
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


def _day(value: Any) -> str:
    return str(value)[:10]


def _hour(value: Any) -> str:
    """'YYYY-MM-DD HH' of a timestamp or of its text form."""
    return str(value)[:13]


def _scalar(conn: Connection, sql: str) -> int:
    return int(conn.execute(text(sql)).scalar_one())


def _run(conn: Connection, sql: str) -> Answer:
    """Run a sample as a client would: through the driver, with no bind-parameter parsing."""
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql)
        columns = [d[0].lower() for d in cursor.description]
        return Answer(columns, [tuple(r) for r in cursor.fetchall()])
    finally:
        cursor.close()


# ----- checks, one per sample -----------------------------------------------------------------

Check = Callable[[Answer, Connection, Stream], None]


def _avg_events_per_minute(a: Answer, conn: Connection, s: Stream) -> None:
    assert len(a.rows) == 1
    minutes, events, avg, peak = (float(v) for v in a.rows[0])
    assert events == len(s.rows)
    assert minutes == len({r[1].replace(second=0, microsecond=0) for r in s.rows})
    assert 0 < avg <= peak <= events
    assert avg == pytest.approx(events / minutes, abs=0.01)


def _daily_active_users(a: Answer, conn: Connection, s: Stream) -> None:
    assert a.rows
    daily = a.numbers("active_users")
    expected: dict[str, set[int]] = defaultdict(set)
    for r in s.rows:
        if r[5] is not None:
            expected[r[2].date().isoformat()].add(r[5])
    assert dict(zip(map(_day, a.column("activity_date")), daily, strict=True)) == {
        d: len(users) for d, users in expected.items()
    }
    assert set(a.column("week_day")) <= {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}
    for i, avg in enumerate(a.numbers("avg_7_days")):
        window = daily[max(0, i - 6) : i + 1]
        assert min(daily) <= avg <= max(daily)
        assert avg == pytest.approx(sum(window) / len(window), abs=0.01)


def _events_last_minute(a: Answer, conn: Connection, s: Stream) -> None:
    since = s.newest - dt.timedelta(minutes=1)
    expected = Counter(r[0] for r in s.rows if r[1] >= since)
    assert dict(zip(a.column("event_name"), a.numbers("events"), strict=True)) == expected
    assert max(map(_time, a.column("last_event_time"))) == s.newest
    assert min(map(_time, a.column("first_event_time"))) >= since
    assert all(p is not None for p in a.column("last_processed_at"))


def _top_assets_per_course(a: Answer, conn: Connection, s: Stream) -> None:
    assert a.rows
    courses = _scalar(
        conn,
        "SELECT COUNT(DISTINCT context_id_meta) FROM live_asset_accessed "
        "WHERE context_type_meta = 'Course' AND asset_id IS NOT NULL",
    )
    ranks: dict[int, list[int]] = defaultdict(list)
    views: dict[int, list[float]] = defaultdict(list)
    for course, rank, view, users in zip(
        a.column("course_id"),
        a.column("asset_rank"),
        a.numbers("views"),
        a.numbers("unique_users"),
        strict=True,
    ):
        ranks[int(course)].append(int(rank))
        views[int(course)].append(view)
        assert view >= users >= 1
    assert len(ranks) == courses
    for course, got in ranks.items():
        assert got == list(range(1, len(got) + 1)) and len(got) <= 10
        assert views[course] == sorted(views[course], reverse=True)
    assert all(a.column("asset_name")), "every simulated asset has a name"


def _logins_by_hour(a: Answer, conn: Connection, s: Stream) -> None:
    assert a.rows
    hours = [int(h) for h in a.column("hour_of_day")]
    assert all(0 <= h <= 23 for h in hours) and len(set(hours)) == len(hours)
    logins = a.numbers("logins")
    assert sum(logins) == _scalar(conn, "SELECT COUNT(*) FROM live_logged_in")
    expected = Counter(r[2].hour for r in s.rows if r[0] == "logged_in")
    assert dict(zip(hours, logins, strict=True)) == expected
    assert all(1 <= u <= n for u, n in zip(a.numbers("unique_users"), logins, strict=True))


def _submissions_per_assignment_per_day(a: Answer, conn: Connection, s: Stream) -> None:
    assert a.rows
    submissions, late = a.numbers("submissions"), a.numbers("late_submissions")
    assert sum(submissions) == _scalar(
        conn, "SELECT COUNT(*) FROM live_submission_created WHERE assignment_id IS NOT NULL"
    )
    late_total = _scalar(conn, "SELECT COUNT(*) FROM live_submission_created WHERE late = 'true'")
    assert sum(late) == late_total > 0, "the simulated data has late submissions"
    for n, n_late, students in zip(submissions, late, a.numbers("students"), strict=True):
        assert 0 <= n_late <= n and 1 <= students <= n


def _active_users_per_course_7d(a: Answer, conn: Connection, s: Stream) -> None:
    since = s.newest - dt.timedelta(days=7)
    users: dict[int, set[int]] = defaultdict(set)
    events: Counter[int] = Counter()
    for _, time, _, ctype, course, user in s.rows:
        if ctype == "Course" and course is not None and user is not None and time >= since:
            users[course].add(user)
            events[course] += 1
    got = {
        int(c): (int(u), int(e))
        for c, u, e in zip(
            a.column("course_id"), a.column("active_users"), a.column("events"), strict=True
        )
    }
    assert got == {c: (len(users[c]), events[c]) for c in users}
    assert a.numbers("active_users") == sorted(a.numbers("active_users"), reverse=True)


def _events_per_type_per_hour(a: Answer, conn: Connection, s: Stream) -> None:
    since = s.newest_local - dt.timedelta(hours=24)
    expected = Counter((_hour(r[2]), r[0]) for r in s.rows if r[2] >= since)
    got = {
        (_hour(h), n): int(e)
        for h, n, e in zip(
            a.column("event_hour"), a.column("event_name"), a.column("events"), strict=True
        )
    }
    assert got == expected
    assert {"asset_accessed", "logged_in", "submission_created"} <= {k[1] for k in got}


def _enrollments_per_course_per_day(a: Answer, conn: Connection, s: Stream) -> None:
    assert a.rows
    enrollments = a.numbers("enrollments")
    assert sum(enrollments) == _scalar(conn, "SELECT COUNT(*) FROM live_enrollment_created")
    assert all(str(t).endswith("Enrollment") for t in a.column("enrollment_type"))
    assert all(1 <= u <= n for u, n in zip(a.numbers("unique_users"), enrollments, strict=True))


CHECKS: dict[str, tuple[Sequence[str], Check]] = {
    "avg_events_per_minute.sql": (
        ["active_minutes", "events", "avg_events_per_minute", "max_events_per_minute"],
        _avg_events_per_minute,
    ),
    "daily_active_users.sql": (
        ["activity_date", "week_day", "active_users", "avg_7_days"],
        _daily_active_users,
    ),
    "events_last_minute.sql": (
        ["event_name", "events", "first_event_time", "last_event_time", "last_processed_at"],
        _events_last_minute,
    ),
    "top_assets_per_course.sql": (
        [
            "course_id",
            "asset_rank",
            "asset_type",
            "asset_id",
            "asset_name",
            "views",
            "unique_users",
        ],
        _top_assets_per_course,
    ),
    "logins_by_hour.sql": (["hour_of_day", "logins", "unique_users"], _logins_by_hour),
    "submissions_per_assignment_per_day.sql": (
        [
            "submission_date",
            "course_id",
            "assignment_id",
            "submissions",
            "late_submissions",
            "students",
        ],
        _submissions_per_assignment_per_day,
    ),
    "active_users_per_course_7d.sql": (
        ["course_id", "active_users", "events", "last_event_time"],
        _active_users_per_course_7d,
    ),
    "events_per_type_per_hour.sql": (
        ["event_hour", "event_name", "events"],
        _events_per_type_per_hour,
    ),
    "enrollments_per_course_per_day.sql": (
        ["enrollment_date", "course_id", "enrollment_type", "enrollments", "unique_users"],
        _enrollments_per_course_per_day,
    ),
}


# ----- tests ----------------------------------------------------------------------------------


def test_every_dialect_has_the_same_documented_queries() -> None:
    assert sorted(CHECKS) == QUERIES
    for dialect in SQLGLOT_DIALECT:
        folder = SAMPLES / dialect
        assert sorted(p.name for p in folder.glob("*.sql")) == QUERIES, dialect
        for name in QUERIES:
            head = (folder / name).read_text(encoding="utf-8").splitlines()[:3]
            assert head[0].startswith("-- Question: "), f"{dialect}/{name}"
            assert any(line.startswith("-- Tables: ") for line in head), f"{dialect}/{name}"
    readme = (SAMPLES / "README.md").read_text(encoding="utf-8")
    assert all(name in readme for name in QUERIES)


@pytest.mark.parametrize(("dialect", "name"), ALL_FILES)
def test_sample_parses_in_its_dialect(dialect: str, name: str) -> None:
    sql = (SAMPLES / dialect / name).read_text(encoding="utf-8")
    statements = sqlglot.parse(
        sql, read=SQLGLOT_DIALECT[dialect], error_level=sqlglot.ErrorLevel.RAISE
    )
    assert len([s for s in statements if s is not None]) == 1


@pytest.fixture(scope="module")
def simulated_events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    result = CliRunner().invoke(
        main,
        ["simulate", "-n", "3000", "--seed", "1", "--format", "canvas"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    path = tmp_path_factory.mktemp("sql-samples") / "events.jsonl"
    lines = result.stdout.splitlines()
    path.write_text("".join(_spread(i, line) + "\n" for i, line in enumerate(lines)), "utf-8")
    return path


def _spread(i: int, line: str) -> str:
    """Message ``i`` moved by 0 to 8 days and 0, 4 or 8 hours.

    ``simulate`` covers a few minutes; spread over 9 days and 3 hours of the day, its events
    give the rolling average, the 7-day and 24-hour windows and the hours something to tell
    apart.
    """
    shift = dt.timedelta(days=i % 9, hours=4 * ((i // 9) % 3))
    message = json.loads(line)
    event = json.loads(message["Body"])
    moved = _time(event["metadata"]["event_time"].replace("Z", "+00:00")) + shift
    stamp = moved.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    event["metadata"]["event_time"] = stamp
    message["MessageAttributes"]["event_time"]["StringValue"] = stamp
    message["Body"] = json.dumps(event)
    message["MD5OfBody"] = hashlib.md5(message["Body"].encode(), usedforsecurity=False).hexdigest()
    return json.dumps(message)


def _ingest(url: str, events: Path, log_dir: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "ingest",
            "--db",
            url,
            "--log-dir",
            str(log_dir),
            "--schemas",
            str(SCHEMAS),
            "--create-missing",
            "--workers",
            "1",
            str(events),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "rows canvas 3000" in result.output and "dead letters 0" in result.output


def _read_stream(conn: Connection) -> Stream:
    rows = conn.execute(
        text(
            "SELECT event_name, event_time, event_time_local, context_type_meta, context_id_meta, "
            "user_id_meta FROM live_stream"
        )
    ).all()
    return Stream(
        [
            (
                r[0],
                _time(r[1]),
                _time(r[2]),
                r[3],
                None if r[4] is None else int(r[4]),
                None if r[5] is None else int(r[5]),
            )
            for r in rows
        ]
    )


def test_samples_answer_on_simulated_data(
    db_url: str, simulated_events: Path, tmp_path: Path
) -> None:
    _ingest(db_url, simulated_events, tmp_path / "log")
    folder = SAMPLES / SAMPLE_DIR[db_url.split(":", 1)[0].split("+", 1)[0]]
    failures: list[str] = []
    engine = engine_for(db_url)
    try:
        with engine.connect() as conn:
            stream = _read_stream(conn)
            assert len(stream.rows) == 3000
            assert len({r[2].date() for r in stream.rows}) == 9, "spread over 9 days"
            for name in QUERIES:
                columns, check = CHECKS[name]
                try:
                    answer = _run(conn, (folder / name).read_text(encoding="utf-8"))
                    assert answer.columns == list(columns), answer.columns
                    check(answer, conn, stream)
                except Exception as exc:  # collect every failing sample, not only the first
                    failures.append(f"{folder.name}/{name}: {exc.__class__.__name__}: {exc}")
                    conn.rollback()
    finally:
        engine.dispose()
    assert not failures, "\n".join(failures)
