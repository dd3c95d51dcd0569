"""Configuration from PORTAL_* variables; production refuses to start half-configured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from werkzeug.middleware.proxy_fix import ProxyFix

import portal.config
from portal import create_app
from portal.config import ConfigError, load_config


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """A controlled environment: no PORTAL_* variable but the ones the test sets, and an
    instance folder of the test's own (development keeps its keys there)."""
    for name in list(os.environ):
        if name.startswith("PORTAL_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(portal.config, "INSTANCE", tmp_path / "instance")
    return monkeypatch


@pytest.fixture
def development(environ: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    environ.setenv("PORTAL_ENV", "development")
    return environ


@pytest.fixture
def production(environ: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """Everything production needs, PORTAL_ENV left unset: tests take away or spoil one."""
    environ.setenv("PORTAL_SECRET_KEY", "kT9-x2Qa7LmPz0Rv_4WbYc8NdE5fGh1J")
    environ.setenv("PORTAL_SERVER_NAME", "portal.example.com")
    # A file of the test's own: production on SQLite only when someone writes so explicitly.
    environ.setenv("PORTAL_DATABASE_URL", f"sqlite:///{tmp_path / 'prod.sqlite3'}")
    return environ


def test_development_defaults_need_nothing_installed(development: pytest.MonkeyPatch) -> None:
    config = load_config()
    assert config["PORTAL_ENV"] == "development"
    assert config["SERVER_NAME"] == "localhost:5000"
    assert config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
    assert config["SQLALCHEMY_DATABASE_URI"].endswith("instance/portal.sqlite3")
    assert config["SECRET_KEY"]
    assert config["TRUSTED_HOSTS"] == ["localhost", ".localhost"]
    assert config["SESSION_COOKIE_SECURE"] is False


def test_production_is_the_default(production: pytest.MonkeyPatch) -> None:
    """A forgotten PORTAL_ENV serves no developer tools and only Secure cookies."""
    app = create_app()
    assert app.config["PORTAL_ENV"] == "production"
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert "mail_dev.outbox" not in app.view_functions
    outbox = app.test_client().get("/dev/outbox", base_url="https://portal.example.com")
    assert outbox.status_code == 404


@pytest.mark.parametrize(
    "unset,missing",
    [
        (["SECRET_KEY"], "PORTAL_SECRET_KEY"),
        (["SERVER_NAME"], "PORTAL_SERVER_NAME"),
        (["DATABASE_URL"], "PORTAL_DATABASE_URL"),
        (["SECRET_KEY", "SERVER_NAME"], "PORTAL_SECRET_KEY and PORTAL_SERVER_NAME"),
        (
            ["SECRET_KEY", "SERVER_NAME", "DATABASE_URL"],
            "PORTAL_SECRET_KEY, PORTAL_SERVER_NAME and PORTAL_DATABASE_URL",
        ),
    ],
)
def test_production_without_its_settings_refuses(
    production: pytest.MonkeyPatch, unset: list[str], missing: str
) -> None:
    production.setenv("PORTAL_ENV", "production")
    for name in unset:
        production.delenv(f"PORTAL_{name}")
    with pytest.raises(ConfigError) as refused:
        create_app()
    assert str(refused.value) == (
        f"PORTAL_ENV=production needs {missing} to be set; refusing to start."
    )


def test_production_never_falls_back_to_sqlite(production: pytest.MonkeyPatch) -> None:
    production.delenv("PORTAL_DATABASE_URL")
    with pytest.raises(ConfigError, match="needs PORTAL_DATABASE_URL to be set"):
        create_app()
    production.setenv("PORTAL_ENV", "development")
    assert create_app().config["SQLALCHEMY_DATABASE_URI"].endswith("instance/portal.sqlite3")


@pytest.mark.parametrize("length", [1, 16, 31])
def test_production_refuses_a_short_secret_key(production: pytest.MonkeyPatch, length: int) -> None:
    production.setenv("PORTAL_SECRET_KEY", "k" * length)
    with pytest.raises(ConfigError) as refused:
        create_app()
    assert str(refused.value).startswith(
        f"PORTAL_SECRET_KEY must be at least 32 characters in production (it has {length});"
    )


def test_production_accepts_a_random_key_of_32_characters(production: pytest.MonkeyPatch) -> None:
    key = "kT9-x2Qa7LmPz0Rv_4WbYc8NdE5fGh1J"
    production.setenv("PORTAL_SECRET_KEY", key)
    assert create_app().config["SECRET_KEY"] == key


@pytest.mark.parametrize("key", [" " * 40, "a" * 64, "abab" * 12], ids=["spaces", "one", "two"])
def test_production_refuses_a_long_key_of_few_characters(
    production: pytest.MonkeyPatch, key: str
) -> None:
    production.setenv("PORTAL_SECRET_KEY", key)
    with pytest.raises(ConfigError, match="different characters; it must be random"):
        create_app()


def test_an_unset_environment_says_it_means_production(environ: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as refused:
        create_app()
    assert "PORTAL_ENV is unset, which means production" in str(refused.value)
    assert "PORTAL_ENV=development" in str(refused.value)


def test_production_start_up_message_is_clear() -> None:
    env = {"PATH": "/usr/bin:/bin"}  # no PORTAL_ENV at all: production
    result = subprocess.run(
        [sys.executable, "-c", "import wsgi"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert (
        "PORTAL_ENV=production needs PORTAL_SECRET_KEY, PORTAL_SERVER_NAME and"
        " PORTAL_DATABASE_URL to be set" in result.stderr
    )


def test_production_cookies_are_secure_and_host_prefixed(
    production: pytest.MonkeyPatch,
) -> None:
    production.setenv("PORTAL_SERVER_NAME", "Portal.Example.com")
    config = load_config()
    assert config["SERVER_NAME"] == "portal.example.com"
    assert config["SESSION_COOKIE_SECURE"] is True
    assert config["AUTH_COOKIE_NAME"].startswith("__Host-")
    assert config["SESSION_COOKIE_NAME"].startswith("__Host-")
    assert config["PREFERRED_URL_SCHEME"] == "https"


def test_postgres_urls_use_psycopg(development: pytest.MonkeyPatch) -> None:
    development.setenv("PORTAL_DATABASE_URL", "postgresql://u@db/portal")
    assert load_config()["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@db/portal"


def test_unknown_environment_is_refused(development: pytest.MonkeyPatch) -> None:
    development.setenv("PORTAL_ENV", "staging")
    with pytest.raises(ConfigError, match="PORTAL_ENV"):
        load_config()


def test_database_timeouts_reach_the_engine(development: pytest.MonkeyPatch) -> None:
    development.setenv("PORTAL_DATABASE_URL", "postgresql://u@db/portal")
    development.setenv("PORTAL_DATABASE_CONNECT_TIMEOUT", "4")
    development.setenv("PORTAL_DATABASE_STATEMENT_TIMEOUT", "5")
    development.setenv("PORTAL_DATABASE_LOCK_TIMEOUT", "1.5")
    development.setenv("PORTAL_DATABASE_POOL_TIMEOUT", "2.5")
    config = load_config()
    assert config["SQLALCHEMY_ENGINE_OPTIONS"] == {
        "pool_pre_ping": True,
        "pool_timeout": 3,  # SQLAlchemy counts whole seconds
        "connect_args": {
            "connect_timeout": 4,
            "options": "-c statement_timeout=5000 -c lock_timeout=1500"
            " -c plan_cache_mode=force_custom_plan",
        },
    }
    assert config["DATABASE_STATEMENT_TIMEOUT"] == 5.0


def test_default_timeouts(development: pytest.MonkeyPatch) -> None:
    development.setenv("PORTAL_DATABASE_URL", "postgresql://u@db/portal")
    config = load_config()
    assert config["SQLALCHEMY_ENGINE_OPTIONS"]["pool_timeout"] == 3
    assert config["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"] == {
        "connect_timeout": 2,
        "options": "-c statement_timeout=3000 -c lock_timeout=2000"
        " -c plan_cache_mode=force_custom_plan",
    }
    assert (config["RATELIMIT_CONNECT_TIMEOUT"], config["RATELIMIT_TIMEOUT"]) == (0.5, 0.5)
    assert config["RATELIMIT_RETRY_AFTER"] == 30


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_STATEMENT_TIMEOUT", "soon"),
        ("DATABASE_STATEMENT_TIMEOUT", "0"),
        ("DATABASE_CONNECT_TIMEOUT", "1"),  # libpq waits at least 2 s whatever it is told
        ("RATELIMIT_TIMEOUT", "-1"),
        ("RATELIMIT_RETRY_AFTER", "nan"),
    ],
)
def test_a_timeout_that_is_not_one_stops_start_up(
    development: pytest.MonkeyPatch, name: str, value: str
) -> None:
    development.setenv(f"PORTAL_{name}", value)
    with pytest.raises(ConfigError, match=f"PORTAL_{name} must be a number of seconds"):
        load_config()


@pytest.mark.parametrize(
    "name",
    [
        "LOGIN_LIMIT_PER_ACCOUNT",
        "LOGIN_LIMIT_PER_ACCOUNT_ANY_IP",
        "LOGIN_LIMIT_PER_IP",
        "MAIL_LIMIT_PER_IP",
        "MAIL_LIMIT_PER_PARTNER",
        "MAIL_LIMIT_PER_ADDRESS",
        "SIGNUP_NOTICE_PER_ADDRESS",
    ],
)
def test_every_rate_limit_is_a_setting_checked_at_start_up(
    development: pytest.MonkeyPatch, name: str
) -> None:
    development.setenv(f"PORTAL_{name}", "7/2minutes")
    assert load_config()[name] == "7/2minutes"
    development.setenv(f"PORTAL_{name}", "lots")
    with pytest.raises(ConfigError, match=f"PORTAL_{name} must be a rate like 5/5minutes"):
        load_config()


@pytest.mark.parametrize("env", ["development", "testing", "production"])
def test_no_proxy_is_trusted_by_default(production: pytest.MonkeyPatch, env: str) -> None:
    production.setenv("PORTAL_ENV", env)
    app = create_app()
    assert app.config["PROXY_FIX"] == 0
    assert not isinstance(app.wsgi_app, ProxyFix)


@pytest.mark.parametrize("value", ["1", "2"])
def test_proxy_fix_trusts_the_number_of_proxies_given(
    production: pytest.MonkeyPatch, value: str
) -> None:
    production.setenv("PORTAL_PROXY_FIX", value)
    proxy = create_app().wsgi_app
    assert isinstance(proxy, ProxyFix)
    assert (proxy.x_for, proxy.x_proto, proxy.x_host) == (int(value),) * 3
    assert (proxy.x_port, proxy.x_prefix) == (0, 0)


@pytest.mark.parametrize("value", ["yes", "true", "-1", "1.5", "0x1", " "])
def test_a_proxy_count_that_is_not_one_stops_start_up(
    production: pytest.MonkeyPatch, value: str
) -> None:
    production.setenv("PORTAL_PROXY_FIX", value)
    with pytest.raises(ConfigError, match="PORTAL_PROXY_FIX must be the number of trusted"):
        create_app()


def test_request_bodies_are_limited_to_one_mebibyte_unless_configured(
    environ: pytest.MonkeyPatch,
) -> None:
    assert load_config({"PORTAL_ENV": "testing"})["MAX_CONTENT_LENGTH"] == 1024 * 1024
    environ.setenv("PORTAL_MAX_CONTENT_LENGTH", "2097152")
    assert load_config({"PORTAL_ENV": "testing"})["MAX_CONTENT_LENGTH"] == 2 * 1024 * 1024
    for value in ("0", "1MB", "-5"):
        environ.setenv("PORTAL_MAX_CONTENT_LENGTH", value)
        with pytest.raises(ConfigError, match="PORTAL_MAX_CONTENT_LENGTH must be a number of"):
            load_config({"PORTAL_ENV": "testing"})


def test_warming_up_compiles_every_template_reads_the_rules_and_keeps_no_connection(
    tmp_path,
) -> None:
    """What gunicorn's master does before it forks a worker (gunicorn.conf.py, `when_ready`):
    a new worker's first request to a page compiled its templates (20-170 ms) and the first
    that named a device read ua-parser's rules (a third of a second); a full garbage
    collection walked every object of the app (about 100 ms); and a connection the master
    kept would be shared by every worker. In a fresh interpreter, as the master has it."""
    env = {
        "PATH": "/usr/bin:/bin",
        "PORTAL_ENV": "development",
        "PORTAL_DATABASE_URL": f"sqlite:///{tmp_path / 'portal.sqlite3'}",
    }
    check = """
import gc, json, ua_parser, wsgi
from sqlalchemy import text
from portal.extensions import db
from portal.theming import every_template
from portal.warmup import warm
app = wsgi.app
with app.app_context():
    with db.engine.connect() as connection:  # as the check of row-level security does
        connection.execute(text("SELECT 1"))
    kept_before = db.engine.pool.checkedin()
names = every_template(app)
parser_before = "parser" in vars(ua_parser)
warm(app)
with app.app_context():
    kept_after = db.engine.pool.checkedin()
cached = {key[1] for key in app.jinja_env.cache.keys()}
print(json.dumps({
    "names": len(names), "themes": sorted({n.split("/")[0] for n in names}),
    "missing": sorted(set(names) - cached), "parser": [parser_before, "parser" in vars(ua_parser)],
    "kept": [kept_before, kept_after], "frozen": gc.get_freeze_count(),
}))
"""
    result = subprocess.run(
        [sys.executable, "-c", check], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    warmed = json.loads(result.stdout.strip().splitlines()[-1])
    assert warmed["themes"] == ["@default", "@midnight", "@sidebar"]
    assert warmed["names"] > 250  # every page, mail and piece, three times
    assert warmed["missing"] == []  # all in Jinja's cache at once: none evicted
    assert warmed["parser"] == [False, True]
    assert warmed["kept"] == [1, 0]
    assert warmed["frozen"] > 50_000
    assert "warmed up: " in result.stderr and " templates compiled" in result.stderr
