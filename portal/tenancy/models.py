"""The partner (tenant) and the mixin every tenant-owned model uses."""

from __future__ import annotations

import copy
import enum
import re
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any, ClassVar, Self, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from portal.clock import utcnow
from portal.extensions import db, str_enum

T = TypeVar("T")
# Each partner's parsed settings, by (partner id, column): the value parsed and what it gave.
_PARSED: dict[tuple[int, str], tuple[Any, Any]] = {}

SLUG_RE = re.compile(r"^[a-z0-9](?:-?[a-z0-9])*$")
RESERVED_SLUGS = frozenset(
    {
        "www",
        "api",
        "static",
        "admin",
        "app",
        "assets",
        "auth",
        "cdn",
        "console",
        "dev",
        "docs",
        "help",
        "login",
        "mail",
        "metrics",
        "operator",
        "portal",
        "root",
        "smtp",
        "status",
        "support",
        "test",
        "healthz",
        "readyz",
    }
)
COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
# The shipped base themes (templates/themes/<name>/ holds each one's overrides).
BASE_THEMES = ("default", "midnight", "sidebar")
LOGO_DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")
# What a support address must look like once read back (the branding service checks it
# properly, with email-validator, before it is stored).
SUPPORT_EMAIL_RE = re.compile(r"^[^@\s<>\"']{1,64}@[^@\s<>\"']{1,253}$")
SUPPORT_URL_RE = re.compile(r"^https?://[^\s<>\"']{1,490}$")


def slug_problem(slug: str) -> str | None:
    """Why `slug` cannot name a partner, or None when it can."""
    if not 2 <= len(slug) <= 40:
        return "must be 2 to 40 characters long"
    if not SLUG_RE.match(slug):
        return "may hold only lowercase letters, digits and single inner hyphens"
    if slug in RESERVED_SLUGS:
        return "is reserved"
    return None


class PartnerStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"  # offboarded: its data is deleted after `delete_after`


@dataclass(frozen=True)
class Theme:
    """How a partner's portal looks; validated whenever it is read or written."""

    base: str = "default"
    brand_name: str = ""
    primary_color: str = "#2563eb"
    accent_color: str = "#0f172a"
    # The SHA-256 of the partner's logo (a `PartnerLogo` row), or "" for none.
    logo: str = ""
    # Shown on the "unavailable" and error pages and in emails; either, both or neither.
    support_email: str = ""
    support_url: str = ""

    def __post_init__(self) -> None:
        if self.base not in BASE_THEMES:
            raise ValueError(f"unknown base theme {self.base!r}")
        for name in ("primary_color", "accent_color"):
            if not COLOR_RE.match(getattr(self, name)):
                raise ValueError(f"{name} must be a colour like #1a2b3c")
        if len(self.brand_name) > 80:
            raise ValueError("brand_name must be at most 80 characters")
        if self.logo and not LOGO_DIGEST_RE.match(self.logo):
            raise ValueError("logo must be the SHA-256 of a stored logo")
        if self.support_email and not SUPPORT_EMAIL_RE.match(self.support_email):
            raise ValueError("support_email must be an email address")
        if self.support_url and not SUPPORT_URL_RE.match(self.support_url):
            raise ValueError("support_url must be an http or https address")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Self:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AtLimit(enum.StrEnum):
    EVICT_OLDEST = "evict_oldest"
    DENY_NEW = "deny_new"


@dataclass(frozen=True)
class SessionPolicy:
    """A partner's session rules (DESIGN §7); the defaults are the safe ones."""

    idle_minutes: int = 30
    absolute_hours: int = 12
    max_concurrent: int = 5
    at_limit: str = AtLimit.EVICT_OLDEST.value
    remember_me_allowed: bool = False
    remember_me_days: int = 14
    # Support impersonation (DESIGN §8): how long one may last, and whether the user is
    # emailed when it starts.
    impersonation_minutes: int = 30
    impersonation_notify: bool = True

    def __post_init__(self) -> None:
        problems = self.problems_of(asdict(self))
        if problems:
            raise ValueError(next(iter(problems.values())))

    FIELDS: ClassVar[frozenset[str]] = frozenset(
        {
            "idle_minutes",
            "absolute_hours",
            "max_concurrent",
            "at_limit",
            "remember_me_allowed",
            "remember_me_days",
            "impersonation_minutes",
            "impersonation_notify",
        }
    )

    @staticmethod
    def problems_of(values: dict[str, Any]) -> dict[str, str]:
        """Every field of `values` that breaks its rule, with the message (all at once, so a
        form can flag each one)."""
        rules = [
            ("idle_minutes", 5, 24 * 60, "idle timeout must be between 5 minutes and 24 hours"),
            ("absolute_hours", 1, 24 * 30, "absolute lifetime must be between 1 hour and 30 days"),
            ("max_concurrent", 1, 100, "maximum concurrent sessions must be between 1 and 100"),
            ("remember_me_days", 1, 90, "remember-me must last between 1 and 90 days"),
            (
                "impersonation_minutes",
                5,
                240,
                "a support session must last between 5 minutes and 4 hours",
            ),
        ]
        problems = {}
        for name, low, high, message in rules:
            value = values.get(name, low)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                problems[name] = message
        if values.get("at_limit", AtLimit.EVICT_OLDEST.value) not in {a.value for a in AtLimit}:
            problems["at_limit"] = "behaviour at the limit must be evict_oldest or deny_new"
        return problems

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Self:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RetentionPolicy:
    """How long a partner keeps what it no longer needs (README "Your data"). The operator's
    bounds (RETENTION_MAX_DAYS, RETENTION_AUDIT_MIN_YEARS) are checked when an admin saves."""

    sessions_days: int = 30  # ended sessions (expired or signed out), counted from the end
    tokens_days: int = 30  # used, revoked or expired email links
    outbox_days: int = 30  # the text of sent emails (who, when and subject stay)
    audit_ip_days: int = 90  # audit events keep the full IP this long, then its network
    audit_years: int = 6  # audit events are deleted at this age
    closing_days: int = 14  # cooling-off before an account its user closes is erased

    def __post_init__(self) -> None:
        for name in ("sessions_days", "tokens_days", "outbox_days", "audit_ip_days"):
            if not 1 <= getattr(self, name) <= 3650:
                raise ValueError(f"{name.replace('_', ' ')} must be between 1 and 3650")
        if not 1 <= self.audit_years <= 30:
            raise ValueError("audit years must be between 1 and 30")
        if not 0 <= self.closing_days <= 90:
            raise ValueError("the cooling-off period must be between 0 and 90 days")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Self:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Partner(db.Model):
    """A tenant: its own subdomain, users, roles, plans, features and policies."""

    __tablename__ = "partners"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(sa.String(40), unique=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    status: Mapped[PartnerStatus] = mapped_column(
        str_enum(PartnerStatus), default=PartnerStatus.ACTIVE
    )
    theme_settings: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    session_policy_settings: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    default_role: Mapped[str] = mapped_column(
        sa.String(32), default="guest", server_default="guest"
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retention_settings: Mapped[dict[str, Any]] = mapped_column(
        sa.JSON, default=dict, server_default="{}"
    )
    # Offboarding: when the partner was closed, and from when its data may be deleted.
    closed_at: Mapped[datetime | None]
    delete_after: Mapped[datetime | None]

    # Stamped anew by every change to the partner or its configuration rows
    # (`PartnerConfiguration`); what processes cache of the configuration is keyed by it.
    config_version: Mapped[int] = mapped_column(
        sa.BigInteger, default=lambda: secrets.randbits(62), server_default="1"
    )

    @property
    def retention(self) -> RetentionPolicy:
        return self._parsed("retention_settings", RetentionPolicy.from_dict)

    @property
    def theme(self) -> Theme:
        return self._parsed("theme_settings", Theme.from_dict)

    @property
    def brand_name(self) -> str:
        return self.theme.brand_name or self.name

    @property
    def session_policy(self) -> SessionPolicy:
        return self._parsed("session_policy_settings", SessionPolicy.from_dict)

    def _parsed(self, column: str, parse: Callable[[Any], T]) -> T:
        """The settings in `column`, parsed once per process for as long as they are equal to
        what was parsed: every page reads the theme and the session rules, and a change
        (a new value, assigned) is a value that is not equal."""
        raw = getattr(self, column)
        if self.id is None:
            return parse(raw)
        key = (self.id, column)
        found = _PARSED.get(key)
        if found is None or found[0] != raw:
            found = _PARSED[key] = (copy.deepcopy(raw), parse(raw))
        return found[1]

    @property
    def is_active(self) -> bool:
        return self.status == PartnerStatus.ACTIVE

    def __repr__(self) -> str:
        return f"<Partner {self.slug}>"


class TenantOwned:
    """Mixin for every model that belongs to one partner; ORM access is scoped automatically."""

    @declared_attr
    def partner_id(cls) -> Mapped[int]:
        return mapped_column(sa.ForeignKey("partners.id", ondelete="CASCADE"), index=True)


class PartnerConfiguration:
    """Mixin for tenant models that configure the partner (roles, features): every write to
    one gives the partner a new `config_version` (`portal/tenancy/configuration.py`)."""


def same_partner(
    column: str, parent: str, *, name: str, ondelete: str | None = None
) -> sa.ForeignKeyConstraint:
    """A reference from one tenant table to another that the database keeps inside one
    partner: (partner_id, column) → parent(partner_id, id). A row can never point at another
    partner's row, whatever the code above does.

    Nullable references (who revoked, who acted) have no ON DELETE action: SET NULL would
    clear partner_id too. Only invited users who never acted are ever deleted.
    """
    return sa.ForeignKeyConstraint(
        ["partner_id", column],
        [f"{parent}.partner_id", f"{parent}.id"],
        name=name,
        ondelete=ondelete,
    )


def referable() -> sa.UniqueConstraint:
    """(partner_id, id) of a tenant table that others reference with `same_partner`."""
    return sa.UniqueConstraint("partner_id", "id")


@dataclass(frozen=True)
class Site:
    """The partner in scope as plain values, captured once: what layouts, error pages and logs
    read, so that they still work after a failed transaction or with the database gone."""

    partner_id: int
    slug: str
    brand_name: str
    theme: Theme

    @classmethod
    def of(cls, partner: Partner) -> Site:
        return cls(partner.id, partner.slug, partner.brand_name, partner.theme)
