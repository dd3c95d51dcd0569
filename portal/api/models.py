"""API clients of a partner, the bearer tokens they were issued, and remembered POST answers."""

from __future__ import annotations

import enum
import hashlib
import hmac
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship

from portal.clock import utcnow
from portal.extensions import db
from portal.tenancy.models import TenantOwned, referable, same_partner
from portal.users.models import User


class Scope(enum.StrEnum):
    USERS_READ = "users:read"
    USERS_WRITE = "users:write"
    SUBSCRIPTIONS_READ = "subscriptions:read"
    SUBSCRIPTIONS_WRITE = "subscriptions:write"
    SESSIONS_READ = "sessions:read"
    SESSIONS_WRITE = "sessions:write"
    AUDIT_READ = "audit:read"


SCOPE_DESCRIPTIONS: dict[Scope, str] = {
    Scope.USERS_READ: "List and read users, roles and plans",
    Scope.USERS_WRITE: "Invite users, change roles, deactivate and reactivate",
    Scope.SUBSCRIPTIONS_READ: "List and read subscriptions and their history",
    Scope.SUBSCRIPTIONS_WRITE: "Start a subscription for a user; move subscriptions "
    "(approve, reject, suspend, resume, end)",
    Scope.SESSIONS_READ: "List a user's active sessions",
    Scope.SESSIONS_WRITE: "End a session",
    Scope.AUDIT_READ: "Read the audit log",
}


def digest(secret: str) -> str:
    """SHA-256 of a client secret or access token: both are 256-bit random strings, so a
    plain hash is enough (no guessing a hash back), and a stolen table holds nothing usable."""
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiClient(TenantOwned, db.Model):
    """A partner's back-office integration. It acts with the permissions of the admin who
    created it, narrowed to its scopes; the secret is kept only as a hash."""

    __tablename__ = "api_clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80))
    client_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    secret_hash: Mapped[str] = mapped_column(sa.String(64))
    scopes: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    created_by_id: Mapped[int] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    secret_rotated_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    created_by: Mapped[User] = relationship(
        primaryjoin="User.id == ApiClient.created_by_id", foreign_keys="ApiClient.created_by_id"
    )

    kind = "api_client"

    @declared_attr.directive
    def __table_args__(cls) -> tuple:
        return (
            referable(),
            same_partner("created_by_id", "users", name="fk_api_clients_created_by"),
        )

    @property
    def label(self) -> str:
        return f"API client {self.name}"

    # --- Authlib's ClientMixin ------------------------------------------------------------

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        """The scopes asked for that this client holds; all of its scopes when none asked."""
        if not scope:
            return " ".join(self.scopes)
        return " ".join(s for s in scope.split() if s in self.scopes)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(digest(client_secret), self.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


class ApiToken(TenantOwned, db.Model):
    """A bearer token: its hash, its client, its scopes and when it stops working."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    api_client_id: Mapped[int] = mapped_column(index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    scope: Mapped[str] = mapped_column(sa.String(255), default="")
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]

    client: Mapped[ApiClient] = relationship(
        primaryjoin="ApiClient.id == ApiToken.api_client_id",
        foreign_keys="ApiToken.api_client_id",
    )

    @declared_attr.directive
    def __table_args__(cls) -> tuple:
        return (
            same_partner(
                "api_client_id", "api_clients", name="fk_api_tokens_client", ondelete="CASCADE"
            ),
        )

    # --- Authlib's TokenMixin -------------------------------------------------------------

    def check_client(self, client: Any) -> bool:
        return getattr(client, "id", None) == self.api_client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return max(0, int((self.expires_at - utcnow()).total_seconds()))

    def is_expired(self) -> bool:
        return utcnow() >= self.expires_at

    def is_revoked(self) -> bool:
        return self.revoked_at is not None or self.client.revoked_at is not None

    def get_user(self) -> None:
        return None

    def get_client(self) -> ApiClient:
        return self.client


class IdempotentRequest(TenantOwned, db.Model):
    """The first answer to a POST with an `Idempotency-Key`, per partner and client."""

    __tablename__ = "api_idempotency_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    api_client_id: Mapped[int] = mapped_column()
    key: Mapped[str] = mapped_column(sa.String(255))
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[int]
    body: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    headers: Mapped[dict[str, str]] = mapped_column(sa.JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @declared_attr.directive
    def __table_args__(cls) -> tuple:
        return (
            sa.UniqueConstraint("partner_id", "api_client_id", "key"),
            same_partner(
                "api_client_id", "api_clients", name="fk_api_idempotency_client", ondelete="CASCADE"
            ),
        )
