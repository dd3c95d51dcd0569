"""Every model in one import, for Alembic and the app factory."""

from portal.audit.models import ActorType, AuditEvent
from portal.operator.models import Operator
from portal.sessions.models import LoginMethod, OperatorSession, UserSession
from portal.tenancy.models import Partner, PartnerStatus
from portal.users.models import Role, User, UserStatus

__all__ = [
    "ActorType",
    "AuditEvent",
    "LoginMethod",
    "Operator",
    "OperatorSession",
    "Partner",
    "PartnerStatus",
    "Role",
    "User",
    "UserSession",
    "UserStatus",
]
