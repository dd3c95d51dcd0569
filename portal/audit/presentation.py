"""Reading the audit trail as people do: filters, keyset pages, targets by name, details as
key/value pairs, action names in words."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    and_,
    any_,
    bindparam,
    cast,
    func,
    literal,
    or_,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import aliased

from portal.audit.models import AuditEvent
from portal.clock import utcnow
from portal.extensions import db
from portal.operator.models import Operator
from portal.records import records
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
    "partner.close": "Partner closed",
    "partner.reopen": "Partner reopened",
    "partner.export": "All of the partner's data exported",
    "partner.admin_granted": "Admin granted by an operator",
    "partner.branding_reset": "Branding reset by an operator",
    "partner.delete": "Partner deleted",
    "subscription.unsigned": "Subscription ended before signing",
    "user.signup_remove": "Pending sign-up removed",
    "api_client.create": "API client created",
    "api_client.rotate_secret": "API client secret rotated",
    "api_client.revoke": "API client revoked",
    "api_token.issue": "API token issued",
    "branding.update": "Branding changed",
    "branding.reset": "Branding reset to the default",
    "settings.retention_update": "Retention changed",
    "privacy.export_request": "Copy of own data asked for",
    "privacy.export_ready": "Copy of own data ready",
    "privacy.closure_request": "Account closing asked for",
    "privacy.closure_cancel": "Account closing cancelled",
    "privacy.erasure": "Personal data erased",
    "retention.exports_prepared": "Data copies prepared",
    "retention.exports_expired": "Expired data copies deleted",
    "retention.sessions_deleted": "Old sessions deleted (retention)",
    "retention.tokens_deleted": "Old email links deleted (retention)",
    "retention.api_tokens_deleted": "Old API tokens deleted (retention)",
    "retention.idempotency_keys_deleted": "Old API request keys deleted (retention)",
    "retention.email_bodies_deleted": "Old email texts deleted (retention)",
    "retention.audit_ips_truncated": "Audit IP addresses shortened (retention)",
    "retention.audit_events_deleted": "Old audit events deleted (retention)",
    "retention.accounts_closed": "Closed accounts erased",
    "mail.retry": "Email sent again by an operator",
    "operator.create": "Operator created",
    "operator.deactivate": "Operator deactivated",
    "operator.login": "Operator signed in",
    "operator.login_failed": "Operator sign-in failed",
    "operator.logout": "Operator signed out",
    "operator.password_link": "Operator password link made",
    "operator.password_set": "Operator password set",
    "operator_session.start": "Operator session started",
    "operator_session.revoke": "Operator session ended",
}
# The filter's list: by what people read, as Jinja's `dictsort(by="value")` orders it.
ACTION_CHOICES: list[tuple[str, str]] = sorted(ACTIONS.items(), key=lambda item: item[1].lower())
MAX_DAYS_BACK = 366 * 20


def describe(action: str) -> str:
    return ACTIONS.get(action, action)


# "Who" as a whole email address is that person, found through the (partner, actor, time)
# index however long the log; anything else is looked for inside every event's actor.
# People's and operators' addresses are kept in lower case, as their events name them.
WHOLE_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


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

    def shape(self) -> tuple[str, ...]:
        """The filters set (a target by how it is named): the statement is built once per
        shape, and `values` fills it in."""
        shape = tuple(self.values())
        return (*shape, "support") if self.support else shape

    def values(self) -> dict[str, Any]:
        """The filters' values, each under the name of its parameter in the statement."""
        values: dict[str, Any] = {}
        if self.action:
            values["action"] = self.action
        if self.who and WHOLE_ADDRESS.fullmatch(self.who):
            values["who_address"] = self.who.lower()
        elif self.who:
            values["who"] = contains_pattern(self.who.lower())
        if self.target:
            values.update(_target_values(self.target))
        if self.since:
            values["since"] = datetime.combine(self.since, time.min)
        if self.until:
            values["until"] = datetime.combine(self.until + timedelta(days=1), time.min)
        return values


def _target_values(text: str) -> dict[str, str]:
    """A target as people name it: a user's email, `users 12`, or a bare id."""
    if "@" in text:
        address = text.lower()
        return {"target_email": address, "target_address": address[:64]}
    kind, _, ident = text.rpartition(" ")
    if kind:
        return {"target_type": kind.strip(), "target_id": ident}
    return {"target_id": text}


def _where(shape: tuple[str, ...]) -> list[ColumnElement[bool]]:
    """The conditions of the filters in `shape`, their values left as parameters."""
    conditions = []
    if "action" in shape:
        conditions.append(AuditEvent.action == bindparam("action"))
    if "who_address" in shape:  # one person's events, through their index
        conditions.append(AuditEvent.actor_label == bindparam("who_address"))
    if "who" in shape:
        conditions.append(func.lower(AuditEvent.actor_label).like(bindparam("who"), escape="\\"))
    if "target_email" in shape:
        user_ids = select(cast(User.id, String)).where(User.email == bindparam("target_email"))
        conditions.append(
            or_(
                (AuditEvent.target_type == "users") & AuditEvent.target_id.in_(user_ids),
                (AuditEvent.target_type == "email")
                & (AuditEvent.target_id == bindparam("target_address")),
            )
        )
    elif "target_type" in shape:
        conditions.append(AuditEvent.target_type == bindparam("target_type"))
    if "target_id" in shape:
        conditions.append(AuditEvent.target_id == bindparam("target_id"))
    if "since" in shape:
        conditions.append(AuditEvent.created_at >= bindparam("since"))
    if "until" in shape:
        conditions.append(AuditEvent.created_at < bindparam("until"))
    if "support" in shape:  # done while a support agent acted as a user
        conditions.append(AuditEvent.impersonation_id.is_not(None))
    return conditions


# --- Keyset pages ---------------------------------------------------------------------------


def encode_cursor(event: Any) -> str:
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
# The user a support agent acted as; an alias, which the target filter's own lookup of users
# (a subquery) does not correlate to.
_SUPPORTED = aliased(User, name="supported_user")


@dataclass(frozen=True)
class EventPage:
    """One page of events, newest first, each a row of the event's columns and, when it was
    made in an impersonation, that one's reason, ticket and user (`support_*`, else None);
    whether more follow."""

    events: list[Any]  # `records`: named tuples of the columns
    has_next: bool


def page_of(filters: AuditFilter, cursor: str, per_page: int) -> EventPage:
    """One page, newest first, older than `cursor`, each event with the impersonation it was
    made in (outer joins: the same statement).

    Keyset pagination on (created_at, id), which the (partner_id, created_at) index serves:
    page 10,000 costs what page 1 does.
    """
    after = decode_cursor(cursor) if cursor else None
    values = {**filters.values(), "page_limit": per_page + 1}
    if after is not None:
        values["before_at"], values["before_id"] = after
    statement = _page_statement(filters.shape(), after is not None)
    rows = records(db.session.execute(statement, values))
    return EventPage(events=rows[:per_page], has_next=len(rows) > per_page)


def event_by_id(event_id: int) -> Any | None:
    """One event of the partner's, as a page's rows are; None if there is none by that id."""
    found = records(db.session.execute(_one_event(), {"event_id": event_id}))
    return found[0] if found else None


def _events() -> Select[Any]:
    return (
        select(
            AuditEvent.id,
            AuditEvent.created_at,
            AuditEvent.actor_type,
            AuditEvent.actor_label,
            AuditEvent.on_behalf_of_id,
            AuditEvent.impersonation_id,
            AuditEvent.action,
            AuditEvent.target_type,
            AuditEvent.target_id,
            AuditEvent.details,
            AuditEvent.ip,
            AuditEvent.request_id,
            Impersonation.reason.label("support_reason"),
            Impersonation.ticket.label("support_ticket"),
            _SUPPORTED.email.label("support_user_email"),
        )
        .outerjoin(
            Impersonation,
            and_(
                Impersonation.id == AuditEvent.impersonation_id,
                Impersonation.partner_id == AuditEvent.partner_id,
            ),
        )
        .outerjoin(
            _SUPPORTED,
            and_(
                _SUPPORTED.id == Impersonation.target_id,
                _SUPPORTED.partner_id == Impersonation.partner_id,
            ),
        )
    )


# Built once per shape of the filters and bound per request: the tenancy layer then works out
# what a statement reads once, and SQLAlchemy its cache key, not on every page.
@lru_cache(maxsize=256)
def _page_statement(shape: tuple[str, ...], after: bool) -> Select[Any]:
    stmt = _events().where(*_where(shape))
    if after:
        place = tuple_(
            bindparam("before_at", type_=AuditEvent.created_at.type),
            bindparam("before_id", type_=AuditEvent.id.type),
        )
        stmt = stmt.where(tuple_(AuditEvent.created_at, AuditEvent.id) < place)
    return stmt.order_by(*NEWEST_FIRST).limit(bindparam("page_limit"))


@lru_cache(maxsize=1)
def _one_event() -> Select[Any]:
    return _events().where(AuditEvent.id == bindparam("event_id"))


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


def target_names(events: Iterable[Any]) -> dict[tuple[str, str], str]:
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
    if not wanted:
        return names
    values = {f"{kind}_ids": sorted(ids) for kind, ids in wanted.items()}
    statement = _naming_statement(tuple(sorted(wanted)), db.session.get_bind().dialect.name)
    for ident, text, kind in db.session.execute(statement, values):
        names[(kind, str(ident))] = _NAMING[kind][1](ident, text)
    return names


@lru_cache(maxsize=64)
def _naming_statement(kinds: tuple[str, ...], dialect: str) -> Any:
    """The names of targets of `kinds`, each kind's ids bound per request (built once per
    combination of kinds, as a page's statement is). On PostgreSQL each kind's ids are one
    array (`= ANY(:ids)`): the statement's text is the same whatever their number, so it is
    compiled once and psycopg prepares it, where an `IN` list is written out again for
    every run (SQLite has no arrays)."""
    lookups = []
    for kind in kinds:
        lookup = _NAMING[kind][0]()
        key = lookup.selected_columns[0]
        if dialect == "postgresql":
            matches = key == any_(bindparam(f"{kind}_ids", type_=ARRAY(Integer)))
        else:
            matches = key.in_(bindparam(f"{kind}_ids", expanding=True))
        lookups.append(lookup.add_columns(literal(kind).label("kind")).where(matches))
    return lookups[0] if len(lookups) == 1 else union_all(*lookups)


def target_label(event: Any, names: dict[tuple[str, str], str]) -> str:
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


# --- A page's rows as the table shows them --------------------------------------------------


class ShownEvent(NamedTuple):
    """One row of the log's table, its texts worked out once."""

    link: str  # to the event's own page
    when: str
    who: str
    support: str  # made in a support session: as whom, why, the ticket; else ""
    on_behalf_of_id: int | None
    what: str
    action: str
    target: str
    details: list[tuple[str, str]]


def shown(
    events: Iterable[Any],
    names: dict[tuple[str, str], str],
    link: Callable[[int], str],
) -> list[ShownEvent]:
    """The rows of a page (`names`: its targets', from `target_names`; `link`: the address of
    an event's page by its id)."""
    return [
        ShownEvent(
            link=link(e.id),
            when=e.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            who=e.actor_label or e.actor_type.value,
            support=support_note(e),
            on_behalf_of_id=e.on_behalf_of_id,
            what=describe(e.action),
            action=e.action,
            target=target_label(e, names),
            details=detail_items(e.details),
        )
        for e in events
    ]


def support_note(event: Any) -> str:
    """What support did it as: the user acted as, the reason, the ticket ("" if not support)."""
    if event.support_reason is None:
        return ""
    acted_as = f"as {event.support_user_email} · " if event.on_behalf_of_id else ""
    ticket = f" · ticket {event.support_ticket}" if event.support_ticket else ""
    return f"{acted_as}{event.support_reason}{ticket}"
