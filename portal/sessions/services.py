"""Creating, validating and revoking server-side sessions."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, bindparam, or_, select, update

from portal.audit.services import record_audit
from portal.clock import utcnow
from portal.exceptions import PortalError
from portal.extensions import db
from portal.operator.models import Operator
from portal.sessions.models import LoginMethod, OperatorSession, UserSession
from portal.tenancy.context import current_partner
from portal.tenancy.models import AtLimit, Partner, SessionPolicy
from portal.text import counted
from portal.tokens.generation import hash_token, new_token
from portal.unit_of_work import before_commit, lock_user
from portal.users.models import User, UserStatus

LAST_SEEN_RESOLUTION = timedelta(minutes=1)
OPERATOR_IDLE = timedelta(minutes=30)
OPERATOR_LIFETIME = timedelta(hours=12)


@dataclass(frozen=True)
class ClientInfo:
    """Where a login came from."""

    ip: str | None
    user_agent: str | None

    @property
    def user_agent_trimmed(self) -> str | None:
        return self.user_agent[:512] if self.user_agent else None


class SessionLimitReached(PortalError):
    """The user already has the maximum of live sessions and the policy says deny_new."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"You are already signed in on {counted(limit, 'device')}, the most this portal "
            "allows. Sign out on another device (or ask an administrator to end a session) "
            "and try again."
        )


def is_live(now: datetime, idle: timedelta) -> ColumnElement[bool]:
    """The one definition of a session that still authenticates, for lists and every request:
    not revoked, within its lifetime, and not idle too long (a remembered session outlives
    idle periods; its lifetime is its only limit)."""
    return is_live_at(now, now - idle)


def is_live_at(now: Any, seen_since: Any) -> ColumnElement[bool]:
    """`is_live` with the idle cut-off worked out (`now` less the idle timeout): values, or
    parameters of a statement built once and bound per request."""
    return and_(
        UserSession.revoked_at.is_(None),
        UserSession.expires_at > now,
        or_(UserSession.remember.is_(True), UserSession.last_seen_at > seen_since),
    )


def is_live_record(record: UserSession, now: datetime, idle: timedelta) -> bool:
    """`is_live` for a record in hand (the request's own session, loaded with its partner)."""
    return (
        record.revoked_at is None
        and record.expires_at > now
        and (record.remember or record.last_seen_at > now - idle)
    )


def live_sessions_query(now: datetime, idle: timedelta) -> Select:
    """Sessions that still authenticate."""
    return select(UserSession).where(is_live(now, idle))


def live_sessions_of(user: User) -> list[UserSession]:
    """The user's own live sessions (not support sessions in their name), oldest first."""
    now = utcnow()
    idle = timedelta(minutes=user.partner.session_policy.idle_minutes)
    params = {"live_user": user.id, "live_now": now, "live_seen_since": now - idle}
    return list(db.session.execute(_own_live_sessions(), params).scalars())


@cache
def _own_live_sessions() -> Select:
    """`is_live` for one user's own sessions, built once: each call binds its values."""
    return (
        select(UserSession)
        .where(
            is_live_at(bindparam("live_now"), bindparam("live_seen_since")),
            UserSession.user_id == bindparam("live_user"),
            UserSession.impersonator_id.is_(None),
        )
        .order_by(UserSession.created_at, UserSession.id)
    )


def _make_room(user: User, policy: SessionPolicy) -> None:
    """Apply the concurrent-session limit before a new login."""
    live = live_sessions_of(user)
    excess = len(live) - policy.max_concurrent + 1
    if excess <= 0:
        return
    if policy.at_limit == AtLimit.DENY_NEW:
        record_audit("session.limit_denied", target=user, actor=user, details={"live": len(live)})
        raise SessionLimitReached(policy.max_concurrent)
    for oldest in live[:excess]:
        revoke_user_session(oldest, by=None, reason="signed out: session limit reached")


def start_user_session(
    user: User,
    client: ClientInfo,
    *,
    method: LoginMethod = LoginMethod.PASSWORD,
    remember: bool = False,
    provider_session: tuple[str, str | None] | None = None,
) -> tuple[UserSession, str]:
    """Create a new session record for `user` (never reuse one) and return it with its token.

    "Remember me" (when the partner allows it) makes the record last `remember_me_days` and
    survive idle periods; it is revoked by exactly the same actions as any other session.
    `provider_session` is the identity provider's (issuer, sid) of a single sign-on, which
    its back-channel logout names.
    """
    # Two sign-ins of one user at once count that user's sessions one after the other.
    lock_user(user.id)
    policy = user.partner.session_policy
    remember = remember and policy.remember_me_allowed
    _make_room(user, policy)
    now = utcnow()
    lifetime = (
        timedelta(days=policy.remember_me_days)
        if remember
        else timedelta(hours=policy.absolute_hours)
    )
    token = new_token()
    record = UserSession(
        partner_id=user.partner_id,
        user_id=user.id,
        token_hash=hash_token(token),
        created_at=now,
        last_seen_at=now,
        expires_at=now + lifetime,
        ip=client.ip,
        user_agent=client.user_agent_trimmed,
        login_method=method,
        remember=remember,
        sso_issuer=provider_session[0] if provider_session else None,
        sso_sid=provider_session[1] if provider_session else None,
    )
    db.session.add(record)
    db.session.flush()
    record_audit(
        "session.start",
        target=record,
        actor=user,
        details={"method": method.value, "remember": remember},
    )
    return record, token


def _touch(model: type, record_id: int, last_seen: datetime, now: datetime) -> None:
    """Write last-seen at most once a minute per session, with the request's own commit.

    Deferred to just before that commit: authentication itself never writes, and on SQLite
    the write lock is held only for the moment of the commit.
    """
    if now - last_seen >= LAST_SEEN_RESOLUTION:
        before_commit(
            lambda: db.session.execute(
                update(model).where(model.id == record_id).values(last_seen_at=now)
            )
        )


@dataclass(frozen=True)
class Presented:
    """The session record a cookie names on a partner's host, and whether it authenticates."""

    record: UserSession
    live: bool


def presented_session(partner: Partner, token: str) -> Presented | None:
    """The record for `token` on `partner`'s host, live or not; None when there is none.

    Live means what `is_live` says, and its user is an active user of this partner (the query
    is partner-scoped and says so again). A support session that is no longer live is still
    returned: ending it returns its agent to their own session.
    """
    now = utcnow()
    idle = timedelta(minutes=partner.session_policy.idle_minutes)
    found = db.session.execute(
        select(UserSession, is_live(now, idle).label("live")).where(
            UserSession.token_hash == hash_token(token), UserSession.partner_id == partner.id
        )
    ).one_or_none()
    if found is None:
        return None
    return presented(partner, found.UserSession, record_live=bool(found.live))


def presented(
    partner: Partner,
    record: UserSession,
    *,
    user: User | None = None,
    record_live: bool | None = None,
) -> Presented:
    """The record a cookie named, loaded with its partner (and user): live or not."""
    user = user if user is not None else record.user
    if record_live is None:
        idle = timedelta(minutes=partner.session_policy.idle_minutes)
        record_live = is_live_record(record, utcnow(), idle)
    live = record_live and user.partner_id == partner.id and user.status == UserStatus.ACTIVE
    return Presented(record, live)


def touch_user_session(record: UserSession) -> None:
    """Note that `record` was used now (written at most once a minute, with the commit)."""
    _touch(UserSession, record.id, record.last_seen_at, utcnow())


def open_impersonation_session(
    target: User, agent: User, client: ClientInfo, *, expires_at: datetime
) -> tuple[UserSession, str]:
    """A session of `target` for a support agent acting as them, and its token.

    Not a sign-in of the target's: their last sign-in time stays, and it neither counts
    against nor evicts anything under their concurrent-session limit (`live_sessions_of`
    leaves support sessions out). The caller records the impersonation and its audit event.
    """
    now = utcnow()
    token = new_token()
    record = UserSession(
        partner_id=target.partner_id,
        user_id=target.id,
        impersonator_id=agent.id,
        token_hash=hash_token(token),
        created_at=now,
        last_seen_at=now,
        expires_at=expires_at,
        ip=client.ip,
        user_agent=client.user_agent_trimmed,
        login_method=LoginMethod.IMPERSONATION,
        remember=False,
    )
    db.session.add(record)
    db.session.flush()
    return record, token


def revoke_partner_sessions(
    *, by: User | None, reason: str, keep: UserSession | None = None
) -> int:
    """Revoke every live session of the partner in scope (except `keep`)."""
    stmt = (
        update(UserSession)
        .where(UserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason, revoked_by_id=by.id if by else None)
        .execution_options(synchronize_session=False)
    )
    if keep is not None:
        stmt = stmt.where(UserSession.id != keep.id)
    count = db.session.execute(stmt).rowcount
    record_audit(
        "session.revoke_partner",
        target=current_partner._get_current_object(),
        details={"reason": reason, "count": count, "kept": keep.id if keep else None},
    )
    return count


def revoke_user_session(record: UserSession, *, by: User | None, reason: str) -> bool:
    """Revoke one session; True if this call revoked it (False if it already was)."""
    now = utcnow()
    result = db.session.execute(
        update(UserSession)
        .where(UserSession.id == record.id, UserSession.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason, revoked_by_id=by.id if by else None)
        .execution_options(synchronize_session="fetch")
    )
    if result.rowcount:
        record_audit(
            "session.revoke", target=record, details={"reason": reason, "user_id": record.user_id}
        )
    return bool(result.rowcount)


def revoke_provider_sessions(
    *, issuer: str, sid: str | None, user_id: int | None, reason: str
) -> dict[int, int]:
    """End the live sessions the identity provider `issuer` signed in: those of its session
    `sid`, those of the user `user_id`, or those of both at once. How many per user.

    A session started before sessions kept their provider (no `sso_issuer`) is ended by the
    user alone, never by a `sid` it cannot match. The caller audits the logout as a whole
    (`accept_logout_token`)."""
    matching = [
        UserSession.revoked_at.is_(None),
        UserSession.expires_at > utcnow(),
        UserSession.login_method == LoginMethod.OIDC,
        or_(UserSession.sso_issuer == issuer, UserSession.sso_issuer.is_(None)),
    ]
    if sid is not None:
        matching += [UserSession.sso_issuer == issuer, UserSession.sso_sid == sid]
    if user_id is not None:
        matching.append(UserSession.user_id == user_id)
    owners = db.session.execute(
        update(UserSession)
        .where(*matching)
        .values(revoked_at=utcnow(), revoked_reason=reason, revoked_by_id=None)
        .returning(UserSession.user_id)
        .execution_options(synchronize_session=False)
    ).scalars()
    return dict(Counter(owners))


def start_operator_session(operator: Operator, client: ClientInfo) -> tuple[OperatorSession, str]:
    now = utcnow()
    token = new_token()
    record = OperatorSession(
        operator_id=operator.id,
        token_hash=hash_token(token),
        created_at=now,
        last_seen_at=now,
        expires_at=now + OPERATOR_LIFETIME,
        ip=client.ip,
        user_agent=client.user_agent_trimmed,
    )
    db.session.add(record)
    db.session.flush()
    record_audit("operator_session.start", target=record, actor=operator)
    return record, token


def presented_operator_session(token: str) -> OperatorSession | None:
    """The operator session record `token` names (root domain only), live or over."""
    return db.session.execute(
        select(OperatorSession).where(OperatorSession.token_hash == hash_token(token))
    ).scalar_one_or_none()


def operator_session_live(record: OperatorSession) -> bool:
    """Not revoked, its operator active, within its lifetime and not idle too long."""
    now = utcnow()
    return (
        record.revoked_at is None
        and record.operator.active
        and now < record.expires_at
        and now < record.last_seen_at + OPERATOR_IDLE
    )


def touch_operator_session(record: OperatorSession) -> None:
    """A live operator session was used: note it (at most once a minute)."""
    _touch(OperatorSession, record.id, record.last_seen_at, utcnow())


def revoke_operator_session(record: OperatorSession, *, reason: str) -> None:
    db.session.execute(
        update(OperatorSession)
        .where(OperatorSession.id == record.id, OperatorSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
    )
    record_audit("operator_session.revoke", target=record, details={"reason": reason})


def revoke_user_sessions(
    user: User, *, by: User | None, reason: str, keep: UserSession | None = None
) -> int:
    """Revoke every live session of `user` (except `keep`); returns how many were ended."""
    stmt = (
        update(UserSession)
        .where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason, revoked_by_id=by.id if by else None)
        .execution_options(synchronize_session=False)
    )
    if keep is not None:
        stmt = stmt.where(UserSession.id != keep.id)
    count = db.session.execute(stmt).rowcount
    if count:
        record_audit(
            "session.revoke_all",
            target=user,
            details={"reason": reason, "count": count, "kept": keep.id if keep else None},
        )
    return count
