"""Configuration read from `PORTAL_*` environment variables."""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path
from typing import Any

from limits import parse

from portal.database import engine_options

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = ROOT / "instance"


MIN_SECRET_KEY_LENGTH = 32
MIN_SECRET_KEY_SYMBOLS = 12  # a random key of 32 URL-safe characters has about 25
DEFAULT_MAX_CONTENT_LENGTH = 1024 * 1024  # bytes; a route may allow more (`accepts_bodies_up_to`)


class ConfigError(RuntimeError):
    """A configuration that must not start (for example production without a secret key)."""


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(f"PORTAL_{name}")
    return value if value not in (None, "") else default


def _seconds(name: str, default: float, minimum: float = 0.001) -> float:
    """A duration in seconds from `PORTAL_<name>`; a value that is not one stops start-up."""
    raw = _env(name)
    try:
        value = default if raw is None else float(raw)
    except ValueError:
        value = -1.0
    if not value >= minimum:  # also refuses NaN
        raise ConfigError(f"PORTAL_{name} must be a number of seconds, at least {minimum:g}")
    return value


def _rate(name: str, default: str) -> str:
    """A rate limit like `5/5minutes` from `PORTAL_<name>`; one `limits` cannot read stops
    start-up."""
    value = _env(name, default) or default
    try:
        parse(value)
    except ValueError as exc:
        raise ConfigError(
            f"PORTAL_{name} must be a rate like 5/5minutes or 10/hour, not {value!r}"
        ) from exc
    return value


def _count(name: str, default: int, minimum: int, meaning: str) -> int:
    """A whole number from `PORTAL_<name>`; a value that is not one stops start-up."""
    raw = _env(name)
    if raw is None:
        return default
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or int(text) < minimum:
        raise ConfigError(f"PORTAL_{name} must be {meaning}, not {raw!r}")
    return int(text)


def _flag(name: str, default: bool) -> bool:
    """A yes/no setting from `PORTAL_<name>` (1 or 0); anything else stops start-up."""
    raw = _env(name)
    if raw is None:
        return default
    if raw.strip() not in ("0", "1"):
        raise ConfigError(f"PORTAL_{name} must be 1 or 0, not {raw!r}")
    return raw.strip() == "1"


def _tiers(raw: str | None) -> dict[str, str]:
    """`acme=enterprise,globex=standard` from PORTAL_METRICS_PARTNER_TIERS."""
    tiers: dict[str, str] = {}
    for item in (raw or "").split(","):
        if not item.strip():
            continue
        slug, _, tier = item.partition("=")
        if not slug.strip() or not tier.strip().isidentifier():
            raise ConfigError(
                "PORTAL_METRICS_PARTNER_TIERS must be slug=tier pairs separated by commas,"
                f" not {item.strip()!r}"
            )
        tiers[slug.strip()] = tier.strip()
    return tiers


def _networks(raw: str | None) -> list[str]:
    """Networks (CIDR) allowed to read /metrics without the token."""
    networks = []
    for item in (raw or "").split(","):
        if item.strip():
            try:
                networks.append(str(ipaddress.ip_network(item.strip(), strict=False)))
            except ValueError as exc:
                raise ConfigError(
                    f"PORTAL_METRICS_ALLOWED_NETWORKS: {item.strip()!r} is not a network"
                ) from exc
    return networks


def _dev_secret_key() -> str:
    """A per-checkout random key kept under instance/, so dev sessions survive restarts."""
    INSTANCE.mkdir(exist_ok=True)
    path = INSTANCE / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
    return path.read_text().strip()


def load_config(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the Flask config from the environment, then apply `overrides` (tests)."""
    overrides = overrides or {}
    # Production unless told otherwise: a forgotten variable must not open developer tools.
    env = overrides.get("PORTAL_ENV") or _env("ENV", "production")
    if env not in ("development", "production", "testing"):
        raise ConfigError(f"PORTAL_ENV must be development, production or testing, not {env!r}")
    production = env == "production"

    secret_key = overrides.get("SECRET_KEY") or _env("SECRET_KEY")
    server_name = overrides.get("SERVER_NAME") or _env("SERVER_NAME")
    database_url = overrides.get("SQLALCHEMY_DATABASE_URI") or _env("DATABASE_URL")
    if production:
        problem = _production_problem(secret_key, server_name, database_url)
        if problem and not (overrides.get("PORTAL_ENV") or _env("ENV")):
            problem += (
                " (PORTAL_ENV is unset, which means production; a local demo needs"
                " PORTAL_ENV=development, as `make run` sets)"
            )
        if problem:
            raise ConfigError(problem)
    secret_key = secret_key or _dev_secret_key()
    server_name = (server_name or "localhost:5000").lower()

    database_url = database_url or f"sqlite:///{INSTANCE / 'portal.sqlite3'}"
    if database_url.startswith("postgres://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgres://") :]
    elif database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://") :]

    host_only = server_name.split(":")[0]
    config: dict[str, Any] = {
        "PORTAL_ENV": env,
        "SECRET_KEY": secret_key,
        "SERVER_NAME": server_name,
        # The root domain and every <slug>. subdomain; anything else is refused with 400.
        "TRUSTED_HOSTS": [host_only, "." + host_only],
        "SQLALCHEMY_DATABASE_URI": database_url,
        # libpq's connect_timeout is whole seconds, at least 2.
        "DATABASE_CONNECT_TIMEOUT": _seconds("DATABASE_CONNECT_TIMEOUT", 2, minimum=2),
        "DATABASE_STATEMENT_TIMEOUT": _seconds("DATABASE_STATEMENT_TIMEOUT", 3),
        "DATABASE_LOCK_TIMEOUT": _seconds("DATABASE_LOCK_TIMEOUT", 2),
        "DATABASE_POOL_TIMEOUT": _seconds("DATABASE_POOL_TIMEOUT", 3),
        "SESSION_COOKIE_NAME": "__Host-portal" if production else "portal",
        "SESSION_COOKIE_SECURE": production,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "AUTH_COOKIE_NAME": "__Host-portal_auth" if production else "portal_auth",
        "PREFERRED_URL_SCHEME": "https" if production else "http",
        "WTF_CSRF_TIME_LIMIT": None,
        # How many proxies in front set X-Forwarded-*; 0 (the default): none is trusted.
        "PROXY_FIX": _count("PROXY_FIX", 0, 0, "the number of trusted proxies (0 for none)"),
        "MAX_CONTENT_LENGTH": _count(
            "MAX_CONTENT_LENGTH", DEFAULT_MAX_CONTENT_LENGTH, 1, "a number of bytes"
        ),
        "LOG_LEVEL": _env("LOG_LEVEL", "INFO"),
        "SMTP_URL": _env("SMTP_URL"),
        # Every SMTP conversation (connect, each command) waits at most this long.
        "SMTP_TIMEOUT": _seconds("SMTP_TIMEOUT", 10),
        # The mail worker: attempts before a message is failed, the first retry's delay
        # (doubling each time, at most an hour), how often it looks for due messages.
        "MAIL_MAX_ATTEMPTS": _count("MAIL_MAX_ATTEMPTS", 8, 1, "a number of attempts"),
        "MAIL_RETRY_DELAY": _seconds("MAIL_RETRY_DELAY", 60),
        "MAIL_POLL_INTERVAL": _seconds("MAIL_POLL_INTERVAL", 2),
        # /metrics on the root domain: a bearer token, or a client in an allowed network.
        "METRICS_TOKEN": _env("METRICS_TOKEN"),
        "METRICS_ALLOWED_NETWORKS": _networks(_env("METRICS_ALLOWED_NETWORKS")),
        "METRICS_PARTNER_TIERS": _tiers(_env("METRICS_PARTNER_TIERS")),
        "METRICS_DEFAULT_TIER": _env("METRICS_DEFAULT_TIER", "standard"),
        "RATELIMIT_STORAGE_URL": _env("RATELIMIT_STORAGE_URL", "memory://"),
        "RATELIMIT_KEY_PREFIX": _env("RATELIMIT_KEY_PREFIX", "portal"),
        "RATELIMIT_CONNECT_TIMEOUT": _seconds("RATELIMIT_CONNECT_TIMEOUT", 0.5),
        "RATELIMIT_TIMEOUT": _seconds("RATELIMIT_TIMEOUT", 0.5),
        "RATELIMIT_RETRY_AFTER": _seconds("RATELIMIT_RETRY_AFTER", 30),
        # Sign-up, password reset and email change answer no sooner than this after the
        # request began, whatever the address: their timing tells nothing about it.
        "ANSWER_FLOOR": _seconds("ANSWER_FLOOR", 0.15, minimum=0),
        "LOGIN_LIMIT_PER_ACCOUNT": _rate("LOGIN_LIMIT_PER_ACCOUNT", "5/5minutes"),
        "LOGIN_LIMIT_PER_ACCOUNT_ANY_IP": _rate("LOGIN_LIMIT_PER_ACCOUNT_ANY_IP", "20/5minutes"),
        "LOGIN_LIMIT_PER_IP": _rate("LOGIN_LIMIT_PER_IP", "30/5minutes"),
        "MAIL_LIMIT_PER_IP": _rate("MAIL_LIMIT_PER_IP", "10/hour"),
        "MAIL_LIMIT_PER_PARTNER": _rate("MAIL_LIMIT_PER_PARTNER", "200/hour"),
        "MAIL_LIMIT_PER_ADDRESS": _rate("MAIL_LIMIT_PER_ADDRESS", "3/hour"),
        "SIGNUP_NOTICE_PER_ADDRESS": _rate("SIGNUP_NOTICE_PER_ADDRESS", "1/hour"),
        # Invitations admins send (new or again, pages and API alike).
        "INVITE_LIMIT_PER_PARTNER": _rate("INVITE_LIMIT_PER_PARTNER", "100/hour"),
        "INVITE_LIMIT_PER_ADDRESS": _rate("INVITE_LIMIT_PER_ADDRESS", "3/hour"),
        # Partner API: requests per API client, and how long a bearer token lives.
        "API_LIMIT_PER_CLIENT": _rate("API_LIMIT_PER_CLIENT", "300/minute"),
        "API_TOKEN_LIFETIME": _seconds("API_TOKEN_LIFETIME", 3600),
        "MAIL_FROM": _env("MAIL_FROM", f"Partner Portal <no-reply@{host_only}>"),
        # Single sign-on: every call a request makes to a partner's identity provider
        # (discovery, keys, token) shares this many seconds, connecting included.
        "OIDC_TIMEOUT": _seconds("OIDC_TIMEOUT", 3),
        # Providers on loopback or private addresses, and plain http: the demo provider and
        # tests need them; in production a partner admin must not point the portal at them.
        "OIDC_ALLOW_PRIVATE": _flag("OIDC_ALLOW_PRIVATE", not production),
        # Keys that encrypt client secrets (first encrypts, all decrypt); unset: derived from
        # the secret key (portal/sso/crypto.py).
        "SSO_KEYS": _env("SSO_KEYS", ""),
        # Data protection (operator bounds on every partner's retention settings).
        "RETENTION_AUDIT_MIN_YEARS": _count("RETENTION_AUDIT_MIN_YEARS", 1, 1, "a number of years"),
        "RETENTION_MAX_DAYS": _count("RETENTION_MAX_DAYS", 365, 1, "a number of days"),
        "EXPORT_KEEP_HOURS": _count("EXPORT_KEEP_HOURS", 72, 1, "a number of hours"),
        "MAINTENANCE_BATCH": _count("MAINTENANCE_BATCH", 500, 1, "a number of rows"),
        # The built-in demo identity provider at /dev/idp: development only.
        "DEMO_IDP": env == "development",
        # Its signing key, made on the first start and kept (portal/sso/demo_provider.py).
        "DEMO_IDP_KEY_FILE": str(INSTANCE / "demo_idp_key.json"),
    }
    config.update(overrides)
    # After the overrides: the options follow the database URL and timeouts finally chosen.
    config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options(config))
    return config


def _production_problem(
    secret_key: str | None, server_name: str | None, database_url: str | None
) -> str | None:
    """Why production must not start: it needs its own key, root domain and database."""
    missing = [
        name
        for name, value in (
            ("PORTAL_SECRET_KEY", secret_key),
            ("PORTAL_SERVER_NAME", server_name),
            ("PORTAL_DATABASE_URL", database_url),  # no silent SQLite, which has no row security
        )
        if not value
    ]
    if missing:
        names = ", ".join(missing[:-1]) + " and " + missing[-1] if len(missing) > 1 else missing[0]
        return f"PORTAL_ENV=production needs {names} to be set; refusing to start."
    if len(secret_key or "") < MIN_SECRET_KEY_LENGTH:
        return (
            f"PORTAL_SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters in production"
            f" (it has {len(secret_key or '')}); refusing to start. Generate one with"
            " python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    if len(set(secret_key or "")) < MIN_SECRET_KEY_SYMBOLS:
        # Long but made of a few repeated characters ("a" * 40, spaces): guessable.
        return (
            f"PORTAL_SECRET_KEY uses only {len(set(secret_key or ''))} different characters;"
            " it must be random. Refusing to start. Generate one with"
            " python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    return None
