"""A database or Redis that refuses or hangs: bounded answers, chosen degraded modes, recovery.

The PostgreSQL and Redis cases put a `FaultProxy` between the app and the real server and
switch it between forwarding, refusing and silence (accepting, never answering). Elapsed times
are measured against the bounds the README promises; nothing here sleeps.
"""

from __future__ import annotations

import logging
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis
import redis.connection
import sqlalchemy as sa
from conftest import PASSWORD, HostClient, host_client, logged_in
from faultproxy import FaultProxy
from flask import Flask
from flask_migrate import upgrade
from test_migrations import MIGRATIONS
from test_throttle import fail

from portal.auth.guards import public
from portal.auth.throttle import LookedUpSSLConnection
from portal.database import BoundedConnection, DescribingCursor, _Description, looked_up
from portal.extensions import db
from portal.tenancy.models import Partner
from portal.users.models import User

BUDGET = 5.0  # seconds: a hung dependency gives an answer within this
QUICK = 0.5  # seconds: what touches no dependency answers within this
UNAVAILABLE = "Temporarily unavailable"


def timed(client: HostClient, path: str) -> tuple[Any, float]:
    start = time.monotonic()
    response = client.get(path)
    return response, time.monotonic() - start


def timed_login(client: HostClient, email: str, password: str) -> tuple[Any, float]:
    start = time.monotonic()
    response = client.login(email, password, environ_base={"REMOTE_ADDR": "10.0.0.1"})
    return response, time.monotonic() - start


# --- PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture
def postgres_proxy(data: Flask, database_url: str) -> Iterator[FaultProxy]:
    """A proxy to the test database; closed before `data` wipes the tables, since a connection
    left in a transaction behind a silent proxy keeps its locks until the proxy lets go."""
    url = sa.engine.make_url(database_url)
    if url.get_backend_name() != "postgresql":
        pytest.skip("PostgreSQL fault modes run on the PostgreSQL pass (PORTAL_TEST_DB=postgres)")
    with FaultProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        yield proxy


@pytest.fixture
def proxied(make_app: Any, database_url: str, postgres_proxy: FaultProxy, acme: Partner) -> Flask:
    """An app whose database connections all go through the proxy (same role, same database)."""
    url = sa.engine.make_url(database_url).set(host="127.0.0.1", port=postgres_proxy.port)
    return make_app(fresh=True, SQLALCHEMY_DATABASE_URI=url.render_as_string(hide_password=False))


def assert_unavailable(response: Any, seconds: float) -> None:
    assert response.status_code == 503, response.text
    assert UNAVAILABLE in response.text and "Traceback" not in response.text
    assert seconds < BUDGET, f"503 after {seconds:.1f} s"


def assert_healthz_quick(client: HostClient) -> None:
    # The quickest of three answers: a dependency /healthz waited on would hold up each of
    # them; a pause of the test process itself (a full garbage collection of the suite's
    # objects, the other pass's browser on the same two cores: 1.24 s once in CI) one.
    answers = [timed(client, "/healthz") for _ in range(3)]
    for health, _seconds in answers:
        assert health.status_code == 200 and health.json == {"status": "ok"}
    seconds = min(seconds for _health, seconds in answers)
    assert seconds < QUICK, f"/healthz took {seconds:.2f} s at best"


def assert_recovers(client: HostClient) -> None:
    assert client.get("/login").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["database"] == "ok"


def test_refused_database_is_503_then_recovers(proxied: Flask, postgres_proxy: FaultProxy) -> None:
    visitor = host_client(proxied, "acme")
    assert visitor.get("/login").status_code == 200  # leaves a connection in the pool
    postgres_proxy.refuse()
    assert_unavailable(*timed(visitor, "/login"))
    ready, seconds = timed(visitor, "/readyz")
    assert ready.status_code == 503 and seconds < BUDGET
    assert ready.json["database"] == "unreachable"
    assert_healthz_quick(visitor)
    postgres_proxy.forward()
    assert_recovers(visitor)


def test_silent_database_on_a_pooled_connection_is_503_within_seconds(
    proxied: Flask, postgres_proxy: FaultProxy
) -> None:
    visitor = host_client(proxied, "acme")
    assert visitor.get("/login").status_code == 200  # leaves a connection in the pool
    postgres_proxy.silent()
    # The pool's ping on the stalled connection gives up, then one reconnect attempt does.
    assert_unavailable(*timed(visitor, "/login"))
    ready, seconds = timed(visitor, "/readyz")
    assert ready.status_code == 503 and seconds < BUDGET
    assert ready.json["database"] == "unreachable"
    assert_healthz_quick(visitor)
    assert_healthz_quick(host_client(proxied, None))
    postgres_proxy.forward()
    assert_recovers(visitor)


def test_silent_database_on_new_connections_is_503_within_seconds(
    proxied: Flask, postgres_proxy: FaultProxy
) -> None:
    postgres_proxy.silent()  # before the app's first connection
    visitor = host_client(proxied, "acme")
    assert_unavailable(*timed(visitor, "/login"))
    ready, seconds = timed(visitor, "/readyz")
    assert ready.status_code == 503 and seconds < BUDGET
    assert_healthz_quick(visitor)
    postgres_proxy.forward()
    assert_recovers(visitor)


def test_database_that_stops_answering_mid_request_is_503_within_seconds(
    proxied: Flask, postgres_proxy: FaultProxy
) -> None:
    """The client-side limit: no server-side timeout can fire when no reply comes at all."""

    @public
    def stalls() -> str:
        db.session.execute(sa.select(1))
        postgres_proxy.silent()
        db.session.execute(sa.select(2))
        return "answered"

    proxied.add_url_rule("/stalls", view_func=stalls)
    root = host_client(proxied, None)
    assert_unavailable(*timed(root, "/stalls"))
    postgres_proxy.forward()
    assert_recovers(host_client(proxied, "acme"))


def test_signed_in_request_that_stalls_mid_way_is_503_within_seconds(
    proxied: Flask, postgres_proxy: FaultProxy, acme_user: User
) -> None:
    def stalls() -> str:
        db.session.execute(sa.select(1))
        postgres_proxy.silent()
        db.session.execute(sa.select(2))
        return "answered"

    proxied.add_url_rule("/stalls", view_func=stalls, subdomain="<partner>")
    alice = logged_in(proxied, acme_user)
    assert_unavailable(*timed(alice, "/stalls"))


def test_signed_in_page_while_the_database_is_silent(
    proxied: Flask, postgres_proxy: FaultProxy, acme_user: User
) -> None:
    alice = logged_in(proxied, acme_user)
    assert alice.get("/").status_code == 200
    postgres_proxy.silent()
    assert_unavailable(*timed(alice, "/"))
    postgres_proxy.forward()
    assert alice.get("/").status_code == 200


SLOW_DB_HOST = "slow-db.portal.test"
WAIT = 10.0  # seconds: what a test waits, at most, for something it set in motion


@dataclass
class HeldLookup:
    """A name's lookup, held until the test releases it (`hold_lookup`)."""

    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)


def hold_lookup(monkeypatch: pytest.MonkeyPatch, name: str, answer_as: str) -> HeldLookup:
    """Every lookup of `name` waits for the release, then answers what `answer_as` has."""
    held = HeldLookup()
    real = socket.getaddrinfo

    def lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host != name:
            return real(host, *args, **kwargs)
        held.entered.set()
        try:
            assert held.release.wait(WAIT), "the test never released the lookup"
            return real(answer_as, *args, **kwargs)
        finally:
            held.finished.set()

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    return held


def test_a_database_name_the_resolver_does_not_answer_is_503_within_seconds(
    make_app: Any, database_url: str, acme: Partner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server is named, and the name's lookup hangs: the request gets its 503 when the
    connect timeout (2 s) runs out, not after the resolver's own retries; once the name
    answers, connections go to the address it gave."""
    url = sa.engine.make_url(database_url)
    if url.get_backend_name() != "postgresql":
        pytest.skip("PostgreSQL's connections (PORTAL_TEST_DB=postgres)")
    held = hold_lookup(monkeypatch, SLOW_DB_HOST, url.host or "127.0.0.1")
    named = url.set(host=SLOW_DB_HOST).render_as_string(hide_password=False)
    app = make_app(fresh=True, SQLALCHEMY_DATABASE_URI=named)
    visitor = host_client(app, "acme")
    try:
        response, seconds = timed(visitor, "/login")
        assert_unavailable(response, seconds)
        assert seconds >= 1.5  # the connect timeout's, the lookup never answered
        assert held.entered.is_set() and not held.finished.is_set()
        assert_healthz_quick(visitor)
    finally:
        held.release.set()
    assert held.finished.wait(WAIT)  # the late lookup ends on its own thread, unwaited
    assert_recovers(visitor)


def fake_lookup(found: dict[str, list[str]], threads: list[str]) -> Any:
    """A resolver that knows `found` (names and their addresses), addresses, no other name;
    the thread each name was looked up on goes to `threads`."""
    real = socket.getaddrinfo

    def lookup(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in found:
            threads.append(threading.current_thread().name)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in found[host]]
        if str(host).replace(".", "").isdigit():
            return real(host, port, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    return lookup


def test_the_database_lookup_keeps_each_name_and_leaves_sockets_and_addresses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every address of every name is an attempt of its own, its name kept beside it (TLS
    verification, the password file), looked up on the resolver's threads; a socket
    directory and an address need no lookup; a name that fails is left out while another
    host remains, as psycopg does, and is the error when none does."""
    found = {"db1.test": ["10.0.0.1", "10.0.0.2"], "db2.test": ["10.0.0.3"]}
    threads: list[str] = []
    monkeypatch.setattr(socket, "getaddrinfo", fake_lookup(found, threads))
    socket_dir = {"host": "/run/postgresql", "dbname": "portal"}
    assert looked_up(socket_dir) == socket_dir
    assert looked_up({"host": "10.1.2.3", "port": 5432}) == {"host": "10.1.2.3", "port": 5432}
    assert threads == []
    assert looked_up({"host": "db1.test,db2.test", "port": "5432,5433"}) == {
        "host": "db1.test,db1.test,db2.test",
        "hostaddr": "10.0.0.1,10.0.0.2,10.0.0.3",
        "port": "5432,5432,5433",
    }
    assert threads and all(t.startswith("portal-resolve") for t in threads)
    # Several hosts and no port (SQLAlchemy passes one empty port per host).
    assert looked_up({"host": "db1.test,/run/postgresql", "port": ","}) == {
        "host": "db1.test,db1.test,/run/postgresql",
        "hostaddr": "10.0.0.1,10.0.0.2,",
        "port": ",,",
    }
    assert looked_up({"host": "elsewhere.test,db2.test"}) == {
        "host": "db2.test",
        "hostaddr": "10.0.0.3",
    }
    with pytest.raises(psycopg.OperationalError, match=r'host name "elsewhere\.test" to address'):
        looked_up({"host": "elsewhere.test", "port": 5432})


def test_a_tls_redis_connection_goes_to_the_address_and_is_wrapped_for_the_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: list[str] = []
    monkeypatch.setattr(
        socket, "getaddrinfo", fake_lookup({"tls-redis.test": ["127.0.0.1"]}, threads)
    )
    wrapped: dict[str, Any] = {}

    def wrap(connection: Any, sock: socket.socket) -> socket.socket:
        wrapped.update(host=connection.host, peer=sock.getpeername())
        return sock

    monkeypatch.setattr(redis.connection.SSLConnection, "_wrap_socket_with_ssl", wrap)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        connection = LookedUpSSLConnection(
            host="tls-redis.test", port=port, socket_connect_timeout=0.5
        )
        connection._connect().close()
    assert wrapped == {"host": "tls-redis.test", "peer": ("127.0.0.1", port)}
    assert connection.host == "tls-redis.test"
    assert len(threads) == 1 and threads[0].startswith("portal-resolve")  # with its deadline


def test_statement_and_lock_timeouts_are_set_on_every_connection(make_app: Any) -> None:
    app = make_app(DATABASE_STATEMENT_TIMEOUT=1.5, DATABASE_LOCK_TIMEOUT=0.75)
    with app.app_context(), db.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            pytest.skip("PostgreSQL settings; SQLite's busy timeout is tested below")
        assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "1500ms"
        assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "750ms"
        # Every run of a prepared statement planned for its own partner, never a generic plan.
        assert conn.exec_driver_sql("SHOW plan_cache_mode").scalar() == "force_custom_plan"
        dbapi_connection = conn.connection.dbapi_connection
        assert isinstance(dbapi_connection, BoundedConnection)
        assert dbapi_connection.limit == 2.0  # the statement timeout and half a second


def test_a_cursor_describes_its_result_as_psycopg_does(
    make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The portal's cursor makes a result's columns only when they are read (SQLAlchemy reads
    none of a statement it has run before); read, they are psycopg's own."""
    app = make_app()
    with app.app_context(), db.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            pytest.skip("psycopg's cursor")
        raw = conn.connection.dbapi_connection
        assert isinstance(raw, BoundedConnection)
        query = "SELECT 1 AS one, 'x'::varchar(5) AS two, now() AS three, NULL::jsonb AS four"
        cursor, plain = raw.cursor(), psycopg.Cursor(raw)
        assert isinstance(cursor, DescribingCursor)
        cursor.execute(query)
        plain.execute(query)
        described, expected = cursor.description, plain.description
        assert expected is not None and len(described) == len(expected) == 4
        assert [tuple(c) for c in described] == [tuple(c) for c in expected]
        assert [c.name for c in described[1:3]] == ["two", "three"]
        assert described[-1].type_code == expected[-1].type_code
        assert described[1].internal_size == expected[1].internal_size
        cursor.execute("SELECT 2 AS later")  # read after the cursor moved on: still its own
        assert [c.name for c in described] == ["one", "two", "three", "four"]
        assert [c.name for c in cursor.description] == ["later"]
        cursor.execute("SELECT")  # rows, and no column
        assert cursor.description is not None and len(cursor.description) == 0
        cursor.execute("SET LOCAL work_mem = '4MB'")  # no rows
        assert cursor.description is None
        conn.rollback()
        # Through SQLAlchemy: a statement run before finds its columns by name as the first
        # did, from the compiled statement's cache, and its description is never made.
        made: list[int] = []
        making = _Description._made

        def counted(self: _Description) -> Any:
            made.append(len(self))
            return making(self)

        monkeypatch.setattr(_Description, "_made", counted)
        statement = sa.select(sa.literal(1).label("one"), sa.literal("x").label("two"))
        assert conn.execute(statement).mappings().one() == {"one": 1, "two": "x"}
        assert made  # the first run: SQLAlchemy reads the columns' names
        made.clear()
        for _ in range(3):
            assert conn.execute(statement).mappings().one() == {"one": 1, "two": "x"}
        assert made == []


def test_a_slow_statement_is_cancelled_and_the_connection_stays_usable(make_app: Any) -> None:
    app = make_app(DATABASE_STATEMENT_TIMEOUT=0.2)
    with app.app_context(), db.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            pytest.skip("statement_timeout is PostgreSQL's")
        with pytest.raises(sa.exc.OperationalError, match="statement timeout"):
            conn.exec_driver_sql("SELECT pg_sleep(2)")
        conn.rollback()
        assert not conn.invalidated
        assert conn.exec_driver_sql("SELECT 1").scalar() == 1


def test_migrations_run_without_the_statement_limits(
    make_app: Any, owner_engine: tuple[sa.Engine, str]
) -> None:
    owner_url = owner_engine[0].url
    if owner_url.get_backend_name() != "postgresql":
        pytest.skip("the limits lifted for migrations are PostgreSQL's")
    app = make_app(
        fresh=True,
        SQLALCHEMY_DATABASE_URI=owner_url.render_as_string(hide_password=False),
        DATABASE_STATEMENT_TIMEOUT=0.2,
    )
    seen: list[tuple[str, float | None]] = []
    with app.app_context():

        @sa.event.listens_for(db.engine, "before_cursor_execute")
        def observe(_conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            if "alembic_version" in statement and not seen:
                timeout = cursor.connection.execute("SHOW statement_timeout").fetchone()[0]
                seen.append((timeout, cursor.connection.limit))

        upgrade(directory=MIGRATIONS)  # already at head: only reads the version table
        assert seen == [("0", None)]
        # The lifted connection never goes back to the pool.
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "200ms"
            assert conn.connection.dbapi_connection.limit == 0.7


# --- SQLite -------------------------------------------------------------------------------


def test_sqlite_busy_timeout_follows_the_statement_timeout(make_app: Any) -> None:
    app = make_app(DATABASE_STATEMENT_TIMEOUT=1.5)
    with app.app_context(), db.engine.connect() as conn:
        if conn.dialect.name != "sqlite":
            pytest.skip("SQLite's busy timeout")
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 1500
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


# --- /healthz -----------------------------------------------------------------------------


@pytest.mark.parametrize("slug", [None, "acme", "nonexistent"])
def test_healthz_touches_no_dependency(app: Flask, acme_user: User, slug: str | None) -> None:
    """Not the database (tenancy, login guard, principal loader) and not the throttle."""
    client = logged_in(app, acme_user) if slug == "acme" else host_client(app, slug)
    checkouts: list[object] = []
    throttle = app.extensions["portal_throttle"]
    with app.app_context():
        sa.event.listen(db.engine, "checkout", lambda *args: checkouts.append(args))
    app.extensions["portal_throttle"] = None  # any use would raise
    try:
        assert client.get("/healthz").json == {"status": "ok"}
    finally:
        app.extensions["portal_throttle"] = throttle
    assert checkouts == []


# --- Redis --------------------------------------------------------------------------------


@pytest.fixture
def redis_proxy(redis_url: str) -> Iterator[FaultProxy]:
    parts = urlsplit(redis_url)
    with FaultProxy(parts.hostname or "127.0.0.1", parts.port or 6379) as proxy:
        yield proxy


@pytest.fixture
def throttled(
    make_app: Any, redis_url: str, redis_proxy: FaultProxy, acme: Partner
) -> Iterator[Flask]:
    """An app counting failed sign-ins in Redis through the proxy, under its own key prefix."""
    parts = urlsplit(redis_url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@" if credentials else ""
    proxied_url = urlunsplit(parts._replace(netloc=f"{netloc}127.0.0.1:{redis_proxy.port}"))
    prefix = f"portal-test-{secrets.token_hex(4)}"
    yield make_app(fresh=True, RATELIMIT_STORAGE_URL=proxied_url, RATELIMIT_KEY_PREFIX=prefix)
    with redis.Redis.from_url(redis_url) as client:
        for key in client.scan_iter(f"*{prefix}*"):
            client.delete(key)


def throttle_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "portal.throttle"]


def test_refused_redis_still_throttles_per_process_and_says_so(
    throttled: Flask,
    redis_proxy: FaultProxy,
    acme_user: User,
    caplog: pytest.LogCaptureFixture,
    frozen_clock: Any,
) -> None:
    caplog.set_level(logging.INFO)
    redis_proxy.refuse()
    assert fail(throttled, "acme", acme_user.email, 5) == [422] * 5
    refused, seconds = timed_login(host_client(throttled, "acme"), acme_user.email, PASSWORD)
    assert refused.status_code == 429 and seconds < BUDGET
    [warning] = throttle_records(caplog)
    assert warning.levelname == "WARNING"
    assert "counting failed sign-ins and mail requests in this process's memory" in (
        warning.getMessage()
    )
    assert not [r for r in caplog.records if r.exc_info]  # no tracebacks anywhere
    ready = host_client(throttled, None).get("/readyz")
    assert ready.status_code == 200
    assert ready.json == {"status": "degraded", "database": "ok", "ratelimit": "degraded"}
    assert len(throttle_records(caplog)) == 1  # still one warning for the whole outage

    # Redis answers again: after the cool-off it is used again, and that is logged once.
    redis_proxy.forward()
    frozen_clock.advance(timedelta(seconds=31))
    ready = host_client(throttled, None).get("/readyz")
    assert ready.json == {"status": "ok", "database": "ok", "ratelimit": "ok"}
    recovered = throttle_records(caplog)[1:]
    assert [r.levelname for r in recovered] == ["INFO"]
    assert "answers again" in recovered[0].getMessage()


def test_silent_redis_keeps_sign_in_fast_and_throttled(
    throttled: Flask, redis_proxy: FaultProxy, acme_user: User, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    assert fail(throttled, "acme", acme_user.email, 1) == [422]  # a live Redis connection
    redis_proxy.silent()
    client = host_client(throttled, "acme")
    signed_in, seconds = timed_login(client, acme_user.email, PASSWORD)
    assert signed_in.status_code == 302 and seconds < BUDGET
    assert fail(throttled, "acme", acme_user.email, 5) == [422] * 5
    refused, seconds = timed_login(host_client(throttled, "acme"), acme_user.email, PASSWORD)
    assert refused.status_code == 429 and seconds < BUDGET
    assert [r.levelname for r in throttle_records(caplog)] == ["WARNING"]
    assert_healthz_quick(client)
    ready, seconds = timed(host_client(throttled, None), "/readyz")
    assert ready.status_code == 200 and ready.json["ratelimit"] == "degraded"


SLOW_REDIS_HOST = "slow-redis.portal.test"


def test_a_redis_name_the_resolver_does_not_answer_keeps_sign_in_fast_and_throttled(
    make_app: Any,
    redis_url: str,
    acme_user: User,
    caplog: pytest.LogCaptureFixture,
    frozen_clock: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Redis is named, and the name's lookup hangs: sign-in waits only the connect timeout
    (0.5 s), not the resolver's retries, and counts in memory meanwhile; once the name
    answers, the counters are shared again, through the address it gave."""
    caplog.set_level(logging.INFO)
    parts = urlsplit(redis_url)
    held = hold_lookup(monkeypatch, SLOW_REDIS_HOST, parts.hostname or "127.0.0.1")
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@" if credentials else ""
    named = urlunsplit(parts._replace(netloc=f"{netloc}{SLOW_REDIS_HOST}:{parts.port or 6379}"))
    prefix = f"portal-test-{secrets.token_hex(4)}"
    app = make_app(fresh=True, RATELIMIT_STORAGE_URL=named, RATELIMIT_KEY_PREFIX=prefix)
    try:
        signed_in, seconds = timed_login(host_client(app, "acme"), acme_user.email, PASSWORD)
        assert signed_in.status_code == 302 and seconds < BUDGET
        assert held.entered.is_set() and not held.finished.is_set()
        assert fail(app, "acme", acme_user.email, 5) == [422] * 5
        refused, seconds = timed_login(host_client(app, "acme"), acme_user.email, PASSWORD)
        assert refused.status_code == 429 and seconds < BUDGET  # counted in memory meanwhile
        assert [r.levelname for r in throttle_records(caplog)] == ["WARNING"]
    finally:
        held.release.set()
    assert held.finished.wait(WAIT)  # the late lookup ends on its own thread, unwaited
    frozen_clock.advance(timedelta(seconds=31))
    ready = host_client(app, None).get("/readyz")
    assert ready.json == {"status": "ok", "database": "ok", "ratelimit": "ok"}
    with redis.Redis.from_url(redis_url) as client:
        for key in client.scan_iter(f"*{prefix}*"):
            client.delete(key)
