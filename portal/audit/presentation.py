"""Reading the audit trail as people do: filters, keyset pages, targets by name, details as
key/value pairs, action names in words."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, String, and_, cast, func, literal, or_, select, tuple_, union_all
from sqlalchemy.orm import joinedload

from portal.audit.models import AuditEvent
from portal.clock import utcnow
from portal.extensions import db
from portal.operator.models import Operator
from portal.sessions.devices import device_label
from portal.sessions.models import UserSession
from portal.subscriptions.models import Plan, Subscription
from portal.support.models import Impersonation
from portal.tenancy.models import Partner
from portal.users.models import User
from portal.users.search import contains_pattern

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
    "sso.backchannel_logout": "Signed out by the identity provider",
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


@dataclass(frozen=True)
class EventPage:
    """One page of events, newest first; the impersonations they were made in (their user,
    reason and ticket), by id; whether more follow."""

    events: list[AuditEvent]
    impersonations: dict[int, Impersonation]
    has_next: bool


def page_of(filters: AuditFilter, cursor: str, per_page: int) -> EventPage:
    """One page, newest first, older than `cursor`, each event with the impersonation it was
    made in (an outer join: the same statement).

    Keyset pagination on (created_at, id), which the (partner_id, created_at) index serves:
    page 10,000 costs what page 1 does.
    """
    stmt = filters.apply(
        select(AuditEvent, Impersonation)
        .outerjoin(
            Impersonation,
            and_(
                Impersonation.id == AuditEvent.impersonation_id,
                Impersonation.partner_id == AuditEvent.partner_id,
            ),
        )
        .options(joinedload(Impersonation.target))
    )
    after = decode_cursor(cursor) if cursor else None
    if after is not None:
        stmt = stmt.where(tuple_(AuditEvent.created_at, AuditEvent.id) < tuple_(*after))
    rows = db.session.execute(stmt.order_by(*NEWEST_FIRST).limit(per_page + 1)).all()
    shown = rows[:per_page]
    return EventPage(
        events=[event for event, _ in shown],
        impersonations={acting.id: acting for _, acting in shown if acting is not None},
        has_next=len(rows) > per_page,
    )


def stream(filters: AuditFilter, batch: int = 1000) -> Iterator[EventPage]:
    """Every matching event, newest first, in keyset batches (the CSV export)."""
    cursor = ""
    while True:
        page = page_of(filters, cursor, batch)
        if page.events:
            yield page
        if not page.has_next:
            return
        cursor = encode_cursor(page.events[-1])
        db.session.expunge_all()  # what was written out needs no keeping


# --- Targets by name, details in words ------------------------------------------------------


# For each kind of target: its id and the text that names it, and the name made of them.
_NAMING: dict[str, tuple[Callable[[], Select[Any]], Callable[[int, str | None], str]]] = {
    "users": (lambda: select(User.id, User.email), lambda _id, text: f"user {text}"),
    "user_sessions": (
        lambda: select(UserSession.id, UserSession.user_agent),
        lambda _id, text: f"session on {device_label(text)}",
    ),
    "plans": (lambda: select(Plan.id, Plan.name), lambda _id, text: f"plan {text}"),
    "subscriptions": (
        lambda: select(Subscription.id, Plan.name).join(
            Plan, and_(Plan.id == Subscription.plan_id, Plan.partner_id == Subscription.partner_id)
        ),
        lambda ident, text: f"subscription #{ident} ({text})",
    ),
    "partners": (lambda: select(Partner.id, Partner.name), lambda _id, text: f"partner {text}"),
    "operators": (
        lambda: select(Operator.id, Operator.email),
        lambda _id, text: f"operator {text}",
    ),
}


def target_names(events: Iterable[AuditEvent]) -> dict[tuple[str, str], str]:
    """A readable name for each (target_type, target_id) of `events`, whatever their kinds, in
    one statement: one lookup by id per kind shown, side by side (UNION ALL)."""
    wanted: dict[str, set[int]] = {}
    names: dict[tuple[str, str], str] = {}
    for e in events:
        if not e.target_type or e.target_id is None:
            continue
        if e.target_type == "email":
            names[("email", e.target_id)] = e.target_id
        elif e.target_type in _NAMING and e.target_id.isdigit():
            wanted.setdefault(e.target_type, set()).add(int(e.target_id))
    lookups = []
    for kind, ids in sorted(wanted.items()):
        lookup = _NAMING[kind][0]()
        key = lookup.selected_columns[0]
        lookups.append(lookup.add_columns(literal(kind).label("kind")).where(key.in_(ids)))
    if not lookups:
        return names
    stmt = lookups[0] if len(lookups) == 1 else union_all(*lookups)
    for ident, text, kind in db.session.execute(stmt):
        names[(kind, str(ident))] = _NAMING[kind][1](ident, text)
    return names


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
