"""Single sign-on: the partner's provider configuration, sign-in through it, linked identities.

Identities are linked by (partner, issuer, subject): the same provider account is a stranger
in every other partner. A sign-in resolves its user without writing anything, refuses (and
audits the refusal) before any change, and then links, provisions and starts a session exactly
as a password sign-in does (session policy, per-user lock).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, delete, func, select, update

from portal.audit.services import record_audit
from portal.auth.services import LoginResult
from portal.clock import utcnow
from portal.exceptions import Invalid, PortalError
from portal.extensions import db
from portal.features.evaluation import evaluate
from portal.features.services import switch_feature
from portal.roles.models import Role
from portal.roles.policy import current_policy
from portal.sessions.models import LoginMethod
from portal.sessions.services import ClientInfo, revoke_provider_sessions, start_user_session
from portal.sso.client import Probe
from portal.sso.crypto import SecretUnreadable, secret_box
from portal.sso.models import DEFAULT_SCOPES, SsoConnection, SsoIdentity, SsoLogoutToken
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.unit_of_work import lock_partner, lock_user
from portal.users.models import User, UserStatus
from portal.users.services import (
    UserError,
    clean_display_name,
    clean_email,
    create_user,
    user_by_email,
)

DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9](-?[a-z0-9])*)(\.[a-z0-9](-?[a-z0-9])*)+$")
SCOPE_RE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")  # RFC 6749 scope-token


# --- Refusals -------------------------------------------------------------------------------


class SsoError(PortalError):
    """A single sign-on that did not happen, with a reason the person can act on."""

    status = 400
    reason = "refused"
    counts_as_failure = True  # against the client's per-host sign-in limit
    audited = False


class SignInCancelled(SsoError):
    reason = "cancelled"
    counts_as_failure = False


class ProviderRefused(SsoError):
    status = 502
    reason = "provider_error"


class FlowExpired(SsoError):
    reason = "state_mismatch"

    def __init__(self) -> None:
        super().__init__(
            "This sign-in was started too long ago, in another browser, or has already "
            "finished. Start again from the sign-in page."
        )


class AnswerRejected(SsoError):
    reason = "invalid_id_token"


class DomainNotAllowed(SsoError):
    status = 403
    reason = "domain_not_allowed"


class NoAccount(SsoError):
    status = 403
    reason = "no_account"


class AccountDeactivated(SsoError):
    status = 403
    reason = "deactivated"

    def __init__(self) -> None:
        super().__init__("This account is deactivated. Ask an administrator of this portal.")


class IdentityTaken(SsoError):
    status = 409
    reason = "identity_taken"


class LogoutRefused(PortalError):
    """A back-channel logout token the portal does not act on: nothing was signed out."""

    status = 400
    error = "invalid_request"


class ConnectionInvalid(Invalid):
    """A configuration field that cannot be saved; `field` names it for the form."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# --- The partner's connection -------------------------------------------------------------


def current_connection() -> SsoConnection | None:
    return db.session.execute(select(SsoConnection)).scalar_one_or_none()


def sign_in_connection() -> SsoConnection | None:
    """The connection people may sign in through now: configured, tested and switched on."""
    return _usable(current_connection())


def _usable(connection: SsoConnection | None) -> SsoConnection | None:
    if connection is None or not connection.ready or not evaluate("oidc_login").on:
        return None
    return connection


@dataclass(frozen=True)
class ConnectionInput:
    """What the admin submitted; `client_secret` None or empty keeps the stored one."""

    discovery_url: str
    client_id: str
    client_secret: str | None
    scopes: str
    button_label: str
    allowed_domains: str
    auto_provision: bool
    provision_role: str
    link_by_email: bool


def clean_domains(raw: str) -> list[str]:
    domains = []
    for text in re.split(r"[\s,;]+", raw.strip().lower()):
        domain = text.removeprefix("@")
        if not domain:
            continue
        if not DOMAIN_RE.match(domain):
            raise ConnectionInvalid(
                "allowed_domains", f"{domain[:60]!r} is not a domain name like example.com."
            )
        domains.append(domain)
    if len(domains) > 50:
        raise ConnectionInvalid("allowed_domains", "List at most 50 domains.")
    return list(dict.fromkeys(domains))


def clean_scopes(raw: str) -> str:
    scopes = list(dict.fromkeys(raw.split())) or DEFAULT_SCOPES.split()
    if "openid" not in scopes:
        raise ConnectionInvalid("scopes", "The scopes must include openid.")
    if not all(SCOPE_RE.match(s) for s in scopes):
        raise ConnectionInvalid("scopes", "Scopes are words separated by spaces.")
    return " ".join(scopes)


def _provision_role(value: str) -> Role:
    if value not in Role._value2member_map_:
        raise ConnectionInvalid("provision_role", "Choose the role new accounts get.")
    role = Role(value)
    if role.is_admin:
        raise ConnectionInvalid(
            "provision_role", "Accounts created by single sign-on cannot be admins."
        )
    if not current_policy().roles[role].enabled:
        raise ConnectionInvalid("provision_role", f"The role {role.value} is not enabled.")
    return role


def _guard_only_way_in(connection: SsoConnection | None) -> None:
    """While password sign-in is off, single sign-on has to keep working."""
    if evaluate("password_login").on:
        return
    if connection is None or not connection.ready:
        raise ConnectionInvalid(
            "form",
            "Password sign-in is off, so single sign-on is the only way in and must keep "
            "working: this change would break it. Switch password sign-in on first.",
        )


def save_connection(values: ConnectionInput, probe: Probe | None) -> SsoConnection:
    """Create or change the partner's provider. `probe` is the connection test of the
    submitted address, run before (outside the transaction's lock); None when unchanged."""
    lock_partner()
    connection = current_connection()
    secret = (values.client_secret or "").strip()
    if connection is None and not secret:
        raise ConnectionInvalid("client_secret", "Enter the client secret the provider gave you.")
    settings = {
        "discovery_url": values.discovery_url.strip(),
        "client_id": values.client_id.strip(),
        "scopes": clean_scopes(values.scopes),
        "button_label": values.button_label.strip(),
        "allowed_domains": clean_domains(values.allowed_domains),
        "auto_provision": values.auto_provision,
        "provision_role": _provision_role(values.provision_role),
        "link_by_email": values.link_by_email,
    }
    created = connection is None
    before = {} if connection is None else connection.settings()
    if connection is None:
        connection = SsoConnection(**settings)
        db.session.add(connection)
    else:
        for name, value in settings.items():
            setattr(connection, name, value)
    if secret:
        connection.client_secret_key_id, connection.client_secret_encrypted = secret_box().encrypt(
            secret
        )
    if probe is not None:
        connection.issuer = probe.issuer
        connection.verified_at = utcnow() if probe.ok else None
    after = connection.settings()
    changed = sorted(k for k in after if before.get(k) != after[k])
    if not changed and not secret and probe is None:
        return connection
    connection.updated_at = utcnow()
    _guard_only_way_in(connection)
    db.session.flush()
    record_audit(
        "sso.connection_create" if created else "sso.connection_update",
        target=connection,
        details={
            "changed": changed,
            "client_secret_changed": bool(secret),  # never the secret itself
            "after": after,
            "verified": connection.verified_at is not None,
        },
    )
    return connection


def record_probe(probe: Probe) -> SsoConnection | None:
    """The result of "Test connection" on the stored address. A success marks the
    connection tested; a failure changes nothing stored (a provider briefly away must not
    switch sign-in off) and is only reported."""
    lock_partner()
    connection = current_connection()
    if connection is None:
        return None
    if probe.ok:
        connection.issuer = probe.issuer
        connection.verified_at = utcnow()
    record_audit(
        "sso.connection_test",
        target=connection,
        details={"ok": probe.ok, "problem": probe.problem, "issuer": probe.issuer},
    )
    return connection


def remove_connection() -> bool:
    """Forget the partner's provider (linked identities stay, for the day it comes back)."""
    lock_partner()
    connection = current_connection()
    if connection is None:
        return False
    _guard_only_way_in(None)
    record_audit("sso.connection_delete", target=connection, details=connection.settings())
    db.session.delete(connection)
    return True


def set_login_methods(*, sso_on: bool, password_on: bool) -> list[str]:
    """The two switches of the sign-in page, in an order that never strands anyone: what
    turns on first, then what turns off (each refused by the features' own guards), both
    read under the partner's lock."""
    lock_partner()
    wanted = {"oidc_login": sso_on, "password_login": password_on}
    changes = [(k, on) for k, on in wanted.items() if evaluate(k).partner_on != on]
    said = []
    for key, on in sorted(changes, key=lambda change: not change[1]):
        switch_feature(key, on)
        name = "Single sign-on" if key == "oidc_login" else "Password sign-in"
        said.append(f"{name} is {'on' if on else 'off'}.")
    return said


# --- Signing in -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claims:
    """What the portal uses of a verified ID token."""

    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    name: str
    sid: str | None = None  # the provider's session, named again by its back-channel logout

    @classmethod
    def of(cls, claims: dict[str, Any]) -> Claims:
        email = claims.get("email")
        try:
            address = clean_email(email) if isinstance(email, str) else None
        except UserError:
            address = None
        verified = claims.get("email_verified")
        name = claims.get("name") or " ".join(
            str(claims.get(k) or "") for k in ("given_name", "family_name")
        )
        return cls(
            issuer=str(claims["iss"]),
            subject=str(claims["sub"]),
            email=address,
            email_verified=verified is True or verified == "true",
            name=str(name).strip()[:120],
            sid=_session_id(claims.get("sid")),
        )


def _session_id(value: Any) -> str | None:
    """The ID token's `sid`, when it is one the portal can keep (a non-empty string)."""
    return value if isinstance(value, str) and 0 < len(value) <= 255 else None


def _identity(claims: Claims) -> SsoIdentity | None:
    return _identity_of(claims.issuer, claims.subject)


def _identity_of(issuer: str, subject: str) -> SsoIdentity | None:
    return db.session.execute(
        select(SsoIdentity).where(SsoIdentity.issuer == issuer, SsoIdentity.subject == subject)
    ).scalar_one_or_none()


def _refuse(error: SsoError, claims: Claims | None = None) -> SsoError:
    """Audit a refused single sign-on (the page shows it; the request's commit keeps it)."""
    details: dict[str, Any] = {"method": "oidc", "reason": error.reason}
    if claims is not None:
        details.update(issuer=claims.issuer[:200], subject=claims.subject[:200])
    target = ("email", claims.email[:64]) if claims is not None and claims.email else None
    record_audit("auth.login_failed", target=target, actor="anonymous", details=details)
    error.audited = True
    return error


def refuse_sign_in(error: SsoError) -> None:
    """Audit a refusal that happened before the provider's answer was verified."""
    _refuse(error)


def _check_domain(connection: SsoConnection, claims: Claims) -> None:
    if not connection.domain_allowed(claims.email):
        domain = claims.email.rpartition("@")[2] if claims.email else None
        raise _refuse(
            DomainNotAllowed(
                f"Accounts at {domain} cannot sign in to this portal."
                if domain
                else "The identity provider did not share an email address, and this portal "
                "only lets in addresses at its own domains."
            ),
            claims,
        )


def _resolve(
    connection: SsoConnection, claims: Claims
) -> tuple[User | None, SsoIdentity | None, str]:
    """Who this identity signs in as, without writing: (user, existing link, how); no user
    when a new account is to be provisioned."""
    identity = _identity(claims)
    if identity is not None:
        return identity.user, identity, "linked"
    existing = user_by_email(claims.email) if claims.email else None
    if existing is not None and connection.link_by_email and claims.email_verified:
        return existing, None, "linked_by_email"
    if existing is not None:
        raise _refuse(
            NoAccount(
                f"An account for {claims.email} exists here but is not linked to this sign-in. "
                "Sign in with your password and link single sign-on under Account > Sign-in "
                "methods, or ask an administrator."
            ),
            claims,
        )
    if connection.auto_provision and claims.email:
        if not current_policy().roles[connection.provision_role].enabled:
            raise _refuse(
                NoAccount("New accounts cannot be created right now; ask an administrator."),
                claims,
            )
        return None, None, "provisioned"
    raise _refuse(
        NoAccount(
            "There is no account here for this sign-in, and this portal does not create "
            "accounts by itself. Ask an administrator to invite you."
        ),
        claims,
    )


def _link(user: User, claims: Claims) -> SsoIdentity:
    identity = SsoIdentity(
        user_id=user.id, issuer=claims.issuer, subject=claims.subject, email=claims.email
    )
    db.session.add(identity)
    db.session.flush()
    record_audit(
        "sso.identity_link",
        target=user,
        actor=user,
        details={"identity": identity.id, "issuer": claims.issuer[:200]},
    )
    return identity


def _display_name(claims: Claims) -> str:
    try:
        return clean_display_name(claims.name, required=False)
    except UserError:
        return ""


def sign_in_with_oidc(
    connection: SsoConnection, raw_claims: dict[str, Any], client: ClientInfo
) -> LoginResult:
    """Sign in with a verified ID token: the linked user, or one linked by verified email,
    or a new account when the partner provisions them; then a session like any other."""
    claims = Claims.of(raw_claims)
    _check_domain(connection, claims)
    user, identity, how = _resolve(connection, claims)
    if identity is None:
        # A first sign-in writes a link, and perhaps an account. Two at once (a double click,
        # two tabs) take turns under the partner's lock, and the second finds the first's.
        lock_partner()
        user, identity, how = _resolve(connection, claims)
    if user is not None:
        lock_user(user.id)
        db.session.refresh(user)
        if user.status == UserStatus.DEACTIVATED:
            raise _refuse(AccountDeactivated(), claims)
    if user is None:
        user = create_user(
            claims.email or "",
            role=connection.provision_role,
            display_name=_display_name(claims),
            actor=None,
            source="sso",
        )
    elif user.status == UserStatus.INVITED:
        # The provider vouches for the address, as the invitation's emailed link would.
        user.status = UserStatus.ACTIVE
        record_audit("sso.invitation_accepted", target=user, actor=user)
    if identity is None:
        identity = _link(user, claims)
    _record, token = start_user_session(
        user, client, method=LoginMethod.OIDC, provider_session=(claims.issuer, claims.sid)
    )
    now = utcnow()
    identity.last_used_at = now
    db.session.execute(
        update(User)
        .where(User.id == user.id)
        .values(last_login_at=now)
        .execution_options(synchronize_session=False)
    )
    record_audit(
        "auth.login",
        target=user,
        actor=user,
        details={"method": "oidc", "identity": identity.id, "how": how},
    )
    return LoginResult(user, token, None)


# --- Back-channel logout --------------------------------------------------------------------


@dataclass(frozen=True)
class LogoutClaims:
    """What the portal uses of a verified logout token (`flow.verify_logout_token`)."""

    issuer: str
    jti: str
    subject: str | None
    sid: str | None


@dataclass(frozen=True)
class IdentityProvider:
    """The partner's identity provider as the actor of an audit event."""

    label: str
    kind: str = "identity_provider"


def accept_logout_token(claims: LogoutClaims, *, remember_for: timedelta) -> int:
    """Sign out what the provider's logout token names: the portal sessions of its session
    `sid`, or every single sign-on session of the user linked to its subject here (both:
    that session of that user). Each token acts once: its `jti` is kept for `remember_for`
    (as long as its `iat` would be accepted) and a second delivery is refused. How many
    sessions were ended."""
    lock_partner()  # two deliveries of one token take turns: the second finds the first's jti
    now = utcnow()
    db.session.execute(
        delete(SsoLogoutToken)
        .where(SsoLogoutToken.received_at < now - remember_for)
        .execution_options(synchronize_session=False)
    )
    seen = db.session.execute(
        select(SsoLogoutToken.id).where(SsoLogoutToken.jti == claims.jti)
    ).first()
    if seen is not None:
        raise LogoutRefused("This logout token was delivered before (its jti is spent).")
    db.session.add(SsoLogoutToken(issuer=claims.issuer, jti=claims.jti, received_at=now))
    user_id = None
    if claims.subject is not None:
        identity = _identity_of(claims.issuer, claims.subject)
        # A subject nobody here is linked to (perhaps linked at another partner) signs out
        # nobody: the token was still valid, and is spent.
        user_id = identity.user_id if identity is not None else None
    ended = {}
    if user_id is not None or (claims.subject is None and claims.sid is not None):
        ended = revoke_provider_sessions(
            issuer=claims.issuer,
            sid=claims.sid,
            user_id=user_id,
            reason="signed out at the identity provider",
        )
    actor = IdentityProvider(claims.issuer[:254])
    details = {
        "issuer": claims.issuer[:200],
        "by": "sid" if claims.sid else "sub",
        "subject": (claims.subject or "")[:200] or None,
        "sid": (claims.sid or "")[:200] or None,
    }
    for owner, count in sorted(ended.items()) or [(user_id, 0)]:
        target = ("users", owner) if owner is not None else None
        record_audit(
            "sso.backchannel_logout",
            target=target,
            actor=actor,
            details={**details, "sessions_revoked": count},
        )
    return sum(ended.values())


# --- Linked identities ------------------------------------------------------------------------


def identities_of(user: User) -> list[SsoIdentity]:
    return list(
        db.session.execute(
            select(SsoIdentity)
            .where(SsoIdentity.user_id == user.id)
            .order_by(SsoIdentity.created_at, SsoIdentity.id)
        ).scalars()
    )


def ways_to_sign_in(user: User) -> tuple[list[SsoIdentity], SsoConnection | None]:
    """`user`'s identities and the connection they may link another through
    (`sign_in_connection`), in one statement: the user's row, outer-joined to both (a partner
    has at most one connection)."""
    rows = db.session.execute(
        select(SsoIdentity, SsoConnection)
        .select_from(User)
        .outerjoin(
            SsoIdentity,
            and_(SsoIdentity.partner_id == User.partner_id, SsoIdentity.user_id == User.id),
        )
        .outerjoin(SsoConnection, SsoConnection.partner_id == User.partner_id)
        .where(User.id == user.id)
        .order_by(SsoIdentity.created_at, SsoIdentity.id)
    ).all()
    identities = [identity for identity, _ in rows if identity is not None]
    return identities, _usable(rows[0][1] if rows else None)


def link_identity(connection: SsoConnection, user: User, raw_claims: dict[str, Any]) -> str:
    """Link the provider account that just signed in to the signed-in `user`."""
    claims = Claims.of(raw_claims)
    _check_domain(connection, claims)
    identity = _identity(claims)
    if identity is not None:
        if identity.user_id == user.id:
            return "This sign-in was already linked to your account."
        raise _refuse(
            IdentityTaken("This sign-in is already linked to another account of this portal."),
            claims,
        )
    _link(user, claims)
    return f"Single sign-on ({connection.label}) is linked: you can now sign in with it."


def other_ways_in(user: User, without: SsoIdentity) -> int:
    """How many ways `user` keeps to sign in without `without`."""
    others = db.session.execute(
        select(func.count())
        .select_from(SsoIdentity)
        .where(SsoIdentity.user_id == user.id, SsoIdentity.id != without.id)
    ).scalar_one()
    password = user.password_hash is not None and evaluate("password_login").on
    return others + int(password)


def unlink_identity(user: User, identity: SsoIdentity) -> str:
    """Remove one of the user's linked identities; never their last way to sign in."""
    lock_user(user.id)
    if identity.user_id != user.id:
        raise PortalError("No such sign-in method.", status=404)
    if not other_ways_in(user, identity):
        raise PortalError(
            "This is your only way to sign in here; set a password (Forgot your password? on "
            "the sign-in page) or link another sign-in first.",
            status=409,
        )
    record_audit(
        "sso.identity_unlink",
        target=user,
        actor=user,
        details={"identity": identity.id, "issuer": identity.issuer[:200]},
    )
    db.session.delete(identity)
    return "The sign-in method was removed."


# --- Key rotation -----------------------------------------------------------------------------


@dataclass
class Rotation:
    reencrypted: list[str]
    current: list[str]
    unreadable: list[str]


def reencrypt_secrets() -> Rotation:
    """Re-encrypt every partner's client secret with the current key (after a new key was put
    first in PORTAL_SSO_KEYS); secrets no configured key can read are named, not touched."""
    box = secret_box()
    result = Rotation([], [], [])
    for partner in db.session.execute(select(Partner).order_by(Partner.slug)).scalars():
        with partner_scope(partner):
            connection = current_connection()
            if connection is None:
                continue
            if connection.client_secret_key_id == box.current_id:
                result.current.append(partner.slug)
                continue
            try:
                plain = box.decrypt(
                    connection.client_secret_key_id, connection.client_secret_encrypted
                )
            except SecretUnreadable:
                result.unreadable.append(partner.slug)
                continue
            was = connection.client_secret_key_id
            connection.client_secret_key_id, connection.client_secret_encrypted = box.encrypt(plain)
            record_audit(
                "sso.secret_reencrypted",
                target=connection,
                actor=None,
                details={"from_key": was, "to_key": box.current_id},
            )
            result.reencrypted.append(partner.slug)
    return result
