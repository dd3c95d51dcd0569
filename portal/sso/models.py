"""A partner's OpenID Connect provider, and the identities linked to its users."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship

from portal.clock import utcnow
from portal.extensions import db, str_enum
from portal.roles.models import Role
from portal.tenancy.models import TenantOwned, same_partner
from portal.users.models import User

DEFAULT_SCOPES = "openid email profile"


class SsoConnection(TenantOwned, db.Model):
    """One partner's identity provider. The client secret is stored only encrypted."""

    __tablename__ = "sso_connections"
    __table_args__ = (sa.UniqueConstraint("partner_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    discovery_url: Mapped[str] = mapped_column(sa.String(500))
    client_id: Mapped[str] = mapped_column(sa.String(255))
    # Fernet token of the client secret, and the id of the key that made it (rotation).
    client_secret_encrypted: Mapped[str] = mapped_column(sa.Text)
    client_secret_key_id: Mapped[str] = mapped_column(sa.String(32))
    scopes: Mapped[str] = mapped_column(sa.String(255), default=DEFAULT_SCOPES)
    button_label: Mapped[str] = mapped_column(sa.String(60), default="")
    allowed_domains: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    auto_provision: Mapped[bool] = mapped_column(default=False)
    provision_role: Mapped[Role] = mapped_column(str_enum(Role), default=Role.BASIC)
    link_by_email: Mapped[bool] = mapped_column(default=False)
    # What the last successful connection test learned; cleared when the address changes.
    issuer: Mapped[str | None] = mapped_column(sa.String(500))
    verified_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Compare-and-set on every write, and the configuration version the cached client is
    # built for (portal/sso/client.py): a change builds a new client on its next use.
    version: Mapped[int] = mapped_column(default=1, server_default="1")

    __mapper_args__ = {"version_id_col": version}

    @property
    def ready(self) -> bool:
        """Complete, and its provider answered a connection test since the address changed."""
        return bool(self.discovery_url and self.client_id and self.client_secret_encrypted) and (
            self.verified_at is not None
        )

    @property
    def label(self) -> str:
        return self.button_label or "single sign-on"

    def domain_allowed(self, email: str | None) -> bool:
        if not self.allowed_domains:
            return True
        domain = (email or "").rpartition("@")[2].lower()
        return bool(email) and domain in self.allowed_domains

    def settings(self) -> dict[str, Any]:
        """What an audit event may show of the configuration: never the secret."""
        return {
            "discovery_url": self.discovery_url,
            "client_id": self.client_id,
            "scopes": self.scopes,
            "button_label": self.button_label,
            "allowed_domains": list(self.allowed_domains or []),
            "auto_provision": self.auto_provision,
            "provision_role": self.provision_role.value,
            "link_by_email": self.link_by_email,
        }


class SsoIdentity(TenantOwned, db.Model):
    """A provider's account (issuer + subject) linked to one user of one partner."""

    __tablename__ = "sso_identities"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(index=True)
    issuer: Mapped[str] = mapped_column(sa.String(500))
    subject: Mapped[str] = mapped_column(sa.String(255))
    email: Mapped[str | None] = mapped_column(sa.String(254))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(
        primaryjoin="User.id == SsoIdentity.user_id", foreign_keys="SsoIdentity.user_id"
    )

    @declared_attr.directive
    def __table_args__(cls) -> tuple:
        return (
            # Linked per partner: the same issuer and subject in another partner is another link.
            sa.UniqueConstraint("partner_id", "issuer", "subject"),
            same_partner("user_id", "users", name="fk_sso_identities_user", ondelete="CASCADE"),
        )


class SsoLogoutToken(TenantOwned, db.Model):
    """A back-channel logout token the partner accepted, by its `jti`: a second delivery of
    the same token is a replay. Kept while the token's `iat` would still be accepted."""

    __tablename__ = "sso_logout_tokens"
    __table_args__ = (
        sa.UniqueConstraint("partner_id", "jti"),
        sa.Index("ix_sso_logout_tokens_partner_received", "partner_id", "received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    issuer: Mapped[str] = mapped_column(sa.String(500))
    jti: Mapped[str] = mapped_column(sa.String(255))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
