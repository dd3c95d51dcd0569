"""Every model in one import, for Alembic and the app factory."""

from portal.api.models import ApiClient, ApiToken, IdempotentRequest
from portal.audit.models import ActorType, AuditEvent
from portal.branding.models import PartnerLogo
from portal.features.models import FeatureSetting
from portal.mail.models import OutboxMessage
from portal.operator.models import Operator
from portal.privacy.models import DataExport
from portal.roles.models import Role, RoleSetting, RoleTransition
from portal.sessions.models import LoginMethod, OperatorSession, UserSession
from portal.sso.models import SsoConnection, SsoIdentity, SsoLogoutToken
from portal.subscriptions.models import Plan, Subscription, SubscriptionEvent, SubscriptionState
from portal.support.models import EndReason, Impersonation
from portal.tenancy.models import Partner, PartnerStatus
from portal.tokens.models import ActionToken, TokenPurpose
from portal.users.models import User, UserStatus

__all__ = [
    "ActionToken",
    "ActorType",
    "ApiClient",
    "ApiToken",
    "AuditEvent",
    "DataExport",
    "EndReason",
    "FeatureSetting",
    "IdempotentRequest",
    "Impersonation",
    "LoginMethod",
    "Operator",
    "OperatorSession",
    "OutboxMessage",
    "Partner",
    "PartnerLogo",
    "PartnerStatus",
    "Plan",
    "Role",
    "RoleSetting",
    "RoleTransition",
    "SsoConnection",
    "SsoIdentity",
    "SsoLogoutToken",
    "Subscription",
    "SubscriptionEvent",
    "SubscriptionState",
    "TokenPurpose",
    "User",
    "UserSession",
    "UserStatus",
]
