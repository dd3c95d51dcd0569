"""The subscription lifecycle: one transition function, one table of allowed moves.

    (none) -> signing -> signed -> suspended -> signed ... -> unsigned (final)

Every move is compare-and-set on (state, version), so of two concurrent transitions from the
same state exactly one wins; each is recorded as a SubscriptionEvent and audited.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from flask import g
from sqlalchemy import ScalarSelect, Select, and_, bindparam, literal_column, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from portal.audit.services import record_audit
from portal.clock import utcnow
from portal.exceptions import PortalError
from portal.extensions import db
from portal.roles.models import Role
from portal.roles.permissions import Permission
from portal.roles.policy import current_policy
from portal.subscriptions.models import (
    HELD_STATES,
    Plan,
    PlanStatus,
    Subscription,
    SubscriptionEvent,
    SubscriptionState,
)
from portal.unit_of_work import lock_partner
from portal.users.models import User, UserStatus

S = SubscriptionState


class ActorKind(enum.StrEnum):
    USER = "user"  # the subscriber, on their own subscription
    ADMIN = "admin"  # someone holding subscriptions.manage_any
    SYSTEM = "system"  # the portal itself (a role change that no longer allows the plan)


MOVES: dict[tuple[S | None, S], frozenset[ActorKind]] = {
    (None, S.SIGNING): frozenset({ActorKind.USER, ActorKind.ADMIN}),
    (S.SIGNING, S.SIGNED): frozenset({ActorKind.USER, ActorKind.ADMIN}),
    (S.SIGNING, S.UNSIGNED): frozenset({ActorKind.USER, ActorKind.ADMIN}),
    (S.SIGNED, S.SUSPENDED): frozenset({ActorKind.ADMIN, ActorKind.SYSTEM}),
    (S.SUSPENDED, S.SIGNED): frozenset({ActorKind.ADMIN}),
    (S.SIGNED, S.UNSIGNED): frozenset({ActorKind.USER, ActorKind.ADMIN}),
    (S.SUSPENDED, S.UNSIGNED): frozenset({ActorKind.USER, ActorKind.ADMIN}),
}


class SubscriptionRefused(PortalError):
    """A transition that is not allowed now; `state` is the subscription's current state."""

    def __init__(self, message: str, state: S | None = None) -> None:
        super().__init__(message)
        self.state = state

    @property
    def headers(self) -> dict[str, str]:
        # htmx callers redraw the subscription in the state it is really in.
        return {"X-Subscription-State": self.state.value if self.state else "none"}


def _check_actor(actor: User | None, kind: ActorKind, owner_id: int) -> None:
    policy = current_policy()
    if kind == ActorKind.USER:
        if actor is None or actor.id != owner_id:
            raise SubscriptionRefused("You can only change your own subscription.")
        if not policy.allows(actor, Permission.SUBSCRIPTION_MANAGE_OWN):
            raise SubscriptionRefused("Your role may not manage a subscription.")
    elif kind == ActorKind.ADMIN and not policy.allows(actor, Permission.SUBSCRIPTIONS_MANAGE_ANY):
        raise SubscriptionRefused("You may not manage other people's subscriptions.")


def _plan_problem(plan: Plan, role: Role) -> str | None:
    if not plan.is_active:
        return f"The plan {plan.name} is archived and takes no new subscriptions."
    if not plan.allows(role):
        return f"The plan {plan.name} is not available to the role {current_policy().label(role)}."
    return None


def _record(
    sub: Subscription,
    frm: S | None,
    to: S,
    actor: User | None,
    kind: ActorKind,
    reason: str,
    on_behalf_of: User | None,
) -> None:
    db.session.add(
        SubscriptionEvent(
            subscription_id=sub.id,
            from_state=frm,
            to_state=to,
            actor_id=actor.id if actor else None,
            actor_kind=kind.value,
            on_behalf_of_id=on_behalf_of.id if on_behalf_of else None,
            reason=reason,
        )
    )
    record_audit(
        f"subscription.{to.value}",
        target=sub,
        actor=actor,
        details={
            "from": frm.value if frm else None,
            "to": to.value,
            "plan": sub.plan.code,
            "user_id": sub.user_id,
            "by": kind.value,
            "reason": reason,
        },
    )


def held_subscription(user: User) -> Subscription | None:
    """The subscription in force for `user` (signed or suspended), if any."""
    return db.session.execute(
        select(Subscription).where(
            Subscription.user_id == user.id, Subscription.state.in_(HELD_STATES)
        )
    ).scalar_one_or_none()


def pending_subscription(user: User) -> Subscription | None:
    return db.session.execute(
        select(Subscription).where(Subscription.user_id == user.id, Subscription.state == S.SIGNING)
    ).scalar_one_or_none()


def _as_they_are_now(*rows: object) -> None:
    """Take the partner's write lock, then read `rows` again: a role, a status or a plan that
    changed while this request waited decides, not the one it loaded at its start."""
    lock_partner()
    for row in dict.fromkeys(r for r in rows if r is not None):
        db.session.refresh(row)


def start_signing(
    user: User, plan: Plan, *, actor: User, kind: ActorKind, reason: str = ""
) -> Subscription:
    """(none) -> signing: begin a subscription (or a switch to another plan)."""
    _as_they_are_now(user, plan, actor)
    _check_actor(actor, kind, user.id)
    if kind not in MOVES[(None, S.SIGNING)]:
        raise SubscriptionRefused("Only the user or an administrator can start a subscription.")
    if user.status != UserStatus.ACTIVE:
        raise SubscriptionRefused(f"{user.email} is not an active user.")
    problem = _plan_problem(plan, user.role)
    if problem:
        raise SubscriptionRefused(problem)
    if pending_subscription(user) is not None:
        raise SubscriptionRefused(
            "A subscription is already being signed; confirm or abandon it first.", S.SIGNING
        )
    held = held_subscription(user)
    if held is not None and held.plan_id == plan.id:
        raise SubscriptionRefused(f"This is already your plan ({held.state.value}).", held.state)
    now = utcnow()
    sub = Subscription(
        user_id=user.id, plan_id=plan.id, state=S.SIGNING, created_at=now, updated_at=now
    )
    try:
        with db.session.begin_nested():
            db.session.add(sub)
            db.session.flush()
    except IntegrityError as exc:  # a concurrent start won the race
        raise SubscriptionRefused("A subscription is already being signed.", S.SIGNING) from exc
    on_behalf_of = user if actor is not None and actor.id != user.id else None
    _record(sub, None, S.SIGNING, actor, kind, reason, on_behalf_of)
    return sub


def accept_terms(sub: Subscription, *, actor: User) -> Subscription:
    """The user accepts the terms: signed at once, or awaiting approval when the plan wants it."""
    _check_actor(actor, ActorKind.USER, sub.user_id)
    if sub.state != S.SIGNING:
        raise SubscriptionRefused(f"This subscription is {sub.state.value}.", sub.state)
    if sub.terms_accepted_at is None:
        sub.terms_accepted_at = utcnow()
        record_audit("subscription.terms_accepted", target=sub, actor=actor)
    if sub.plan.needs_approval:
        return sub
    return transition(sub, S.SIGNED, actor=actor, kind=ActorKind.USER, reason="terms accepted")


def transition(
    sub: Subscription,
    to: S,
    *,
    actor: User | None,
    kind: ActorKind,
    reason: str = "",
    on_behalf_of: User | None = None,
) -> Subscription:
    """Move `sub` to `to`, if the table, the actor and the rules allow it; compare-and-set."""
    reason = " ".join(reason.split())[:300]
    g.pop(_PRELOADED, None)  # what the request read of entitlements may change here
    frm = sub.state
    allowed = MOVES.get((frm, to))
    if allowed is None:
        raise SubscriptionRefused(f"A {frm.value} subscription cannot become {to.value}.", frm)
    if kind not in allowed:
        raise SubscriptionRefused(
            f"That change ({frm.value} to {to.value}) is not yours to make.", frm
        )
    if to == S.SIGNED:  # the rules below read the user's role and the plan
        _as_they_are_now(sub.user, sub.plan, actor)
    _check_actor(actor, kind, sub.user_id)
    _check_rules(sub, frm, to, kind, reason)
    if to == S.SIGNED and frm == S.SIGNING:
        # Unsign the plan held so far first: at no moment may two be in force.
        _unsign_previous(sub, actor, kind)
    version = sub.version
    now = utcnow()
    won = db.session.execute(
        update(Subscription)
        .where(
            Subscription.id == sub.id, Subscription.state == frm, Subscription.version == version
        )
        .values(state=to, version=version + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if won != 1:
        db.session.refresh(sub)
        raise SubscriptionRefused(
            f"This subscription was changed meanwhile; it is now {sub.state.value}.", sub.state
        )
    db.session.refresh(sub)
    if on_behalf_of is None and actor is not None and actor.id != sub.user_id:
        on_behalf_of = sub.user
    _record(sub, frm, to, actor, kind, reason, on_behalf_of)
    return sub


ADMIN_ACTIONS: dict[str, tuple[S, str]] = {
    "approve": (S.SIGNED, "approved"),
    "reject": (S.UNSIGNED, "rejected"),
    "suspend": (S.SUSPENDED, "suspended"),
    "resume": (S.SIGNED, "resumed"),
    "end": (S.UNSIGNED, "ended"),
}


def admin_move(sub: Subscription, action: str, *, actor: User, reason: str = "") -> Subscription:
    """An administrator's named action (approve, reject, suspend, resume, end) on `sub`."""
    if action not in ADMIN_ACTIONS:
        raise SubscriptionRefused(f"Unknown action {action!r}.", sub.state)
    to, verb = ADMIN_ACTIONS[action]
    if not reason.strip() and action != "suspend":  # a suspension needs a real reason
        reason = f"{verb} by an administrator"
    return transition(sub, to, actor=actor, kind=ActorKind.ADMIN, reason=reason)


def _check_rules(sub: Subscription, frm: S, to: S, kind: ActorKind, reason: str) -> None:
    plan, user = sub.plan, sub.user
    if frm == S.SIGNING and to == S.SIGNED:
        if sub.terms_accepted_at is None:
            raise SubscriptionRefused("The terms have not been accepted yet.", frm)
        if kind == ActorKind.USER and plan.needs_approval:
            raise SubscriptionRefused("This plan needs an administrator's approval.", frm)
        if kind == ActorKind.ADMIN and not plan.needs_approval:
            raise SubscriptionRefused("This plan needs no approval; the user confirms it.", frm)
        problem = _plan_problem(plan, user.role)
        if problem:
            raise SubscriptionRefused(problem, frm)
    if frm == S.SIGNED and to == S.SUSPENDED and not reason:
        raise SubscriptionRefused("Give a reason for the suspension.", frm)
    if frm == S.SUSPENDED and to == S.SIGNED and not plan.allows(user.role):
        raise SubscriptionRefused(
            f"The plan {plan.name} is not available to the role "
            f"{current_policy().label(user.role)}; change the role or end the subscription.",
            frm,
        )


def _unsign_previous(sub: Subscription, actor: User | None, kind: ActorKind) -> None:
    """A switch: the plan held so far ends in the same transaction as the new one is signed."""
    previous = db.session.execute(
        select(Subscription).where(
            Subscription.user_id == sub.user_id,
            Subscription.id != sub.id,
            Subscription.state.in_(HELD_STATES),
        )
    ).scalar_one_or_none()
    if previous is not None:
        reason = f"switched to {sub.plan.name}"
        transition(previous, S.UNSIGNED, actor=actor, kind=kind, reason=reason)


def role_change_impact(user: User, new_role: Role) -> Subscription | None:
    """The signed subscription a move to `new_role` would suspend, if any."""
    held = held_subscription(user)
    if held is not None and held.state == S.SIGNED and not held.plan.allows(new_role):
        return held
    return None


def suspend_for_role(user: User, actor: User, old_role: Role) -> Subscription | None:
    """After a role change: suspend the subscription the new role does not allow."""
    held = role_change_impact(user, user.role)
    if held is None:
        return None
    label = current_policy().label
    reason = (
        f"role changed from {label(old_role)} to {label(user.role)}; "
        f"the plan {held.plan.name} is not available to {label(user.role)}"
    )
    return transition(held, S.SUSPENDED, actor=actor, kind=ActorKind.SYSTEM, reason=reason)


_PRELOADED = "preloaded_entitlements"


def signed_entitlements(user_id: Any) -> ScalarSelect[Any]:
    """A column: the entitlements of the plan that `user_id`'s signed subscription is on
    (NULL when none), for the statement that loads the request's session and user."""
    return (
        select(Plan.entitlements)
        .join(
            Subscription,
            and_(Subscription.plan_id == Plan.id, Subscription.partner_id == Plan.partner_id),
        )
        .where(
            Subscription.user_id == user_id,
            Subscription.state == S.SIGNED,
            # The condition of the index of held subscriptions (uq_subscriptions_one_held_per_
            # user) in its own words, so that SQLite's planner uses it: a lookup of the one row
            # by user, not a walk of the partner's signed subscriptions (20,000 at the large
            # partner of `make bench`). Written into the statement when it is compiled, not
            # on every run as a literal parameter would be.
            Subscription.state.in_([literal_column(f"'{state.value}'") for state in HELD_STATES]),
        )
        .limit(1)
        .scalar_subquery()
    )


def preload_entitlements(user_id: int, entitlements: list[str] | None) -> None:
    """What `signed_entitlements` read for the request's user, kept for this request."""
    g.setdefault(_PRELOADED, {})[user_id] = frozenset(entitlements or ())


def entitlements_of(user: User) -> frozenset[str]:
    """Feature keys the user's signed subscription unlocks."""
    preloaded = g.get(_PRELOADED)
    if preloaded is not None and user.id in preloaded:
        return preloaded[user.id]
    held = held_subscription(user)
    if held is None or held.state != S.SIGNED:
        return frozenset()
    return frozenset(held.plan.entitlements)


def plan_offers(user: User) -> list[tuple[Plan, str | None]]:
    """Every active plan, with the reason it is not open to `user` (None when it is)."""
    plans = db.session.execute(
        select(Plan).where(Plan.status == PlanStatus.ACTIVE).order_by(Plan.position, Plan.name)
    ).scalars()
    return _offers(user, plans)


@dataclass(frozen=True)
class Overview:
    """What the user's subscription page shows: held, being signed, the plans on offer and
    the latest changes (newest first)."""

    held: Subscription | None
    pending: Subscription | None
    offers: list[tuple[Plan, str | None]]
    history: list[SubscriptionEvent]


OPEN_STATES = (*HELD_STATES, S.SIGNING)


@cache
def _overview_statement() -> Select:
    """Built once: each request binds the user and how many changes to show."""
    latest = (
        select(SubscriptionEvent.id, SubscriptionEvent.subscription_id)
        .join(Subscription, Subscription.id == SubscriptionEvent.subscription_id)
        .where(Subscription.user_id == bindparam("overview_user"))
        .order_by(SubscriptionEvent.created_at.desc(), SubscriptionEvent.id.desc())
        .limit(bindparam("overview_history"))
        .cte("latest")
    )
    return (
        select(Plan, Subscription, SubscriptionEvent)
        .select_from(Plan)
        .outerjoin(
            Subscription,
            and_(
                Subscription.plan_id == Plan.id,
                Subscription.partner_id == Plan.partner_id,
                Subscription.user_id == bindparam("overview_user"),
                or_(
                    Subscription.state.in_(OPEN_STATES),
                    Subscription.id.in_(select(latest.c.subscription_id)),
                ),
            ),
        )
        .outerjoin(
            SubscriptionEvent,
            and_(
                SubscriptionEvent.subscription_id == Subscription.id,
                SubscriptionEvent.partner_id == Subscription.partner_id,
                SubscriptionEvent.id.in_(select(latest.c.id)),
            ),
        )
        .where(or_(Plan.status == PlanStatus.ACTIVE, Subscription.id.is_not(None)))
        .order_by(Plan.position, Plan.name)
    )


def overview(user: User, history: int = 50) -> Overview:
    """The user's subscription page in one statement: every plan, outer-joined to the user's
    subscriptions on it that are open or changed lately, and to those latest changes."""
    rows = db.session.execute(
        _overview_statement(), {"overview_user": user.id, "overview_history": history}
    ).all()
    subs: dict[int, Subscription] = {}
    events = []
    for plan, sub, event in rows:
        if sub is not None:
            set_committed_value(sub, "plan", plan)
            subs[sub.id] = sub
        if event is not None:
            set_committed_value(event, "subscription", sub)
            events.append(event)
    events.sort(key=lambda e: (e.created_at, e.id), reverse=True)
    return Overview(
        held=next((s for s in subs.values() if s.state in HELD_STATES), None),
        pending=next((s for s in subs.values() if s.state == S.SIGNING), None),
        offers=_offers(user, dict.fromkeys(p for p, _, _ in rows if p.status == PlanStatus.ACTIVE)),
        history=events,
    )


def _offers(user: User, plans: Iterable[Plan]) -> list[tuple[Plan, str | None]]:
    label = current_policy().label
    offers = []
    for plan in plans:
        reason = None
        if not plan.allows(user.role):
            roles = ", ".join(
                label(r) for r in user.role.__class__ if r.value in plan.allowed_roles
            )
            reason = f"Only for {roles}."
        offers.append((plan, reason))
    return offers
