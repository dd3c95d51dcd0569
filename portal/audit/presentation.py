"""Reading the audit trail as people do: filters, keyset pages, targets by name, details as
key/value pairs, action names in words."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, String, cast, func, or_, select, tuple_
from sqlalchemy.orm import joinedload

from portal.audit.models import AuditEvent
from portal.clock import utcnow
from portal.extensions import db
from portal.operator.models import Operator
from portal.sessions.devices import device_label
from portal.sessions.models import UserSession
from portal.subscriptions.models import Plan, Subscription
from portal.tenancy.models import Partner
from portal.users.models import User
from portal.users.queries import contains_pattern

# What each action means, for the filter's list and the table; unknown actions show as is.
ACTIONS: dict[str, str] = {
    "auth.login": "Signed in",
    "auth.login_failed": "Sign-in failed",
    "auth.login_throttled": "Sign-in refused: too many attempts",
    "auth.logout": "Signed out",
    "session.start": "Session started",
    "session.revoke": "Session ended",
    "session.revoke_all": "All sessions of a user ended",
    "session.revoke_partner": "Every session ended",
    "session.limit_denied": "Sign-in refused: session limit",
    "account.profile_update": "Profile changed",
    "account.password_change": "Password changed",
    "account.password_reset": "Password reset",
    "account.password_reset_request": "Password reset requested",
    "account.password_reset_send": "Password reset link sent",
    "account.email_change_request": "Email change requested",
    "account.email_change_cancel": "Email change cancelled",
    "account.email_change": "Email address changed",
    "account.signup": "Signed up",
    "account.signup_existing": "Sign-up with a registered address",
    "account.signup_verified": "Sign-up confirmed",
    "account.signup_limited": "Sign-up refused: mail limit",
    "user.create": "User created",
    "user.role_change": "Role changed",
    "user.deactivate": "User deactivated",
    "user.reactivate": "User reactivated",
    "user.support_grant": "Made support agent",
    "user.support_remove": "Support capability removed",
    "user.admin_granted": "Made admin by an operator",
    "invitation.send": "Invitation sent",
    "invitation.resend": "Invitation sent again",
    "invitation.accept": "Invitation accepted",
    "invitation.revoke": "Invitation revoked",
    "invitation.limited": "Invitation refused: mail limit",
    "roles.update": "Roles changed",
    "roles.transitions_update": "Role transitions changed",
    "plan.create": "Plan created",
    "plan.update": "Plan changed",
    "plan.archive": "Plan archived",
    "plan.restore": "Plan restored",
    "subscription.signing": "Subscription started",
    "subscription.terms_accepted": "Terms accepted",
    "subscription.signed": "Subscription signed",
    "subscription.suspended": "Subscription suspended",
    "subscription.ended": "Subscription ended",
    "subscription.rejected": "Subscription rejected",
    "subscription.abandoned": "Subscription abandoned",
    "feature.switch": "Feature switched",
    "feature.lock": "Feature locked by the operator",
    "settings.default_role_update": "Default role changed",
    "settings.session_policy_update": "Session policy changed",
    "settings.support_policy_update": "Support policy changed",
    "support.impersonation_start": "Support started acting as a user",
    "support.impersonation_end": "Support stopped acting as a user",
    "sso.connection_create": "Single sign-on connected",
    "sso.connection_update": "Single sign-on changed",
    "sso.connection_test": "Single sign-on tested",
    "sso.connection_delete": "Single sign-on removed",
    "sso.identity_link": "Sign-in method linked",
    "sso.identity_unlink": "Sign-in method removed",
    "sso.invitation_accepted": "Invitation accepted by single sign-on",
    "sso.secret_reencrypted": "Client secret re-encrypted",
    "partner.create": "Partner created",
    "partner.suspend": "Partner suspended",
    "partner.reactivate": "Partner reactivated",
    "partner.admin_granted": "Admin granted by an operator",
}
MAX_DAYS_BACK = 366 * 20


def describe(action: str) -> str:
    return ACTIONS.get(action, action)


@dataclass
class AuditFilter:
    """The filters of the audit page, from its query string (all optional)."""

    who: str = ""
    action: str = ""
    target: str = ""
    since: date | None = None
    until: date | None = None
    support: bool = False
    errors: list[str] = field(default_factory=list)

    @classmethod
    def from_args(cls, args: Any) -> AuditFilter:
        found = cls(
            who=args.get("who", args.get("actor", "")).strip()[:100],
            action=args.get("action", "").strip()[:80],
            target=args.get("target", "").strip()[:254],
            support=args.get("support") == "1",
        )
        found.since = found._date(args.get("from", ""), "From")
        found.until = found._date(args.get("to", ""), "To")
        if found.since and found.until and found.since > found.until:
            found.errors.append("The “From” date is after the “To” date.")
        return found

    def _date(self, raw: str, name: str) -> date | None:
        raw = raw.strip()[:10]
        if not raw:
            return None
        try:
            value = date.fromisoformat(raw)
        except ValueError:
            self.errors.append(f"“{name}” must be a date like 2026-03-01.")
            return None
        if abs((value - utcnow().date()).days) > MAX_DAYS_BACK:
            self.errors.append(f"“{name}” is too far from today.")
            return None
        return value

    def args(self) -> dict[str, str]:
        """The query string that gives these filters again (links, CSV, pages)."""
        values = {
            "who": self.who,
            "action": self.action,
            "target": self.target,
            "from": self.since.isoformat() if self.since else "",
            "to": self.until.isoformat() if self.until else "",
            "support": "1" if self.support else "",
        }
        return {k: v for k, v in values.items() if v}

    def apply(self, stmt: Select) -> Select:
        if self.action:
            stmt = stmt.where(AuditEvent.action == self.action)
        if self.who:
            pattern = contains_pattern(self.who.lower())
            stmt = stmt.where(func.lower(AuditEvent.actor_label).like(pattern, escape="\\"))
        if self.target:
            stmt = stmt.where(_target_clause(self.target))
        if self.since:
            stmt = stmt.where(AuditEvent.created_at >= datetime.combine(self.since, time.min))
        if self.until:
            end = datetime.combine(self.until + timedelta(days=1), time.min)
            stmt = stmt.where(AuditEvent.created_at < end)
        if self.support:  # done while a support agent acted as a user
            stmt = stmt.where(AuditEvent.impersonation_id.is_not(None))
        return stmt


def _target_clause(text: str):
    """A target as people name it: a user's email, `users 12`, or a bare id."""
    if "@" in text:
        address = text.lower()
        user_ids = select(cast(User.id, String)).where(User.email == address)
        return or_(
            (AuditEvent.target_type == "users") & AuditEvent.target_id.in_(user_ids),
            (AuditEvent.target_type == "email") & (AuditEvent.target_id == address[:64]),
        )
    kind, _, ident = text.rpartition(" ")
    if kind:
        return (AuditEvent.target_type == kind.strip()) & (AuditEvent.target_id == ident)
    return AuditEvent.target_id == text


# --- Keyset pages ---------------------------------------------------------------------------


def encode_cursor(event: AuditEvent) -> str:
    raw = f"{event.created_at.isoformat()}|{event.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[datetime, int] | None:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        when, ident = raw.split("|")
        return datetime.fromisoformat(when), int(ident)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


NEWEST_FIRST = (AuditEvent.created_at.desc(), AuditEvent.id.desc())


def page_of(filters: AuditFilter, cursor: str, per_page: int) -> tuple[list[AuditEvent], bool]:
    """One page, newest first, older than `cursor`: (events, whether more follow).

    Keyset pagination on (created_at, id), which the (partner_id, created_at) index serves:
    page 10,000 costs what page 1 does.
    """
    stmt = filters.apply(select(AuditEvent))
    after = decode_cursor(cursor) if cursor else None
    if after is not None:
        stmt = stmt.where(tuple_(AuditEvent.created_at, AuditEvent.id) < tuple_(*after))
    events = list(db.session.execute(stmt.order_by(*NEWEST_FIRST).limit(per_page + 1)).scalars())
    return events[:per_page], len(events) > per_page


def stream(filters: AuditFilter, batch: int = 1000) -> Iterator[list[AuditEvent]]:
    """Every matching event, newest first, in keyset batches (the CSV export)."""
    cursor = ""
    while True:
        events, more = page_of(filters, cursor, batch)
        if events:
            yield events
        if not more:
            return
        cursor = encode_cursor(events[-1])
        db.session.expunge_all()  # what was written out needs no keeping


# --- Targets by name, details in words ------------------------------------------------------


def target_names(events: Iterable[AuditEvent]) -> dict[tuple[str, str], str]:
    """A readable name for each (target_type, target_id) of `events`: one query per type."""
    wanted: dict[str, set[int]] = {}
    names: dict[tuple[str, str], str] = {}
    for e in events:
        if not e.target_type or e.target_id is None:
            continue
        if e.target_type == "email":
            names[("email", e.target_id)] = e.target_id
        elif e.target_id.isdigit():
            wanted.setdefault(e.target_type, set()).add(int(e.target_id))
    lookups = {
        "users": lambda ids: ((u.id, f"user {u.email}") for u in _load(User, ids)),
        "user_sessions": lambda ids: (
            (s.id, f"session on {device_label(s.user_agent)}") for s in _load(UserSession, ids)
        ),
        "plans": lambda ids: ((p.id, f"plan {p.name}") for p in _load(Plan, ids)),
        "subscriptions": lambda ids: (
            (s.id, f"subscription #{s.id} ({s.plan.name})")
            for s in _load(Subscription, ids, joinedload(Subscription.plan))
        ),
        "partners": lambda ids: ((p.id, f"partner {p.name}") for p in _load(Partner, ids)),
        "operators": lambda ids: ((o.id, f"operator {o.email}") for o in _load(Operator, ids)),
    }
    for kind, ids in wanted.items():
        if kind in lookups:
            for ident, label in lookups[kind](ids):
                names[(kind, str(ident))] = label
    return names


def _load(model: type, ids: set[int], *options: Any) -> list[Any]:
    stmt = select(model).where(model.id.in_(ids)).options(*options)
    return list(db.session.execute(stmt).scalars())


def target_label(event: AuditEvent, names: dict[tuple[str, str], str]) -> str:
    if not event.target_type:
        return ""
    found = names.get((event.target_type, event.target_id or ""))
    if found:
        return found
    kind = event.target_type.rstrip("s").replace("_", " ")
    return f"{kind} #{event.target_id}" if event.target_id else kind


def detail_items(details: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Details as (label, value) pairs people can read: nested values flattened."""
    items: list[tuple[str, str]] = []
    for key, value in sorted((details or {}).items()):
        items.append((key.replace("_", " ").capitalize(), _words(value)))
    return items


def _words(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return "; ".join(f"{k.replace('_', ' ')}: {_words(v)}" for k, v in sorted(value.items()))
    if isinstance(value, list | tuple):
        return ", ".join(_words(v) for v in value) or "none"
    return str(value)
