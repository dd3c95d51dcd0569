"""`record_audit`: the one way every mutation writes its audit event."""

from __future__ import annotations

import logging
from typing import Any, Protocol

import sqlalchemy as sa
from flask import g, has_request_context, request
from flask_login import current_user
from sqlalchemy.orm import Session, SessionTransaction

from portal.audit.models import ActorType, AuditEvent
from portal.extensions import db
from portal.monitoring import metrics

log = logging.getLogger("portal.audit")
_STORED = "portal_audit_stored"  # session.info: events flushed in this transaction, their line


class Impersonating(Protocol):
    """What an audit event needs of a support impersonation (`g.impersonation` while one is
    on, see `portal/support/services.py`)."""

    id: int
    agent_id: int
    agent_email: str
    target_id: int


def _actor_of(actor: Any) -> tuple[ActorType, int | None, str]:
    if actor is None:
        return ActorType.SYSTEM, None, "system"
    kind = getattr(actor, "kind", None)
    if kind == "operator":
        return ActorType.OPERATOR, actor.id, actor.email
    if kind == "user":
        return ActorType.USER, actor.id, actor.email
    if kind == "api_client":
        return ActorType.API_CLIENT, actor.id, actor.label
    if kind == "identity_provider":
        return ActorType.IDENTITY_PROVIDER, None, actor.label
    return ActorType.ANONYMOUS, None, ""


def _request_actor() -> Any:
    if not has_request_context():
        return None
    user = current_user._get_current_object() if current_user else None
    if user is not None and getattr(user, "is_authenticated", False):
        return user
    return "anonymous"


def _target_of(target: Any) -> tuple[str | None, str | None]:
    if target is None:
        return None, None
    if isinstance(target, tuple):
        kind, ident = target
        return str(kind), None if ident is None else str(ident)
    return getattr(target, "__tablename__", type(target).__name__.lower()), str(target.id)


def _acting(actor: Any, impersonation: Impersonating) -> bool:
    """Whether `actor` is the agent at work in `impersonation`: the request's own principal,
    or the agent or user named explicitly (not an admin ending it, not the system)."""
    if actor is ...:
        return True
    ids = (impersonation.agent_id, impersonation.target_id)
    return getattr(actor, "kind", None) == "user" and actor.id in ids


def record_audit(
    action: str,
    *,
    target: Any = None,
    details: dict[str, Any] | None = None,
    actor: Any = ...,
    on_behalf_of: Any = None,
    impersonation: Impersonating | None = None,
) -> AuditEvent:
    """Add an audit event to the current transaction; the caller's commit makes it stick.

    The partner comes from the request (or `partner_scope`), the actor defaults to whoever is
    logged in, `target` is a model instance or a `(type, id)` pair.

    While a support agent acts as a user (`g.impersonation`, or `impersonation` given), the
    event names both: the agent is the actor, also where the code says the user did it (the
    person at the keyboard is the agent), the user is `on_behalf_of`. Every event written
    then carries `impersonation_id`, which leads to the reason and ticket.
    """
    if impersonation is None and has_request_context():
        impersonation = g.get("impersonation")
    api_client = g.get("api_client") if has_request_context() else None
    if api_client is not None and (actor is ... or actor is g.get("api_actor")):
        # A partner API request: the client did it (with its creator's permissions).
        actor = api_client
    on_behalf_of_id = getattr(on_behalf_of, "id", None)
    if impersonation is not None and _acting(actor, impersonation):
        actor_type, actor_id = ActorType.USER, impersonation.agent_id
        actor_label = impersonation.agent_email
        on_behalf_of_id = impersonation.target_id
    else:
        actor_type, actor_id, actor_label = _actor_of(_request_actor() if actor is ... else actor)
    target_type, target_id = _target_of(target)
    event = AuditEvent(
        actor_type=actor_type,
        actor_id=actor_id,
        actor_label=actor_label,
        on_behalf_of_id=on_behalf_of_id,
        impersonation_id=impersonation.id if impersonation is not None else None,
        action=action,
        target_type=target_type,
        target_id=target_id,
        details=details or {},
        ip=request.remote_addr if has_request_context() else None,
        request_id=g.get("request_id") if has_request_context() else None,
    )
    db.session.add(event)
    return event


# The log line and the metrics are for events the database kept: flushed, then committed with
# their transaction. An event undone with its step (a savepoint rolled back) or with the whole
# unit of work goes back to transient and is neither logged nor counted.


@sa.event.listens_for(Session, "pending_to_persistent")
def _flushed(session: Session, instance: object) -> None:
    if isinstance(instance, AuditEvent):
        # Read now: after the commit the instance is expired, and reading it would query.
        line = (
            instance.action,
            f"{instance.target_type}:{instance.target_id}" if instance.target_type else "-",
            instance.actor_label,
        )
        session.info.setdefault(_STORED, []).append((instance, line))


@sa.event.listens_for(Session, "persistent_to_transient")
def _undone(session: Session, instance: object) -> None:
    if isinstance(instance, AuditEvent):
        stored = session.info.get(_STORED, [])
        stored[:] = [(e, line) for e, line in stored if e is not instance]


@sa.event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint released: not committed yet
        return
    for _instance, (action, target, actor) in session.info.pop(_STORED, []):
        metrics.audit_recorded(action)
        # The event's action, target and actor, never its details (they may name what was
        # typed).
        log.info(
            "audit %s", action, extra={"audit_action": action, "target": target, "actor": actor}
        )


@sa.event.listens_for(Session, "after_transaction_end")
def _ended(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_STORED, None)
