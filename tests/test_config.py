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
