"""Reading the audit trail about one user (support summary, account activity)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, and_, or_, select

from portal.audit.models import AuditEvent
from portal.extensions import db
from portal.users.models import User


def _about(user: User) -> ColumnElement[bool]:
    return or_(
        and_(AuditEvent.target_type == "users", AuditEvent.target_id == str(user.id)),
        # What support did in their account, whatever it touched (a subscription, the profile).
        and_(AuditEvent.impersonation_id.is_not(None), AuditEvent.on_behalf_of_id == user.id),
    )


def events_about(user: User, limit: int = 20) -> list[AuditEvent]:
    """The latest events about `user`, newest first."""
    stmt = (
        select(AuditEvent)
        .where(_about(user))
        .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
        .limit(limit)
    )
    return list(db.session.execute(stmt).scalars())


def sign_ins_of(user: User, limit: int = 10) -> Select[tuple[AuditEvent]]:
    """The user's own latest sign-ins, newest first (support sessions are not sign-ins of
    theirs)."""
    return (
        select(AuditEvent)
        .where(
            AuditEvent.action == "auth.login",
            AuditEvent.target_type == "users",
            AuditEvent.target_id == str(user.id),
        )
        .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
        .limit(limit)
    )
