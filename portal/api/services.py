"""API clients: created, rotated and revoked by partner admins, each change audited."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import select, update

from portal.api.models import ApiClient, ApiToken, Scope, digest
from portal.audit.services import record_audit
from portal.clock import utcnow
from portal.exceptions import Forbidden, Invalid, NotFound
from portal.extensions import db
from portal.roles.permissions import Permission
from portal.roles.policy import current_policy
from portal.text import character_problem, collapse_spaces
from portal.users.models import User, UserStatus

MAX_NAME_LENGTH = 80
# The permission an admin needs to manage API clients, and that a client keeps needing: a
# client acts with its creator's permissions, so it stops when they lose this one.
MANAGE = Permission.SETTINGS_MANAGE


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def clean_scopes(values: list[str]) -> list[str]:
    chosen = [s.value for s in Scope if s.value in set(values)]
    unknown = sorted(set(values) - {s.value for s in Scope})
    if unknown:
        raise Invalid(f"Unknown scope: {', '.join(unknown)}.")
    if not chosen:
        raise Invalid("Choose at least one scope.")
    return chosen


def clean_name(value: str) -> str:
    name = collapse_spaces(value)
    if not name:
        raise Invalid("Enter a name for the client.")
    if len(name) > MAX_NAME_LENGTH:
        raise Invalid(f"Use at most {MAX_NAME_LENGTH} characters.")
    problem = character_problem(name, of="the name")
    if problem is not None:
        raise Invalid(problem)
    return name


def _check(actor: User) -> None:
    if not current_policy().allows(actor, MANAGE):
        raise Forbidden("You do not have permission to manage API clients.")


def create_client(actor: User, name: str, scopes: list[str]) -> tuple[ApiClient, str]:
    """A new client and its secret, which is shown once and stored only as a hash."""
    _check(actor)
    secret = new_secret()
    client = ApiClient(
        name=clean_name(name),
        client_id="pp_" + secrets.token_urlsafe(18),
        secret_hash=digest(secret),
        scopes=clean_scopes(scopes),
        created_by_id=actor.id,
    )
    db.session.add(client)
    db.session.flush()
    record_audit(
        "api_client.create",
        target=client,
        actor=actor,
        details={"name": client.name, "client_id": client.client_id, "scopes": client.scopes},
    )
    return client, secret


def _live(client: ApiClient) -> None:
    if client.revoked_at is not None:
        raise NotFound("This API client was revoked.")


def rotate_secret(actor: User, client: ApiClient) -> str:
    """A new secret; the old one stops working at once, its tokens too."""
    _check(actor)
    _live(client)
    secret = new_secret()
    client.secret_hash = digest(secret)
    client.secret_rotated_at = utcnow()
    _revoke_tokens(client)
    record_audit("api_client.rotate_secret", target=client, actor=actor, details={})
    return secret


def revoke_client(actor: User, client: ApiClient) -> None:
    """The client and every token it holds stop working at once."""
    _check(actor)
    _live(client)
    client.revoked_at = utcnow()
    _revoke_tokens(client)
    record_audit("api_client.revoke", target=client, actor=actor, details={"name": client.name})


def _revoke_tokens(client: ApiClient) -> None:
    db.session.execute(
        update(ApiToken)
        .where(ApiToken.api_client_id == client.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def clients() -> list[ApiClient]:
    return list(db.session.execute(select(ApiClient).order_by(ApiClient.id)).scalars())


def client_by_client_id(client_id: str) -> ApiClient | None:
    """The current partner's live client with this public id (another partner's is none)."""
    if not isinstance(client_id, str) or len(client_id) > 64:
        return None
    client = db.session.execute(
        select(ApiClient).where(ApiClient.client_id == client_id)
    ).scalar_one_or_none()
    if client is None or client.revoked_at is not None:
        return None
    return client


def save_token(client: ApiClient, access_token: str, scope: str, expires_in: int) -> ApiToken:
    token = ApiToken(
        api_client_id=client.id,
        token_hash=digest(access_token),
        scope=scope or "",
        expires_at=utcnow() + timedelta(seconds=expires_in),
    )
    db.session.add(token)
    record_audit(
        "api_token.issue",
        target=client,
        actor=client,
        details={"scope": token.scope, "expires_in": expires_in},
    )
    return token


def token_by_value(access_token: str) -> ApiToken | None:
    """The current partner's token with this value (another partner's is none)."""
    if not access_token or len(access_token) > 200:
        return None
    return db.session.execute(
        select(ApiToken).where(ApiToken.token_hash == digest(access_token))
    ).scalar_one_or_none()


def acting_admin(client: ApiClient) -> User:
    """The admin a client acts as; refused once they may no longer manage API clients."""
    creator = db.session.get(User, client.created_by_id)
    if (
        creator is None
        or creator.status != UserStatus.ACTIVE
        or not current_policy().allows(creator, MANAGE)
    ):
        raise Forbidden(
            "The admin who created this API client can no longer manage API clients; "
            "an admin must create a new client."
        )
    return creator
