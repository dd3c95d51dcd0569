"""Support impersonation (DESIGN §8): who may act as whom, starting, the check every request
makes, and every way one ends.

An impersonation is a session of the user's (`impersonator_id` = the agent) that the agent's
browser carries instead of their own, plus an `Impersonation` row with the reason, the ticket
and the agent's own session, which stays live, untouched, to return to. While it is on,
`g.impersonation` holds an `ImpersonationView`: pages show the banner from it and
`record_audit` names the agent as actor and the user as `on_behalf_of` in every event.

It ends by Stop, by its time limit, or on the next request after anything that takes the
right away (the agent's session ended, the agent deactivated or no longer support, the feature
switched off, the user deactivated, made admin or support agent). Changes an admin makes to
either person end it at once, under the partner lock that starting also takes, so two
requests at once cannot leave an impersonation of someone who may not be impersonated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import url_for
from sqlalchemy import ColumnElement, or_, select, update

from portal.audit.services import record_audit
from portal.clock import utcnow
from portal.exceptions import Conflict, Forbidden, Invalid
from portal.extensions import db
from portal.features.evaluation import evaluate
from portal.mail.services import send_email
from portal.roles.models import Role
from portal.sessions.models import UserSession
from portal.sessions.services import ClientInfo, Presented, is_live, open_impersonation_session
from portal.support.models import EndReason, Impersonation
from portal.tenancy.context import current_partner
from portal.tenancy.models import Partner
from portal.text import character_problem, collapse_spaces
from portal.unit_of_work import lock_partner
from portal.users.models import User, UserStatus

MIN_REASON_LENGTH = 10
MAX_REASON_LENGTH = 500
MAX_TICKET_LENGTH = 64


class ImpersonationRefused(Forbidden):
    """Starting an impersonation that the rules do not allow."""


class SupportInputInvalid(Invalid):
    """A reason or ticket that cannot be used; `field` names the form field."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class ImpersonationView:
    """An impersonation as plain values, read once per request: what the banner, the audit
    events and the error pages use (they work after a failed transaction too)."""

    id: int
    agent_id: int
    agent_email: str
    agent_label: str
    target_id: int
    target_email: str
    target_label: str
    reason: str
    ticket: str | None
    started_at: datetime
    expires_at: datetime

    @classmethod
    def of(cls, imp: Impersonation) -> ImpersonationView:
        agent, target = imp.agent, imp.target
        return cls(
            imp.id,
            agent.id,
            agent.email,
            agent.label,
            target.id,
            target.email,
            target.label,
            imp.reason,
            imp.ticket,
            imp.started_at,
            imp.expires_at,
        )

    @property
    def minutes_left(self) -> int:
        """Whole minutes until the time limit, rounded up (1 in its last minute)."""
        seconds = (self.expires_at - utcnow()).total_seconds()
        return max(0, math.ceil(seconds / 60))


# --- Who may act as whom -----------------------------------------------------------------


def support_problem(agent: User) -> str | None:
    """Why `agent` may not use support on this partner (the feature aside), or None."""
    if agent.status != UserStatus.ACTIVE:
        return "Your account is not active."
    if not agent.is_support or agent.role == Role.ADMIN:
        return (
            "Only support agents can use the support pages. "
            "An administrator of this portal can grant you the support capability."
        )
    return None


def target_problem(agent: User, target: User) -> str | None:
    """Why `agent` may not act as `target`, or None."""
    if target.id == agent.id:
        return "You cannot act as yourself."
    if target.status != UserStatus.ACTIVE:
        return (
            f"{target.email} is {target.status.value}: only active accounts can be accessed "
            "by support."
        )
    if target.role == Role.ADMIN:
        return "Administrators cannot be impersonated."
    if target.is_support:
        return f"{target.email} is a support agent; support agents cannot act as one another."
    return None


def clean_reason(value: str) -> str:
    """The reason as stored, or SupportInputInvalid."""
    reason = collapse_spaces(value or "")
    if len(reason) < MIN_REASON_LENGTH:
        raise SupportInputInvalid(
            f"Give the reason in at least {MIN_REASON_LENGTH} characters: the user reads it "
            "in their account activity.",
            "reason",
        )
    if len(reason) > MAX_REASON_LENGTH:
        raise SupportInputInvalid(f"Use at most {MAX_REASON_LENGTH} characters.", "reason")
    problem = character_problem(reason, of="the reason")
    if problem is not None:
        raise SupportInputInvalid(problem, "reason")
    return reason


def clean_ticket(value: str | None) -> str | None:
    """The ticket reference as stored (None when empty), or SupportInputInvalid."""
    ticket = collapse_spaces(value or "")
    if not ticket:
        return None
    if len(ticket) > MAX_TICKET_LENGTH:
        raise SupportInputInvalid(f"Use at most {MAX_TICKET_LENGTH} characters.", "ticket")
    problem = character_problem(ticket, of="the ticket reference")
    if problem is not None:
        raise SupportInputInvalid(problem, "ticket")
    return ticket


# --- Starting ----------------------------------------------------------------------------


def _refuse_unless_allowed(agent: User, target: User) -> None:
    if not evaluate("impersonation").on:
        raise ImpersonationRefused("Support impersonation is switched off for this portal.")
    problem = support_problem(agent) or target_problem(agent, target)
    if problem is not None:
        raise ImpersonationRefused(problem)


def start_impersonation(
    agent: User,
    target: User,
    *,
    reason: str,
    ticket: str | None,
    agent_session: UserSession,
    client: ClientInfo,
) -> tuple[Impersonation, str]:
    """Let `agent` act as `target`: a new session of the target's for the agent's browser,
    and its token. The agent's own session stays as it is, to return to."""
    if agent_session.impersonator_id is not None:
        raise ImpersonationRefused(
            "You are already acting as someone. Stop that support session first."
        )
    _refuse_unless_allowed(agent, target)
    reason, ticket = clean_reason(reason), clean_ticket(ticket)
    # The rules read both people and the feature switch: read them again under the partner's
    # write lock, which promoting, deactivating and removing the support capability also take.
    lock_partner()
    db.session.refresh(agent)
    db.session.refresh(target)
    _refuse_unless_allowed(agent, target)
    close_lapsed()
    already = _open_involving(Impersonation.agent_session_id == agent_session.id)
    if already:  # two clicks at once, or another tab's start a moment before
        raise Conflict(
            f"A support session from this browser is already on (as {already[0].target.email}). "
            "Stop it first."
        )
    policy = current_partner.session_policy
    now = utcnow()
    expires_at = min(
        now + timedelta(minutes=policy.impersonation_minutes), agent_session.expires_at
    )
    record, token = open_impersonation_session(target, agent, client, expires_at=expires_at)
    imp = Impersonation(
        agent_id=agent.id,
        target_id=target.id,
        agent_session_id=agent_session.id,
        session_id=record.id,
        reason=reason,
        ticket=ticket,
        ip=client.ip,
        started_at=now,
        expires_at=expires_at,
    )
    db.session.add(imp)
    db.session.flush()
    minutes = math.ceil((expires_at - now).total_seconds() / 60)
    record_audit(
        "support.impersonation_start",
        target=target,
        actor=agent,
        impersonation=ImpersonationView.of(imp),
        details={
            "agent": agent.email,
            "user": target.email,
            "reason": reason,
            "ticket": ticket,
            "minutes": minutes,
            "expires_at": expires_at.isoformat(),
        },
    )
    if policy.impersonation_notify:
        send_email(
            target.email,
            "Support accessed your account",
            "support_access",
            user=target,
            agent=agent.label,
            reason=reason,
            ticket=ticket,
            started_at=now,
            minutes=minutes,
            activity_link=url_for("account.activity", _external=True),
        )
    return imp, token


# --- Ending ------------------------------------------------------------------------------


def end_impersonation(
    imp: Impersonation,
    why: EndReason,
    *,
    actor: User | None,
    at: datetime | None = None,
    by: User | None = None,
) -> bool:
    """End `imp` (at `at`, default now) and its session; False when it had already ended.

    Compare-and-set, so two requests noticing the same end at once record it once. `actor`
    is who ended it for the audit event (the agent, an admin, None for the portal).
    """
    now = utcnow()
    at = min(at or now, now)
    won = db.session.execute(
        update(Impersonation)
        .where(Impersonation.id == imp.id, Impersonation.ended_at.is_(None))
        .values(ended_at=at, end_reason=why, ended_by_id=by.id if by else None)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not won:
        return False
    db.session.execute(
        update(UserSession)
        .where(UserSession.id == imp.session_id, UserSession.revoked_at.is_(None))
        .values(
            revoked_at=now,
            revoked_reason=f"support session ended: {why.value}",
            revoked_by_id=by.id if by else None,
        )
        .execution_options(synchronize_session=False)
    )
    view = ImpersonationView.of(imp)
    record_audit(
        "support.impersonation_end",
        target=("users", imp.target_id),
        actor=actor,
        impersonation=view,
        details={
            "how": why.value,
            "agent": view.agent_email,
            "user": view.target_email,
            "reason": view.reason,
            "ticket": view.ticket,
            "started_at": view.started_at.isoformat(),
            "ended_at": at.isoformat(),
            "minutes": math.ceil((at - view.started_at).total_seconds() / 60),
        },
    )
    db.session.expire(imp)
    return True


def stop_impersonation(view: ImpersonationView) -> Impersonation:
    """The agent's Stop: end the impersonation now (if nothing ended it meanwhile)."""
    imp = db.session.get(Impersonation, view.id)
    if imp is None:  # pragma: no cover - the row is never deleted
        raise ImpersonationRefused("That support session no longer exists.")
    end_impersonation(imp, EndReason.STOPPED, actor=imp.agent, by=imp.agent)
    return imp


def _open_involving(*conditions: ColumnElement[bool]) -> list[Impersonation]:
    if not conditions:
        return []
    stmt = select(Impersonation).where(Impersonation.ended_at.is_(None), or_(*conditions))
    return list(db.session.execute(stmt.order_by(Impersonation.id)).scalars())


def end_impersonations_of(
    user: User,
    *,
    as_agent: EndReason | None = None,
    as_target: EndReason | None = None,
    by: User | None,
) -> int:
    """End at once the open impersonations `user` takes part in, as agent and/or as the user
    acted as (an admin deactivated them, made them admin, changed their support capability).

    Callers hold the partner lock (`hold_partner`), as starting does: an impersonation
    started a moment before is seen here, and one starting a moment after sees the change.
    """
    conditions = []
    if as_agent is not None:
        conditions.append(Impersonation.agent_id == user.id)
    if as_target is not None:
        conditions.append(Impersonation.target_id == user.id)
    ended = 0
    now = utcnow()
    for imp in _open_involving(*conditions):
        if imp.expires_at <= now:  # it lapsed before: that is how it ended
            ended += end_impersonation(imp, EndReason.EXPIRED, actor=None, at=imp.expires_at)
            continue
        why = as_agent if imp.agent_id == user.id else as_target
        ended += end_impersonation(imp, why, actor=by, by=by)  # type: ignore[arg-type]
    return ended


def close_lapsed() -> int:
    """Record the end of the partner's impersonations whose time ran out unnoticed (the agent
    never came back): ended when their limit passed."""
    now = utcnow()
    lapsed = _open_involving(Impersonation.expires_at <= now)
    return sum(end_impersonation(i, EndReason.EXPIRED, actor=None, at=i.expires_at) for i in lapsed)


def end_for_session(record: UserSession, *, by: User) -> bool:
    """An admin ends a support session (from the session list): the impersonation ends now."""
    imp = db.session.execute(
        select(Impersonation).where(Impersonation.session_id == record.id)
    ).scalar_one_or_none()
    if imp is None:
        return False
    return end_impersonation(imp, EndReason.SESSION_REVOKED, actor=by, by=by)


# --- The check on every request ----------------------------------------------------------


@dataclass(frozen=True)
class Checked:
    """What the request's support session is: on (`over` None) or over, and since when."""

    impersonation: Impersonation | None
    over: EndReason | None = None
    at: datetime | None = None


def check_impersonation(partner: Partner, found: Presented) -> Checked:
    """Whether the support session the cookie names still lets its agent act as its user.

    Part of the per-request session check (`portal/auth/loader.py`): every right it rests on
    is read again, so a change anywhere ends it on the next request.
    """
    now = utcnow()
    idle = timedelta(minutes=partner.session_policy.idle_minutes)
    row = db.session.execute(
        select(Impersonation, is_live(now, idle).label("own_live"))
        .join(UserSession, UserSession.id == Impersonation.agent_session_id)
        .where(Impersonation.session_id == found.record.id)
    ).one_or_none()
    if row is None:
        return Checked(None, EndReason.SESSION_REVOKED, now)
    imp, own_live = row.Impersonation, bool(row.own_live)
    if imp.ended_at is not None:
        return Checked(imp, imp.end_reason or EndReason.STOPPED, imp.ended_at)
    session, agent, target = found.record, imp.agent, imp.target
    if not evaluate("impersonation").on:
        return Checked(imp, EndReason.FEATURE_OFF, now)
    if agent.status != UserStatus.ACTIVE:
        return Checked(imp, EndReason.AGENT_DEACTIVATED, now)
    if support_problem(agent) is not None:
        return Checked(imp, EndReason.SUPPORT_REMOVED, now)
    if target_problem(agent, target) is not None:
        return Checked(imp, EndReason.TARGET_UNAVAILABLE, now)
    if session.revoked_at is not None:
        return Checked(imp, EndReason.SESSION_REVOKED, session.revoked_at)
    if session.expires_at <= now:
        return Checked(imp, EndReason.EXPIRED, session.expires_at)
    if not found.live:
        return Checked(imp, EndReason.IDLE, session.last_seen_at + idle)
    if not own_live:
        return Checked(imp, EndReason.AGENT_SESSION_ENDED, now)
    return Checked(imp)


def is_own_session(partner: Partner, imp: Impersonation, presented: Presented | None) -> bool:
    """Whether `presented` (the session the browser kept aside) is the agent's own, still
    live, so that the agent is back in it."""
    return (
        presented is not None
        and presented.live
        and presented.record.id == imp.agent_session_id
        and presented.record.impersonator_id is None
        and presented.record.partner_id == partner.id
    )


END_MESSAGES = {
    EndReason.STOPPED: "The support session as {user} has ended.",
    EndReason.EXPIRED: "The support session as {user} ended: its time limit was reached.",
    EndReason.IDLE: "The support session as {user} ended after a while without activity.",
    EndReason.SESSION_REVOKED: "The support session as {user} was ended (its session was "
    "signed out, by an administrator or the user).",
    EndReason.AGENT_SESSION_ENDED: "The support session as {user} ended because your own "
    "session ended.",
    EndReason.AGENT_DEACTIVATED: "The support session as {user} ended: your account was "
    "deactivated.",
    EndReason.SUPPORT_REMOVED: "The support session as {user} ended: you no longer hold the "
    "support capability.",
    EndReason.FEATURE_OFF: "The support session as {user} ended: support impersonation was "
    "switched off for this portal.",
    EndReason.TARGET_UNAVAILABLE: "The support session as {user} ended: that account can no "
    "longer be accessed by support.",
}


def end_message(why: EndReason, user_email: str, *, returned: bool) -> str:
    """What the agent reads when a support session ended without their Stop."""
    then = (
        " You are back in your own account."
        if returned
        else " Sign in again to continue with your own account."
    )
    return END_MESSAGES[why].format(user=user_email) + then
