"""Configuration from PORTAL_* variables; production refuses to start half-configured."""

from __future__ import annotations

import subprocess
import sys

import pytest

from portal import create_app
from portal.config import ConfigError, load_config


def test_development_defaults_need_nothing_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ENV", "SECRET_KEY", "DATABASE_URL", "SERVER_NAME"):
        monkeypatch.delenv(f"PORTAL_{name}", raising=False)
    config = load_config()
    assert config["PORTAL_ENV"] == "development"
    assert config["SERVER_NAME"] == "localhost:5000"
    assert config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
    assert config["SQLALCHEMY_DATABASE_URI"].endswith("instance/portal.sqlite3")
    assert config["SECRET_KEY"]
    assert config["TRUSTED_HOSTS"] == ["localhost", ".localhost"]
    assert config["SESSION_COOKIE_SECURE"] is False


@pytest.mark.parametrize(
    "env,missing",
    [
        ({"PORTAL_SERVER_NAME": "portal.example.com"}, "PORTAL_SECRET_KEY"),
        ({"PORTAL_SECRET_KEY": "s" * 40}, "PORTAL_SERVER_NAME"),
        ({}, "PORTAL_SECRET_KEY and PORTAL_SERVER_NAME"),
    ],
)
def test_production_without_secret_or_server_name_refuses(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], missing: str
) -> None:
    for name in ("SECRET_KEY", "SERVER_NAME"):
        monkeypatch.delenv(f"PORTAL_{name}", raising=False)
    monkeypatch.setenv("PORTAL_ENV", "production")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=missing):
        create_app()


def test_production_start_up_message_is_clear() -> None:
    env = {"PORTAL_ENV": "production", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", "import wsgi"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "PORTAL_ENV=production needs PORTAL_SECRET_KEY and PORTAL_SERVER_NAME" in result.stderr


def test_production_cookies_are_secure_and_host_prefixed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTAL_ENV", "production")
    monkeypatch.setenv("PORTAL_SECRET_KEY", "k" * 40)
    monkeypatch.setenv("PORTAL_SERVER_NAME", "Portal.Example.com")
    config = load_config()
    assert config["SERVER_NAME"] == "portal.example.com"
    assert config["SESSION_COOKIE_SECURE"] is True
    assert config["AUTH_COOKIE_NAME"].startswith("__Host-")
    assert config["SESSION_COOKIE_NAME"].startswith("__Host-")
    assert config["PREFERRED_URL_SCHEME"] == "https"


def test_postgres_urls_use_psycopg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTAL_DATABASE_URL", "postgresql://u@db/portal")
    assert load_config()["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@db/portal"


def test_unknown_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTAL_ENV", "staging")
    with pytest.raises(ConfigError, match="PORTAL_ENV"):
        load_config()


def test_database_timeouts_reach_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTAL_DATABASE_URL", "postgresql://u@db/portal")
    monkeypatch.setenv("PORTAL_DATABASE_CONNECT_TIMEOUT", "4")
    monkeypatch.setenv("PORTAL_DATABASE_STATEMENT_TIMEOUT", "5")
    monkeypatch.setenv("PORTAL_DATABASE_LOCK_TIMEOUT", "1.5")
    monkeypatch.setenv("PORTAL_DATABASE_POOL_TIMEOUT", "2.5")
    config = load_config()
    assert config["SQLALCHEMY_ENGINE_OPTIONS"] == {
        "pool_pre_ping": True,
        "pool_timeout": 3,  # SQLAlchemy counts whole seconds
        "connect_args": {
            "connect_timeout": 4,
            "options": "-c statement_timeout=5000 -c lock_timeout=1500",
        },
    }
    assert config["DATABASE_STATEMENT_TIMEOUT"] == 5.0


def test_default_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTAL_DATABASE_URL", "postgresql://u@db/portal")
    config = load_config()
    assert config["SQLALCHEMY_ENGINE_OPTIONS"]["pool_timeout"] == 3
    assert config["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"] == {
        "connect_timeout": 2,
        "options": "-c statement_timeout=3000 -c lock_timeout=2000",
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
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"PORTAL_{name}", value)
    with pytest.raises(ConfigError, match=f"PORTAL_{name} must be a number of seconds"):
        load_config()
