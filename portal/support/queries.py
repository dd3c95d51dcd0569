"""What support agents and users read about support: a user's summary, and the accesses to
an account (with the account's sign-ins, its activity page)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, and_, literal, select, union_all
from sqlalchemy.orm import joinedload

from portal.audit.models import AuditEvent
from portal.audit.queries import events_about, sign_ins_of
from portal.extensions import db
from portal.sessions.services import live_sessions_of
from portal.subscriptions.models import Subscription, SubscriptionEvent, SubscriptionState
from portal.support.models import Impersonation
from portal.users.models import User


def _accesses(user: User, limit: int) -> Select[tuple[Impersonation]]:
    return (
        select(Impersonation)
        .where(Impersonation.target_id == user.id)
        .order_by(Impersonation.started_at.desc(), Impersonation.id.desc())
        .limit(limit)
    )


def accesses_to(user: User, limit: int = 50) -> list[Impersonation]:
    """Support's accesses to `user`'s account, newest first."""
    stmt = _accesses(user, limit).options(joinedload(Impersonation.agent))  # one statement
    return list(db.session.execute(stmt).scalars())


@dataclass(frozen=True)
class Activity:
    """What the account's activity page lists, each newest first."""

    accesses: list[Impersonation]
    sign_ins: list[AuditEvent]


def account_activity(user: User, accesses: int = 50, sign_ins: int = 10) -> Activity:
    """Support's accesses to `user`'s account (with their agents) and the user's own latest
    sign-ins, in one statement: the ids each list shows, side by side (UNION ALL), each
    outer-joined to its row."""
    ids = {
        "access": _accesses(user, accesses).with_only_columns(Impersonation.id).subquery(),
        "sign-in": sign_ins_of(user, sign_ins).with_only_columns(AuditEvent.id).subquery(),
    }
    shown = union_all(
        *(select(literal(kind).label("kind"), listed.c.id) for kind, listed in ids.items())
    ).subquery("shown")
    rows = db.session.execute(
        select(Impersonation, AuditEvent)
        .select_from(shown)
        .outerjoin(Impersonation, and_(shown.c.kind == "access", Impersonation.id == shown.c.id))
        .outerjoin(AuditEvent, and_(shown.c.kind == "sign-in", AuditEvent.id == shown.c.id))
        .options(joinedload(Impersonation.agent))
    ).all()
    found = [i for i, _ in rows if i is not None]
    events = [e for _, e in rows if e is not None]
    return Activity(
        accesses=sorted(found, key=lambda i: (i.started_at, i.id), reverse=True),
        sign_ins=sorted(events, key=lambda e: (e.created_at, e.id), reverse=True),
    )


@dataclass(frozen=True)
class Summary:
    """The read-only view of one user a support agent starts from."""

    user: User
    live_sessions: int
    held: Subscription | None
    pending: Subscription | None
    history: list[SubscriptionEvent]
    events: list[AuditEvent]
    accesses: list[Impersonation]


def subscription_history(user: User, limit: int = 20) -> list[SubscriptionEvent]:
    stmt = (
        select(SubscriptionEvent)
        .join(Subscription, Subscription.id == SubscriptionEvent.subscription_id)
        .where(Subscription.user_id == user.id)
        .order_by(SubscriptionEvent.created_at.desc(), SubscriptionEvent.id.desc())
        .limit(limit)
    )
    return list(db.session.execute(stmt).scalars())


def user_summary(user: User) -> Summary:
    subs = db.session.execute(
        select(Subscription).where(
            Subscription.user_id == user.id, Subscription.state != SubscriptionState.UNSIGNED
        )
    ).scalars()
    held = pending = None
    for sub in subs:
        if sub.is_held:
            held = sub
        else:
            pending = sub
    return Summary(
        user=user,
        live_sessions=len(live_sessions_of(user)),
        held=held,
        pending=pending,
        history=subscription_history(user),
        events=events_about(user),
        accesses=accesses_to(user, limit=10),
    )
