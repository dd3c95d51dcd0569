"""Every database call is bounded: connect, statement, lock and pool timeouts, on both backends.

PostgreSQL's own timeouts (statement_timeout, lock_timeout) end a slow statement, but a server
that accepts connections and then never answers, or stops answering on an open connection,
defeats every one of them: the client would wait for a reply forever. So each connection also
carries a client-side limit (`BoundedConnection`), after which it is closed and the pool, seeing
a disconnect, replaces it. A hung database then gives a 503 page within seconds, and the app
recovers by itself when the database answers again.
"""

from __future__ import annotations

import ipaddress
import math
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from flask import Flask
from psycopg.abc import PQGen
from psycopg.connection import _WAIT_INTERVAL
from psycopg.errors import _WaitTimeout
from psycopg.pq import ExecStatus
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url

from portal.extensions import db
from portal.resolver import addresses, lookup

RV = TypeVar("RV")

# The server cancels a statement at statement_timeout and says so; the client gives up only
# when no word at all has come this long after that.
CLIENT_MARGIN = 0.5
# A connection that waited in the pool is pinged before use. A live server answers in
# milliseconds; a short bound leaves room in a page's budget for the reconnect that follows a
# failed ping (connect timeout), so a stalled pool costs about 1 + 2 seconds, not 3.5 + 2.
PING_LIMIT = 1.0


class DatabaseTimeout(psycopg.OperationalError):
    """The server did not answer in time; the connection was closed, so the pool drops it."""


_TUPLES = (ExecStatus.TUPLES_OK, ExecStatus.SINGLE_TUPLE, ExecStatus.TUPLES_CHUNK)


class _Result:
    """What a `psycopg.Column` reads of its cursor, kept from the result it describes."""

    __slots__ = ("_encoding", "adapters", "pgresult")

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self.pgresult = cursor.pgresult
        self._encoding = cursor._encoding
        self.adapters = cursor.adapters


class _Description(Sequence[psycopg.Column]):
    """A result's `description`, its columns made only when one is read.

    SQLAlchemy asks every cursor for its description, to learn whether rows came back; of a
    statement it has run before it reads nothing else of it (the columns' names and types are
    cached with the compiled statement). psycopg makes a `Column` for each (a name decoded, a
    type looked up, 2.4 µs each): the session's statement has 42, the audit log's three
    statements 60, about 0.15 ms of every such page.
    """

    __slots__ = ("_columns", "_count", "_result")

    def __init__(self, cursor: psycopg.Cursor[Any], count: int) -> None:
        self._result = _Result(cursor)
        self._count = count
        self._columns: list[psycopg.Column] | None = None

    def _made(self) -> list[psycopg.Column]:
        if self._columns is None:
            result: Any = self._result  # a Column reads only what _Result keeps
            self._columns = [psycopg.Column(result, i) for i in range(self._count)]
        return self._columns

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: Any) -> Any:
        return self._made()[index]

    def __iter__(self) -> Iterator[psycopg.Column]:
        return iter(self._made())


class DescribingCursor(psycopg.Cursor[Any]):
    """psycopg's cursor, with a description made only as far as it is read (_Description)."""

    @property
    def description(self) -> Any:
        # psycopg's own test: columns, or a result that said it has rows ("SELECT ;")
        result = self.pgresult
        if result and (result.nfields or result.status in _TUPLES):
            return _Description(self, result.nfields)
        return None


class BoundedConnection(psycopg.Connection[Any]):
    """A psycopg connection that stops waiting for a server that stopped answering.

    Every blocking operation (execute, fetch, commit, rollback, the pool's ping) goes through
    `wait()`; an operation that sets no timeout of its own waits at most `limit` seconds (which
    would also end an unbounded wait for notifications: the app listens for none).
    """

    limit: float | None = None  # seconds; None waits as long as it takes (migrations)

    def wait(
        self, gen: PQGen[RV], interval: float = _WAIT_INTERVAL, timeout: float | None = None
    ) -> RV:
        if timeout is not None or self.limit is None:
            return super().wait(gen, interval, timeout)
        try:
            return super().wait(gen, interval, self.limit)
        except _WaitTimeout:
            # Mid-reply, the protocol state is unknown: the connection is of no further use.
            # Closed, it is what SQLAlchemy's psycopg dialect calls a disconnect.
            self.close()
            raise DatabaseTimeout(
                f"the database did not answer within {self.limit:g} s; connection closed"
            ) from None


def engine_options(config: dict[str, Any]) -> dict[str, Any]:
    """SQLALCHEMY_ENGINE_OPTIONS for the configured database URL and timeouts."""
    options: dict[str, Any] = {"pool_pre_ping": True}
    if make_url(config["SQLALCHEMY_DATABASE_URI"]).get_backend_name() != "postgresql":
        return options
    statement_ms = _milliseconds(config["DATABASE_STATEMENT_TIMEOUT"])
    lock_ms = _milliseconds(config["DATABASE_LOCK_TIMEOUT"])
    # SQLAlchemy truncates the pool timeout to whole seconds; round up, never down to zero.
    options["pool_timeout"] = math.ceil(config["DATABASE_POOL_TIMEOUT"])
    options["connect_args"] = {
        "connect_timeout": math.ceil(config["DATABASE_CONNECT_TIMEOUT"]),
        # Sent with the start-up packet: set before the first statement, at no extra round trip.
        # plan_cache_mode: psycopg prepares a statement on its fifth run, and after five more
        # PostgreSQL may settle on one generic plan for every partner; planned for no partner
        # in particular, the audit log of a partner with a million events took 1.1-1.7 s
        # instead of 30 ms. Every run is planned for its own partner's values instead.
        "options": (
            f"-c statement_timeout={statement_ms} -c lock_timeout={lock_ms}"
            " -c plan_cache_mode=force_custom_plan"
        ),
    }
    return options


def _milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def bound(engine: Engine, statement_timeout: float) -> None:
    """Apply the client-side limits (PostgreSQL) or the busy timeout (SQLite) to `engine`."""
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas(_milliseconds(statement_timeout)))
        return
    if engine.dialect.name != "postgresql":
        return
    statement_limit = statement_timeout + CLIENT_MARGIN
    ping_limit = min(PING_LIMIT, statement_limit)

    @event.listens_for(engine, "do_connect")
    def connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> BoundedConnection:
        connection = BoundedConnection.connect(*cargs, **looked_up(cparams))
        connection.limit = statement_limit
        connection.cursor_factory = DescribingCursor
        return connection

    # Back in the pool, a connection's next operation is the ping before its next checkout.
    @event.listens_for(engine, "checkin")
    def before_ping(dbapi_connection: Any, _record: Any) -> None:
        if isinstance(dbapi_connection, BoundedConnection):
            dbapi_connection.limit = ping_limit

    @event.listens_for(engine, "checkout")
    def after_ping(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if isinstance(dbapi_connection, BoundedConnection):
            dbapi_connection.limit = statement_limit


def looked_up(cparams: dict[str, Any]) -> dict[str, Any]:
    """The connection's parameters with the servers' names already looked up, within the
    connect timeout.

    psycopg looks a host name up itself, before its `connect_timeout` starts counting, and
    the system resolver retries for seconds on its own: a DNS that stopped answering would
    hold each new connection (and the request waiting for it) that long. The names are looked
    up here instead, at once and against one deadline (`portal.resolver`), and each address
    found becomes an attempt of its own (`hostaddr`), its name beside it (`host`, which libpq
    still uses for TLS verification and the password file). A Unix socket or an address is
    passed on as it is. As psycopg does, a name that fails is left out while another host
    remains to be tried; when none does, the connection fails with what went wrong.
    """
    host = cparams.get("host")
    if not host or cparams.get("hostaddr"):
        return cparams
    names = str(host).split(",")
    ports = str(cparams.get("port") or "").split(",")
    if len(ports) == 1:
        ports *= len(names)
    if len(ports) != len(names):
        return cparams  # psycopg refuses it, with its own message
    timeout = float(cparams.get("connect_timeout") or 2)
    deadline = time.monotonic() + timeout
    pending = {
        name: lookup(name, int(port or 5432))
        for name, port in zip(names, ports, strict=True)
        if _is_name(name)
    }
    hosts: list[str] = []
    hostaddrs: list[str] = []
    for_ports: list[str] = []
    failures: list[str] = []
    for name, port in zip(names, ports, strict=True):
        found = [""]  # psycopg's and libpq's own handling: a socket directory, an address
        if name in pending:
            try:
                found = addresses(pending[name], deadline - time.monotonic())
            except TimeoutError:
                found = []
                failures.append(
                    f"the database server's name {name} could not be resolved within {timeout:g} s"
                )
            except (OSError, UnicodeError) as exc:
                found = []
                failures.append(f'could not translate host name "{name}" to address: {exc}')
            else:
                if not found:
                    failures.append(f'host name "{name}" has no address')
        for address in found:
            hosts.append(name)
            hostaddrs.append(address)
            for_ports.append(port)
    if not hosts:
        raise psycopg.OperationalError("; ".join(failures))
    if not pending:
        return cparams
    looked = {**cparams, "host": ",".join(hosts)}
    if any(hostaddrs):
        looked["hostaddr"] = ",".join(hostaddrs)
    if "port" in cparams:
        looked["port"] = ",".join(for_ports)
    return looked


def _is_name(host: str) -> bool:
    """Whether libpq would look `host` up: not empty, not a socket directory, no address."""
    if not host or host.startswith(("/", "@")):
        return False
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return True
    return False


def _sqlite_pragmas(busy_ms: int) -> Any:
    def on_connect(dbapi_connection: object, _record: object) -> None:
        """Enforce foreign keys; let readers and a writer work side by side; bound lock waits."""
        if isinstance(dbapi_connection, sqlite3.Connection):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            cursor.close()

    return on_connect


@contextmanager
def unbounded(connection: Connection) -> Iterator[None]:
    """Lift the statement limits on one connection, for as long as a migration takes.

    Creating an index on a big table may rightly take minutes. The lock timeout stays: a
    migration that cannot get its lock soon fails, instead of queueing every request behind
    it. The connection is discarded afterwards, so no lifted limit reaches the pool.
    """
    if connection.dialect.name != "postgresql":
        yield
        return
    try:
        connection.exec_driver_sql("SET statement_timeout = 0")
        connection.commit()
        dbapi_connection = connection.connection.dbapi_connection
        if isinstance(dbapi_connection, BoundedConnection):
            dbapi_connection.limit = None
        yield
    finally:
        connection.invalidate()


# A table's statistics are taken again once its row count has moved by a tenth from the count
# they were taken at, or when a table with rows has none: the planner's choices rest on
# proportions, and ANALYZE of every table on every run read every index of every table (about
# 2 s at a million audit events) to learn what it already knew.
DRIFT = 0.1


def refresh_statistics(engine: Engine) -> list[str]:
    """Give SQLite's query planner the statistics of the tables as they are now (`ANALYZE`
    of each table whose count has drifted); the tables it analyzed. Without them the planner
    guesses that any indexed equality finds ten rows, and at a partner with 100,000 users it
    walked the partner's index instead of looking up a page's 50 users by id (16 ms instead
    of 0.1). PostgreSQL's autovacuum keeps its own statistics: nothing to do there."""
    if engine.dialect.name != "sqlite":
        return []
    with engine.connect() as connection:
        tables = connection.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            " AND sql NOT LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name"
        ).scalars()
        counted_at: dict[str, int] = {}
        if connection.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'"
        ).first():
            for table, stat in connection.exec_driver_sql("SELECT tbl, stat FROM sqlite_stat1"):
                counted_at[table] = int(str(stat).split()[0])
        stale = []
        for table in list(tables):
            rows = connection.exec_driver_sql(f'SELECT count(*) FROM "{table}"').scalar_one()
            before = counted_at.get(table)
            if (before is None and rows) or (
                before is not None and abs(rows - before) >= DRIFT * max(before, 1)
            ):
                stale.append(table)
        for table in stale:
            connection.exec_driver_sql(f'ANALYZE "{table}"')
        connection.commit()
    return stale


def init_app(app: Flask) -> None:
    with app.app_context():
        for engine in db.engines.values():
            bound(engine, app.config["DATABASE_STATEMENT_TIMEOUT"])
