"""geoip: LEDbelly's MaxMind service. Client IPs in ``led_geo_maxmind``, each once.

After each committed batch, in its own thread, the extension takes the ``client_ip`` of
every row the batch wrote (``live_stream`` and any event table with that column), keeps
the ones it has not seen, looks them up in a local MaxMind database (a GeoLite2-City or
GeoIP2-City ``.mmdb``, IPv4 and IPv6) and inserts one ``led_geo_maxmind`` row per IP,
with LEDbelly's columns. Options (``extensions: {geoip: {...}}``):

- ``database``: the ``.mmdb`` file. Without it the first of ``DEFAULT_DATABASES`` that
  exists is used. A missing or unreadable file is one ``ConfigError`` at start.
- ``asn_database``: optional GeoLite2-ASN ``.mmdb``; fills ``asn`` (``AS15169``) and
  ``org``. Without it they are NULL, as in LEDbelly.
- ``locale``: the language of the names (``en``), English where that one is missing.
- ``cache_size``: how many IPs are remembered in memory (1,000,000); past it the memory is
  cleared and the table itself tells what is done.

An IP the database does not know gets no row, as in LEDbelly (which printed "was not found
in the database" and moved on): a row of NULLs would look like a location. It is
remembered in memory, so it is not looked up again until ledbelly restarts. Neither are
values that are not IP addresses. ``in_eu`` is ``'1'`` or ``'0'`` as LEDbelly stored it,
from MaxMind's European Union flag (LEDbelly tested the continent, which counts Norway and
Switzerland). ``utc_offset`` is the zone's standard offset (``-08:00``) as LEDbelly's
ActiveSupport gave it. ``country_calling_code``, ``currency`` and ``languages`` are not
in MaxMind's databases and stay NULL, as in LEDbelly.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, Engine, Table, insert, select, text
from sqlalchemy import exc as sa_exc

from ledbelly.errors import ConfigError
from ledbelly.extensions.base import Extension, ExtensionContext
from ledbelly.outcome import Kind, Outcome
from ledbelly.schema.model import TableDef
from ledbelly.transform.coerce import LengthUnit, clean_text, length_unit, trim

if TYPE_CHECKING:
    from maxminddb.reader import Reader

TABLE: Final = "led_geo_maxmind"
DEFAULT_DATABASES: Final = (
    Path("cfg/GeoLite2-City.mmdb"),
    Path("/var/lib/GeoIP/GeoLite2-City.mmdb"),  # geoipupdate's default
    Path("/usr/share/GeoIP/GeoLite2-City.mmdb"),
)
_OPTIONS: Final = frozenset(["database", "asn_database", "locale", "cache_size"])
_CHUNK: Final = 500  # IPs per existence check (bind-parameter limits)
_LOCK_NAME: Final = "ledbelly.led_geo_maxmind"
_LOCK_KEY: Final = int.from_bytes(b"ledgeoip", "big") & 0x7FFF_FFFF_FFFF_FFFF
_LOCK_WAIT: Final = 30
log = logging.getLogger("ledbelly.extensions.geoip")


def open_reader(path: Path, what: str = "database") -> Reader:
    """A MaxMind reader for ``path``, or one ``ConfigError`` that names it."""
    try:
        import maxminddb
    except ImportError:
        raise ConfigError(
            "geoip needs the maxminddb package: pip install 'ledbelly[geoip]'"
        ) from None
    if not path.is_file():
        raise ConfigError(f"geoip: MaxMind {what} {path} does not exist")
    try:
        return maxminddb.open_database(str(path), maxminddb.MODE_AUTO)
    except (OSError, ValueError) as exc:  # InvalidDatabaseError is a RuntimeError
        raise ConfigError(f"geoip: cannot read MaxMind {what} {path}: {exc}") from None
    except RuntimeError as exc:
        raise ConfigError(f"geoip: {path} is not a MaxMind database: {exc}") from None


def _path_option(options: Mapping[str, Any], key: str) -> Path | None:
    value = options.get(key)
    if value is None:
        return None
    if not isinstance(value, str | Path) or not str(value):
        raise ConfigError(f"extensions.geoip.{key} must be a file path, got {value!r}")
    return Path(value).expanduser()


def _database_path(options: Mapping[str, Any]) -> Path:
    path = _path_option(options, "database")
    if path is not None:
        return path
    for candidate in DEFAULT_DATABASES:
        if candidate.is_file():
            return candidate
    tried = ", ".join(str(p) for p in DEFAULT_DATABASES)
    raise ConfigError(
        f"geoip: no MaxMind database; set extensions.geoip.database or put "
        f"GeoLite2-City.mmdb at one of {tried}"
    )


class GeoIp(Extension):
    """Fills ``led_geo_maxmind`` from a local MaxMind database, off the ingest path."""

    name = "geoip"

    def __init__(self) -> None:
        self._reader: Reader | None = None
        self._asn: Reader | None = None
        self._engine: Engine | None = None
        self._table: Table | None = None
        self._context: ExtensionContext | None = None
        self._known: set[str] = set()
        self._locale = "en"
        self._cache_size = 1_000_000
        self._columns: dict[str, tuple[int, LengthUnit]] = {}  # string column: (size, unit)
        self.stats: dict[str, int] = {"looked_up": 0, "stored": 0, "not_found": 0, "invalid": 0}

    # ----- lifecycle ----------------------------------------------------------------------

    def start(self, context: ExtensionContext) -> None:
        try:
            self._start(context)
        except BaseException:
            self.stop()  # a reader or engine opened before the fault
            raise

    def _start(self, context: ExtensionContext) -> None:
        options = context.options
        unknown = set(options) - _OPTIONS
        if unknown:
            raise ConfigError(
                f"extensions.geoip: unknown options {sorted(unknown)}; known: {sorted(_OPTIONS)}"
            )
        locale = options.get("locale", "en")
        if not isinstance(locale, str) or not locale:
            raise ConfigError(f"extensions.geoip.locale must be a language code, got {locale!r}")
        cache_size = options.get("cache_size", 1_000_000)
        if not isinstance(cache_size, int) or isinstance(cache_size, bool) or cache_size < 1:
            raise ConfigError(
                f"extensions.geoip.cache_size must be a whole number above 0, got {cache_size!r}"
            )
        self._locale, self._cache_size = locale, cache_size
        if TABLE not in context.catalog.tables:
            raise ConfigError(f"geoip: no schema for {TABLE} (schemas/custom/{TABLE}.yml)")
        database = _database_path(options)
        asn_path = _path_option(options, "asn_database")
        self._reader = open_reader(database)
        if asn_path is not None:
            self._asn = open_reader(asn_path, "ASN database")
        self._context = context
        self._engine = context.open_engine()
        self._columns = _string_columns(context.catalog.tables[TABLE], self._engine.dialect.name)
        try:
            self._prepare()
        except sa_exc.SQLAlchemyError as exc:  # the database is away: try again per batch
            log.warning(
                "geoip: %s is not ready yet (%s); trying again with the next batch",
                TABLE,
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            )
        log.info(
            "geoip: %s (%s) into %s, %d IPs already there",
            database,
            self._reader.metadata().database_type,
            TABLE,
            len(self._known),
        )

    def _prepare(self) -> None:
        """The table (created where allowed) and the IPs it already holds."""
        assert self._context is not None and self._engine is not None
        table = self._context.table(TABLE, self._engine)
        known: set[str] = set()
        with self._engine.connect() as conn:
            for ip in conn.execute(select(table.c.ip).distinct()).scalars():
                if ip is not None and len(known) < self._cache_size:
                    known.add(ip)
        self._known |= known
        self._table = table

    def stop(self) -> None:
        for reader in (self._reader, self._asn):
            if reader is not None:
                reader.close()
        self._reader = self._asn = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # ----- the work -----------------------------------------------------------------------

    def after_commit(self, committed: Sequence[Outcome]) -> None:
        fresh = client_ips(committed) - self._known
        if fresh:
            self.record(fresh)

    def record(self, ips: Iterable[str]) -> int:
        """Look ``ips`` up and store the ones found and not yet stored; how many stored."""
        assert self._reader is not None and self._engine is not None
        if self._table is None:
            self._prepare()
        assert self._table is not None
        rows: dict[str, dict[str, Any]] = {}
        done: set[str] = set()
        for ip in ips:
            row = self.lookup(ip)
            if row is not None:
                rows[ip] = row
            else:
                done.add(ip)
        stored = self._insert(rows) if rows else 0
        if len(self._known) + len(rows) + len(done) > self._cache_size:
            self._known.clear()  # the table still tells; the memory only saves a query
        self._known.update(rows)
        self._known.update(done)
        return stored

    def lookup(self, ip: str) -> dict[str, Any] | None:
        """The ``led_geo_maxmind`` row for ``ip``; ``None`` if unknown or not an IP."""
        assert self._reader is not None
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            self.stats["invalid"] += 1
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # ::ffff:a.b.c.d is the IPv4 address
        self.stats["looked_up"] += 1
        try:
            record = self._reader.get(address)
        except ValueError:  # an IPv6 address in an IPv4-only database
            record = None
        if not isinstance(record, Mapping):
            self.stats["not_found"] += 1
            log.debug("geoip: %s was not found in the database", ip)
            return None
        asn: Any = None
        if self._asn is not None:
            try:
                asn = self._asn.get(address)
            except ValueError:
                asn = None
        return self._fit(
            geo_row(ip, record, self._locale, asn if isinstance(asn, Mapping) else None)
        )

    def _fit(self, row: dict[str, Any]) -> dict[str, Any]:
        """Strings cut to their columns, as the database counts them."""
        for name, (size, unit) in self._columns.items():
            value = row.get(name)
            if isinstance(value, str):
                row[name] = trim(clean_text(value), size, unit)
        return row

    def _insert(self, rows: dict[str, dict[str, Any]]) -> int:
        """One insert for the IPs not in the table yet; a conflict costs a row, not all."""
        assert self._table is not None
        table = self._table
        try:
            with self._transaction() as conn:
                ips = list(rows)
                present: set[str] = set()
                for i in range(0, len(ips), _CHUNK):
                    present.update(
                        conn.execute(
                            select(table.c.ip).where(table.c.ip.in_(ips[i : i + _CHUNK]))
                        ).scalars()
                    )
                new = [row for ip, row in rows.items() if ip not in present]
                if new:
                    conn.execute(insert(table), new)
        except sa_exc.IntegrityError:  # under a unique index a DBA added
            new = []
            for ip, row in rows.items():
                try:
                    with self._transaction() as conn:
                        if conn.execute(select(table.c.ip).where(table.c.ip == ip)).first():
                            continue
                        conn.execute(insert(table), row)
                    new.append(row)
                except sa_exc.IntegrityError:
                    continue
        self.stats["stored"] += len(new)
        return len(new)

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """A transaction that holds the geoip lock on PostgreSQL and MySQL/MariaDB.

        Two processes (``ingest``'s workers, two daemons) that see the same new IP then
        check and insert one after the other, so the IP is stored once. The lock is
        released at the end of the transaction (PostgreSQL) or right after it (MySQL).
        """
        assert self._engine is not None
        with self._engine.connect() as conn:
            dialect = conn.dialect.name
            named = dialect in ("mysql", "mariadb")
            if named:
                got = conn.execute(
                    text("SELECT GET_LOCK(:n, :t)"), {"n": _LOCK_NAME, "t": _LOCK_WAIT}
                ).scalar()
                conn.commit()
                if got != 1:
                    raise TimeoutError(f"geoip: lock {_LOCK_NAME} not granted in {_LOCK_WAIT} s")
            try:
                with conn.begin():
                    if dialect == "postgresql":
                        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
                    yield conn
            finally:
                if named:
                    with contextlib.suppress(sa_exc.SQLAlchemyError):
                        conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": _LOCK_NAME})
                        conn.commit()


def client_ips(outcomes: Iterable[Outcome]) -> set[str]:
    """Every ``client_ip`` in the rows of committed, inserted outcomes."""
    found: set[str] = set()
    for o in outcomes:
        if o.kind is not Kind.INSERTED:
            continue
        for _, row in o.rows:
            ip = row.get("client_ip")
            if isinstance(ip, str) and ip:
                found.add(ip)
    return found


def _string_columns(table: TableDef, dialect: str) -> dict[str, tuple[int, LengthUnit]]:
    return {
        c.name: (c.size, length_unit(dialect, c))
        for c in table.columns
        if c.type == "string" and c.size
    }


def _name(node: Any, locale: str) -> str | None:
    names = node.get("names") if isinstance(node, Mapping) else None
    if not isinstance(names, Mapping):
        return None
    value = names.get(locale) or names.get("en")
    return str(value) if value is not None else None


def _get(node: Any, key: str) -> Any:
    return node.get(key) if isinstance(node, Mapping) else None


def geo_row(
    ip: str, record: Mapping[str, Any], locale: str = "en", asn: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """LEDbelly's ``led_geo_maxmind`` columns from a GeoIP2/GeoLite2 City record."""
    country = record.get("country")
    continent = record.get("continent")
    location = record.get("location")
    subdivisions = record.get("subdivisions")
    region = subdivisions[0] if isinstance(subdivisions, list) and subdivisions else None
    zone = _get(location, "time_zone")
    number = _get(asn, "autonomous_system_number")
    in_eu: str | None = None
    if isinstance(country, Mapping):
        in_eu = "1" if country.get("is_in_european_union") else "0"
    return {
        "ip": ip,
        "city": _name(record.get("city"), locale),
        "region_name": _name(region, locale),
        "region_code": _get(region, "iso_code"),
        "country_code": _get(country, "iso_code"),
        "country_name": _name(country, locale),
        "continent_code": _get(continent, "code"),
        "in_eu": in_eu,
        "postal": _get(record.get("postal"), "code"),
        "latitude": _float(_get(location, "latitude")),
        "longitude": _float(_get(location, "longitude")),
        "timezone": zone if isinstance(zone, str) else None,
        "utc_offset": utc_offset(zone) if isinstance(zone, str) else None,
        "country_calling_code": None,
        "currency": None,
        "languages": None,
        "asn": f"AS{number}" if isinstance(number, int) else None,
        "org": _get(asn, "autonomous_system_organization"),
    }


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@lru_cache(maxsize=1024)
def utc_offset(zone: str) -> str | None:
    """The zone's standard offset from UTC, ``+05:30`` or ``-08:00``; ``None`` if unknown."""
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    now = datetime.now(UTC).astimezone(tz)
    offset = (now.utcoffset() or timedelta(0)) - (now.dst() or timedelta(0))
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{mins:02d}"
