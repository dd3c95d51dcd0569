"""Fixtures: a migrated database per test run (SQLite or PostgreSQL), apps, host clients."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import limits.storage.memory
import pytest
import redis
import sqlalchemy as sa
from flask import Flask, g
from flask.testing import FlaskClient, FlaskCliRunner
from flask_migrate import upgrade

from portal import create_app
from portal.clock import clock
from portal.extensions import db
from portal.features.services import switch_feature
from portal.roles.models import Role
from portal.tenancy.models import Partner, Theme
from portal.tenancy.scope import partner_scope, unscoped
from portal.users.models import User
from portal.users.services import create_user

pytest_plugins = ["browser", "oidc"]

SERVER_NAME = "localhost"
PASSWORD = "correct-horse-battery"
FROZEN_AT = datetime(2026, 3, 2, 9, 0, 0)
CSRF_RE = re.compile(r'"X-CSRFToken": "([^"]+)"')  # every page's <body hx-headers>


def _backend() -> str:
    backend = os.environ.get("PORTAL_TEST_DB", "sqlite")
    if backend not in ("sqlite", "postgres"):
        raise pytest.UsageError("PORTAL_TEST_DB must be sqlite or postgres")
    return backend


def pytest_report_header(config: pytest.Config) -> str:
    return f"portal database backend: {_backend()}"


APP_GRANTS = (
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
    "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
    "GRANT EXECUTE ON FUNCTION public.user_search_ids(text, text, integer) TO {role}",
)


def hand_search_function_over(superuser: sa.Connection, owner: str) -> None:
    """The user search's function (migration 0018) to its own BYPASSRLS role, as
    deploy/postgres-roles.sql does: the suite tests the function as production runs it, where
    its own partner filter is all that holds what it returns."""
    search_role = f"{owner.removesuffix('_owner')}_search"
    for statement in (
        f'GRANT USAGE ON SCHEMA public TO "{search_role}"',
        f'GRANT SELECT ON public.users TO "{search_role}"',
        f'ALTER FUNCTION public.user_search_ids(text, text, integer) OWNER TO "{search_role}"',
    ):
        superuser.execute(sa.text(statement))


def _postgres_database() -> Iterator[tuple[str, str, str]]:
    """A throw-away database: (owner URL for migrations, app URL, URL to empty it between tests).

    Both roles are ordinary (not superuser, not BYPASSRLS). The owner runs the migrations; the
    app connects as another role with only SELECT, INSERT, UPDATE and DELETE, so it can neither
    bypass nor switch off row-level security, and every PostgreSQL test runs under it. Only the
    suite's own clean-up between tests connects as the server's superuser, which row-level
    security does not hold, so a DELETE empties every partner's rows. A third role, NOLOGIN
    and BYPASSRLS, owns the user search's function only (`hand_search_function_over`); the
    owner is a member, so that migrations may replace or drop it.
    """
    base = os.environ.get("PORTAL_TEST_DATABASE_URL")
    if not base:
        pytest.exit("PORTAL_TEST_DB=postgres needs PORTAL_TEST_DATABASE_URL", returncode=4)
    url = sa.engine.make_url(base).set(drivername="postgresql+psycopg")
    name = f"portal_test_{secrets.token_hex(4)}"
    owner, app_role, search_role = f"{name}_owner", name, f"{name}_search"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for role in (owner, app_role):
                conn.execute(sa.text(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOBYPASSRLS'))
            conn.execute(
                sa.text(f'CREATE ROLE "{search_role}" NOLOGIN NOSUPERUSER NOINHERIT BYPASSRLS')
            )
            conn.execute(sa.text(f'GRANT "{search_role}" TO "{owner}"'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}" OWNER "{owner}"'))
            # A crash may lose a test database's last commits; nothing else changes, and
            # every commit stops waiting for the disk.
            conn.execute(sa.text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    except sa.exc.OperationalError as exc:
        pytest.exit(f"PostgreSQL at {url.render_as_string()} is unreachable: {exc}", returncode=4)

    def as_role(role: str) -> str:
        return url.set(database=name, username=role, password=None).render_as_string(
            hide_password=False
        )

    superuser = url.set(database=name).render_as_string(hide_password=False)
    try:
        yield as_role(owner), as_role(app_role), superuser
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            for role in (app_role, owner, search_role):
                conn.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


def _migrate(url: str) -> None:
    migrator = create_app(_config(url))
    with migrator.app_context():
        upgrade(directory=str(Path(__file__).parent.parent / "migrations"))
        db.engine.dispose()


@pytest.fixture(scope="session")
def owner_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[sa.Engine, str]]:
    """The migrated database: an engine that empties it between tests, and the app's URL."""
    if _backend() == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'portal.sqlite3'}"
        _migrate(url)
        engine = sa.create_engine(url)
        yield engine, url
        engine.dispose()
        return
    databases = _postgres_database()
    owner_url, app_url, superuser_url = next(databases)
    _migrate(owner_url)
    owner = sa.create_engine(owner_url)
    with owner.begin() as conn:
        role = sa.engine.make_url(app_url).username
        for grant in APP_GRANTS:
            conn.execute(sa.text(grant.format(role=f'"{role}"')))
    owner.dispose()
    engine = sa.create_engine(superuser_url)
    with engine.begin() as conn:
        hand_search_function_over(conn, sa.engine.make_url(owner_url).username)
    yield engine, app_url
    engine.dispose()
    next(databases, None)


@pytest.fixture(scope="session")
def database_url(owner_engine: tuple[sa.Engine, str]) -> str:
    """The app's URL: on PostgreSQL an ordinary, non-owner role held to row-level security."""
    return owner_engine[1]


def _config(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "PORTAL_ENV": "testing",
        "TESTING": True,
        "SECRET_KEY": "test-secret-key-kT9-x2Qa7LmPz0Rv_4WbYc8NdE5fGh1J",  # fit for production
        "SERVER_NAME": SERVER_NAME,
        "SQLALCHEMY_DATABASE_URI": url,
        "PASSWORD_HASH_PROFILE": "cheapest",
        "ANSWER_FLOOR": 0,  # tests/test_mail_limits.py checks the floor with its own app
        # The tests' identity provider runs in this process, on a machine running both
        # databases' passes at once: more than production's 3 s to answer. The tests of a
        # provider that goes quiet set their own short budget.
        "OIDC_TIMEOUT": 15,
        **extra,
    }


class CommandRunner(FlaskCliRunner):
    """Runs a command as `flask` does: in an app context of its own (a fresh `g`, its own
    database session), never inside the test's observing context, whose unscoped() would
    hide a command that forgot to name its partner."""

    def invoke(self, cli: Any = None, args: Any = None, **kwargs: Any) -> Any:
        with self.app.app_context():
            return super().invoke(cli, args, **kwargs)


def _build(url: str, **extra: Any) -> Flask:
    app = create_app(_config(url, **extra))
    app.test_cli_runner_class = CommandRunner
    return app


class AppPool:
    """App instances kept for the whole run, handed out afresh to every test.

    Building an app (its URL map, its Jinja environment compiling every template it renders)
    costs more than most tests; so instances are reused across tests, keyed by their config.
    Within one test every instance is distinct, so "another process" really is another
    instance with its own engine and connections. Per-test state an instance keeps (the
    in-memory throttle counts) is reset when it is handed out again.
    """

    def __init__(self, database_url: str, **defaults: Any) -> None:
        self.database_url = database_url
        self.defaults = defaults
        self.idle: dict[tuple, list[Flask]] = {}
        self.lent: list[tuple[tuple, Flask]] = []
        self.fresh: list[Flask] = []
        self.configs: dict[int, dict[str, Any]] = {}

    def get(self, *, fresh: bool = False, **extra: Any) -> Flask:
        extra = {**self.defaults, **extra}
        if fresh:  # the test changes the app itself (adds routes, rewrites its config)
            app = _build(self.database_url, **extra)
            self.fresh.append(app)
            return app
        key = tuple(sorted((k, repr(v)) for k, v in extra.items()))
        idle = self.idle.setdefault(key, [])
        if idle:
            app = idle.pop()
        else:
            app = _build(self.database_url, **extra)
            self.configs[id(app)] = dict(app.config)
        app.extensions["portal_throttle"].reset()
        self.lent.append((key, app))
        return app

    def give_back(self) -> None:
        for key, app in self.lent:
            if dict(app.config) != self.configs[id(app)]:
                self.configs.pop(id(app))
                _dispose(app)
                pytest.fail("a test changed a shared app's config: use make_app(fresh=True)")
            self.idle[key].append(app)
        self.lent.clear()
        for app in self.fresh:
            _dispose(app)
        self.fresh.clear()

    def close(self) -> None:
        self.give_back()
        for apps in self.idle.values():
            for app in apps:
                _dispose(app)


def _dispose(app: Flask) -> None:
    with app.app_context():
        db.engine.dispose()


@pytest.fixture(scope="session")
def app_pool(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppPool]:
    # Development apps mount the demo provider, whose key is kept: in the run's own folder,
    # not the checkout's instance/.
    key_file = tmp_path_factory.mktemp("instance") / "demo_idp_key.json"
    pool = AppPool(database_url, DEMO_IDP_KEY_FILE=str(key_file))
    yield pool
    pool.close()


@pytest.fixture
def make_app(app_pool: AppPool) -> Iterator[Any]:
    """App instances on the test database (a second worker, a live server); `fresh=True` for
    one the test may change."""
    yield app_pool.get
    app_pool.give_back()


@pytest.fixture
def data(make_app: Any, owner_engine: tuple[sa.Engine, str]) -> Iterator[Flask]:
    """The test's own app context, standing for another process: setup and assertions.

    Requests go to a separate app instance (`app`), so they get fresh contexts, sessions and
    `g`, just as in production; nothing the test holds leaks into a request or back.
    """
    setup = make_app()
    # The test observes every partner (reading what is stored, refreshing what it holds);
    # the code under test runs in its own contexts, scoped as in production.
    with setup.app_context(), unscoped():
        yield setup
        db.session.remove()
        _wipe(owner_engine[0])


@pytest.fixture
def app(data: Flask, make_app: Any) -> Flask:
    """The application under test, served to the host clients."""
    return make_app()


def _wipe(engine: sa.Engine) -> None:
    """Empty every table, children first (a DELETE of a few rows is far quicker than TRUNCATE)."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # the audit table is append-only otherwise
            conn.execute(sa.text("SELECT set_config('portal.audit_maintenance', 'on', true)"))
        for table in reversed(db.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture(autouse=True)
def frozen_clock() -> Iterator[Any]:
    """Every test runs at a fixed instant; tests move it with `frozen_clock.advance`."""
    clock.freeze(FROZEN_AT)
    yield clock
    clock.unfreeze()


@pytest.fixture
def windows_follow_the_clock(monkeypatch: pytest.MonkeyPatch, frozen_clock: Any) -> Any:
    """The throttle's in-memory counts read the test's clock, so a test can let windows slide."""
    epoch = datetime(1970, 1, 1)
    now = SimpleNamespace(time=lambda: (frozen_clock.now() - epoch).total_seconds())
    monkeypatch.setattr(limits.storage.memory, "time", now)
    return frozen_clock


class HostClient(FlaskClient):
    """A test client bound to one host (root domain or one partner's subdomain)."""

    host: str = SERVER_NAME

    def open(self, *args: Any, **kwargs: Any) -> Any:
        if args and isinstance(args[0], str):
            kwargs.setdefault("base_url", f"http://{self.host}")
        return super().open(*args, **kwargs)

    def csrf_token(self, path: str = "/login") -> str:
        page = self.get(path, follow_redirects=True)
        match = CSRF_RE.search(page.get_data(as_text=True))
        assert match, f"no CSRF token on {path}"
        return match.group(1)

    def login(self, email: str, password: str = PASSWORD, **kwargs: Any) -> Any:
        token = self.csrf_token()
        return self.post(
            "/login", data={"email": email, "password": password, "csrf_token": token}, **kwargs
        )

    def post_form(self, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """POST with the CSRF token the page's forms carry."""
        token = self.csrf_token()
        return self.post(path, data={**(data or {}), "csrf_token": token}, **kwargs)


def host_client(app: Flask, slug: str | None) -> HostClient:
    app.test_client_class = HostClient
    client = app.test_client()
    client.host = f"{slug}.{SERVER_NAME}" if slug else SERVER_NAME
    return client


@pytest.fixture
def root(app: Flask) -> HostClient:
    return host_client(app, None)


@pytest.fixture
def acme_client(app: Flask, acme: Partner) -> HostClient:
    return host_client(app, "acme")


@pytest.fixture
def globex_client(app: Flask, globex: Partner) -> HostClient:
    return host_client(app, "globex")


def make_partner(slug: str, name: str, theme: Theme | None = None) -> Partner:
    partner = Partner(slug=slug, name=name, theme_settings=(theme or Theme()).to_dict())
    db.session.add(partner)
    db.session.commit()
    return partner


def make_user(
    partner: Partner, email: str, *, role: Role = Role.BASIC, password: str = PASSWORD, **kw: Any
) -> User:
    with partner_scope(partner):
        user = create_user(email, role=role, password=password, actor=None, source="test", **kw)
        db.session.commit()
    return user


@pytest.fixture
def acme(app: Flask) -> Partner:
    return make_partner("acme", "Acme Corp", Theme(primary_color="#2563eb"))


@pytest.fixture
def globex(app: Flask) -> Partner:
    return make_partner("globex", "Globex", Theme(base="midnight", primary_color="#10b981"))


@pytest.fixture
def acme_user(acme: Partner) -> User:
    return make_user(acme, "alice@acme.test", display_name="Alice Acme")


@pytest.fixture
def globex_user(globex: Partner) -> User:
    return make_user(globex, "gus@globex.test", display_name="Gus Globex")


@contextmanager
def outside_every_partner() -> Iterator[None]:
    """Neither a partner nor unscoped(): where the portal's default-deny applies."""
    previous, g.partner = g.get("partner"), None
    was_unscoped = g.pop("tenancy_unscoped", None)
    try:
        yield
    finally:
        g.partner = previous
        if was_unscoped:
            g.tenancy_unscoped = was_unscoped


@contextmanager
def across_partners() -> Iterator[None]:
    """Read as the test's observer, across partners, also from inside a test's partner_scope.

    Row-level security on PostgreSQL hides another partner's rows from a partner's scope even
    when an expired instance is merely refreshed; the observer steps outside the scope.
    """
    previous, g.partner = g.get("partner"), None
    try:
        with unscoped():
            yield
    finally:
        g.partner = previous


def rows(model: type, **filters: Any) -> list[Any]:
    """Every row of `model` across partners, oldest first, for assertions on what is stored."""
    db.session.flush()  # pending rows belong to the scope they were made in
    db.session.expire_all()
    with across_partners():
        stmt = sa.select(model).filter_by(**filters).order_by(*sa.inspect(model).primary_key)
        return list(db.session.execute(stmt).scalars())


def logged_in(app: Flask, user: User) -> HostClient:
    """A client on the user's partner host, logged in as that user."""
    with across_partners():
        slug, email = user.partner.slug, user.email
    client = host_client(app, slug)
    response = client.login(email)
    assert response.status_code == 302, response.text
    return client


@pytest.fixture
def acme_admin(acme: Partner) -> User:
    return make_user(acme, "root@acme.test", role=Role.ADMIN, display_name="Ada Admin")


@pytest.fixture
def redis_url() -> str:
    """The Redis server of PORTAL_TEST_REDIS_URL; skipped when absent, unless required."""
    url = os.environ.get("PORTAL_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        reason = f"Redis at {url} is unreachable ({exc})"
        if os.environ.get("PORTAL_REQUIRE_REDIS") == "1":
            pytest.fail(f"{reason}, and PORTAL_REQUIRE_REDIS=1", pytrace=False)
        pytest.skip(reason)
    return url


def set_feature(partner: Partner, key: str, on: bool = True) -> None:
    """Switch a feature for a partner the way its admin would (audited service call)."""
    with partner_scope(partner):
        switch_feature(key, on)
        db.session.commit()
