"""A user's own data (export, closing the account) and erasure on request.

Erasure keeps what the partner's records need (subscriptions and their history, audit events)
pointing at the same user row, which is anonymised: the row stays so that every reference
stays consistent, and nothing on it (or anywhere else) names the person any more.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Text, cast, delete, exists, false, func, or_, select, update
from sqlalchemy.orm import defer

from portal.account.services import check_current_password
from portal.api.models import IdempotentRequest
from portal.audit.maintenance import audit_maintenance
from portal.audit.models import ActorType, AuditEvent
from portal.audit.services import record_audit
from portal.clock import utcnow
from portal.exceptions import Conflict, Forbidden, Invalid
from portal.extensions import db
from portal.mail.models import OutboxMessage
from portal.privacy.models import DataExport
from portal.roles.models import Role
from portal.roles.permissions import Permission
from portal.sessions.models import UserSession
from portal.sso.models import SsoIdentity
from portal.subscriptions.models import Plan, Subscription, SubscriptionEvent
from portal.support.models import EndReason, Impersonation
from portal.support.services import end_impersonations_of
from portal.tenancy.context import current_partner
from portal.tenancy.scope import platform_scope
from portal.tokens.models import ActionToken
from portal.unit_of_work import lock_partner
from portal.users.models import User, UserStatus
from portal.users.search import purge_replaced_entries
from portal.users.services import hold_partner

EXPORT_FORMAT = "partner-portal.user-export/1"
RECENT_SIGN_IN = timedelta(minutes=10)
ERASED_NAME = "Erased user"
FORMER_IDENTITY_ACTIONS = (
    "account.profile_update",
    "account.email_change",
    "account.email_change_request",
    "account.email_change_cancel",
    "user.profile_update",
)


class PrivacyError(Invalid):
    """A data-protection request that cannot be carried out, with the reason."""


def erased_address(user_id: int) -> str:
    """The placeholder address an erased user keeps (unique per partner, never deliverable)."""
    return f"erased-{user_id}@erased.invalid"


def is_erased(user: User) -> bool:
    return user.email == erased_address(user.id)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


# --- Export -----------------------------------------------------------------------------------


def _events_about(user: User) -> Any:
    return or_(
        (AuditEvent.actor_type == ActorType.USER) & (AuditEvent.actor_id == user.id),
        AuditEvent.on_behalf_of_id == user.id,
        (AuditEvent.target_type == "users") & (AuditEvent.target_id == str(user.id)),
    )


def _event(row: AuditEvent) -> dict[str, Any]:
    return {
        "at": _iso(row.created_at),
        "action": row.action,
        "actor": row.actor_label,
        "actor_type": row.actor_type.value,
        "target_type": row.target_type,
        "target_id": row.target_id,
        "details": row.details,
        "ip": row.ip,
    }


def _mail_to(user: User, audit: list[AuditEvent]) -> Any:
    """The mail sent to the user's address, and to each address they had before, up to when
    they changed it (the notice of the change to the old address included): after that, an
    old address may be someone else's."""
    conditions = [OutboxMessage.to_address == user.email]
    for event in audit:
        former = (event.details or {}).get("from")
        if (
            event.action == "account.email_change"
            and event.target_type == "users"
            and event.target_id == str(user.id)
            and isinstance(former, str)
        ):
            conditions.append(
                (OutboxMessage.to_address == former)
                & (OutboxMessage.created_at <= event.created_at)
            )
    return or_(*conditions)


def build_export(user: User) -> dict[str, Any]:
    """Everything the portal holds about `user`, as plain JSON values."""
    sessions = db.session.execute(
        select(UserSession)
        .where(UserSession.user_id == user.id, UserSession.impersonator_id.is_(None))
        .order_by(UserSession.id)
    ).scalars()
    subscriptions = db.session.execute(
        select(Subscription, Plan.name)
        .join(Plan, Plan.id == Subscription.plan_id)
        .where(Subscription.user_id == user.id)
        .order_by(Subscription.id)
    ).all()
    audit = list(
        db.session.execute(
            select(AuditEvent).where(_events_about(user)).order_by(AuditEvent.id)
        ).scalars()
    )
    emails = db.session.execute(
        select(OutboxMessage).where(_mail_to(user, audit)).order_by(OutboxMessage.id)
    ).scalars()
    identities = db.session.execute(
        select(SsoIdentity).where(SsoIdentity.user_id == user.id).order_by(SsoIdentity.id)
    ).scalars()
    accesses = db.session.execute(
        select(Impersonation, User.email)
        .join(User, User.id == Impersonation.agent_id)
        .where(Impersonation.target_id == user.id)
        .order_by(Impersonation.id)
    ).all()
    return {
        "format": EXPORT_FORMAT,
        "generated_at": _iso(utcnow()),
        "portal": current_partner.brand_name,
        "profile": {
            "id": user.id,
            "email": user.email,
            "display_name": user.display_name,
            "role": user.role.value,
            "status": user.status.value,
            "support_agent": user.is_support,
            "created_at": _iso(user.created_at),
            "last_login_at": _iso(user.last_login_at),
            "closing_at": _iso(user.closing_at),
        },
        "role_history": [
            {"at": _iso(e.created_at), "by": e.actor_label, **e.details}
            for e in audit
            if e.action in ("user.role_change", "user.admin_granted")
            and e.target_id == str(user.id)
        ],
        "sessions": [
            {
                "created_at": _iso(s.created_at),
                "last_seen_at": _iso(s.last_seen_at),
                "expires_at": _iso(s.expires_at),
                "ip": s.ip,
                "user_agent": s.user_agent,
                "method": s.login_method.value,
                "revoked_at": _iso(s.revoked_at),
                "revoked_reason": s.revoked_reason,
            }
            for s in sessions
        ],
        "subscriptions": [
            {
                "id": sub.id,
                "plan": plan_name,
                "state": sub.state.value,
                "created_at": _iso(sub.created_at),
                "terms_accepted_at": _iso(sub.terms_accepted_at),
                "history": [
                    {
                        "at": _iso(ev.created_at),
                        "from": ev.from_state.value if ev.from_state else None,
                        "to": ev.to_state.value,
                        "by": ev.actor_kind,
                        "reason": ev.reason,
                    }
                    for ev in db.session.execute(
                        select(SubscriptionEvent)
                        .where(SubscriptionEvent.subscription_id == sub.id)
                        .order_by(SubscriptionEvent.id)
                    ).scalars()
                ],
            }
            for sub, plan_name in subscriptions
        ],
        "audit_events": [_event(e) for e in audit],
        "identities": [
            {
                "issuer": i.issuer,
                "subject": i.subject,
                "email": i.email,
                "linked_at": _iso(i.created_at),
                "last_used_at": _iso(i.last_used_at),
            }
            for i in identities
        ],
        "support_accesses": [
            {
                "agent": agent_email,
                "reason": imp.reason,
                "ticket": imp.ticket,
                "started_at": _iso(imp.started_at),
                "ended_at": _iso(imp.ended_at),
            }
            for imp, agent_email in accesses
        ],
        "emails": [
            {
                "at": _iso(m.created_at),
                "to": m.to_address,
                "subject": m.subject,
                "body": m.body_text,
            }
            for m in emails
        ],
    }


def latest_export(user: User, *, with_content: bool = False) -> DataExport | None:
    """The user's latest copy; its content (the whole JSON) only when it is to be sent."""
    stmt = select(DataExport).where(DataExport.user_id == user.id)
    if not with_content:
        stmt = stmt.options(defer(DataExport.content))
    return db.session.execute(stmt.order_by(DataExport.id.desc()).limit(1)).scalar_one_or_none()


def request_export(user: User) -> DataExport:
    """Ask for a copy of one's data; `flask maintenance run` prepares it (never the page)."""
    pending = latest_export(user)
    if pending is not None and not pending.is_ready:
        raise Conflict("Your copy is already being prepared.")
    export = DataExport(user_id=user.id, requested_at=utcnow())
    db.session.add(export)
    record_audit("privacy.export_request", target=user)
    return export


def prepare_export(export: DataExport) -> None:
    """Fill in a requested export (in the partner's scope), kept EXPORT_KEEP_HOURS."""
    user = db.session.get(User, export.user_id)
    if user is None:
        return
    now = utcnow()
    export.content = json.dumps(build_export(user), indent=2, ensure_ascii=False)
    export.ready_at = now
    export.expires_at = now + timedelta(hours=current_app.config["EXPORT_KEEP_HOURS"])
    record_audit("privacy.export_ready", actor=None, target=user)


def is_downloadable(export: DataExport | None) -> bool:
    return export is not None and export.is_ready and export.expires_at > utcnow()  # type: ignore[operator]


def downloadable_export(user: User) -> DataExport | None:
    export = latest_export(user, with_content=True)
    return export if is_downloadable(export) else None


# --- Closing one's own account ----------------------------------------------------------------


def _other_active_admins(user: User) -> int:
    return db.session.execute(
        select(func.count(User.id)).where(
            User.role == Role.ADMIN,
            User.status == UserStatus.ACTIVE,
            User.closing_at.is_(None),
            User.id != user.id,
        )
    ).scalar_one()


def request_closure(
    user: User,
    *,
    password: str | None,
    signed_in_at: datetime | None,
    client_ip: str | None = None,
) -> datetime:
    """Close one's account after the partner's cooling-off period; returns when.

    Asks for the password (or, for an account without one, a sign-in within the last ten
    minutes). Refused for the last active admin not already leaving, under the partner lock,
    so two admins closing at once cannot both go.
    """
    if user.password_hash:
        check_current_password(user, password or "", client_ip, field="password")
    elif signed_in_at is None or utcnow() - signed_in_at > RECENT_SIGN_IN:
        raise PrivacyError("Sign in again (within the last ten minutes) to close your account.")
    lock_partner()
    db.session.refresh(user)
    if user.closing_at is not None:
        raise Conflict("Your account is already being closed.")
    if user.role.is_admin and _other_active_admins(user) == 0:
        raise PrivacyError(
            "You are the last active admin: make someone else an admin before closing your account."
        )
    days = current_partner.retention.closing_days
    user.closing_at = utcnow() + timedelta(days=days)
    record_audit("privacy.closure_request", target=user, details={"cooling_off_days": days})
    return user.closing_at


def cancel_closure(user: User, *, by: User) -> None:
    """Keep an account its user asked to close (the user, or an admin, during cooling-off)."""
    if user.closing_at is None:
        raise PrivacyError(f"{'Your' if by.id == user.id else 'This'} account is not closing.")
    user.closing_at = None
    record_audit("privacy.closure_cancel", actor=by, target=user)


def due_closures(now: datetime, limit: int) -> list[User]:
    return list(
        db.session.execute(
            select(User)
            .where(User.closing_at.is_not(None), User.closing_at <= now)
            .order_by(User.id)
            .limit(limit)
        ).scalars()
    )


def close_account(user: User) -> bool:
    """Carry out a closure whose cooling-off has ended: the account is erased. An admin who
    meanwhile became the last one waits (False) until the partner has another."""
    lock_partner()
    if user.role.is_admin and user.status == UserStatus.ACTIVE and not _other_active_admins(user):
        return False
    erase_user(user, by=None, reason="closed by its user")
    return True


# --- Erasure ----------------------------------------------------------------------------------


def _scrub(value: Any, secrets: list[str]) -> Any:
    """`value` with every occurrence of a secret string replaced (JSON details)."""
    if isinstance(value, str):
        for secret in secrets:
            if secret and secret.lower() in value.lower():
                value = "[erased]"
        return value
    if isinstance(value, list):
        return [_scrub(v, secrets) for v in value]
    if isinstance(value, dict):
        return {k: _scrub(v, secrets) for k, v in value.items()}
    return value


def _mentions(column: Any, secrets: list[str]) -> Any:
    return or_(*(func.lower(cast(column, Text)).contains(s.lower()) for s in secrets if s))


def _scrub_platform_events(user: User, people: list[str], placeholder: str) -> int:
    """The platform's audit rows (operator actions) about this user or their partner that name
    the person (an admin granted by address, a suspension's reason): scrubbed like the
    partner's own. Rows about other partners are left alone, whoever they name."""
    partner_id = user.partner_id
    with platform_scope():
        events = db.session.execute(
            select(AuditEvent).where(
                AuditEvent.partner_id.is_(None),
                or_(
                    (AuditEvent.target_type == "users") & (AuditEvent.target_id == str(user.id)),
                    (AuditEvent.target_type == "partners")
                    & (AuditEvent.target_id == str(partner_id)),
                ),
                or_(_mentions(AuditEvent.details, people), _mentions(AuditEvent.target_id, people)),
            )
        ).scalars()
        touched = 0
        for event in events:
            event.details = _scrub(event.details, people)
            if event.target_id is not None and _scrub(event.target_id, people) != event.target_id:
                event.target_id = placeholder
            touched += 1
    return touched


def erase_user(user: User, *, by: User | None, reason: str = "erasure request") -> dict[str, int]:
    """Remove or anonymise everything that identifies `user`; returns counts per kind.

    Sessions, links, identities and exports are deleted (a session a support record points at
    is kept without IP or device); the user row stays, anonymised and deactivated, so that
    subscriptions, their history and audit events keep pointing at it. Audit events and emails
    lose the person's address, name and IPs through the audit maintenance path.
    """
    if by is not None and by.id == user.id:
        raise Forbidden("You cannot erase your own account here; close it on Your data.")
    if by is None:
        lock_partner()  # the last-admin rule and ending impersonations read across rows
    else:  # and the admin may have lost the right to erase while this request waited
        hold_partner(by, Permission.USERS_DEACTIVATE)
    if is_erased(user):
        raise PrivacyError("This account is already erased.")
    if user.role.is_admin and user.status == UserStatus.ACTIVE and not _other_active_admins(user):
        raise PrivacyError(f"{user.email} is the last active admin and cannot be erased.")
    email, name = user.email, user.display_name
    ips = {
        ip
        for ip in db.session.execute(
            select(UserSession.ip).where(UserSession.user_id == user.id)
        ).scalars()
        if ip
    }
    ips |= {
        ip
        for ip in db.session.execute(
            select(AuditEvent.ip).where(
                or_(
                    (AuditEvent.actor_type == ActorType.USER) & (AuditEvent.actor_id == user.id),
                    AuditEvent.on_behalf_of_id == user.id,
                )
            )
        ).scalars()
        if ip
    }
    # Names and addresses the person had before (profile and email changes keep them).
    former = {
        value
        for details in db.session.execute(
            select(AuditEvent.details).where(
                AuditEvent.target_type == "users",
                AuditEvent.target_id == str(user.id),
                AuditEvent.action.in_(FORMER_IDENTITY_ACTIONS),
            )
        ).scalars()
        for key in ("from", "to")
        if isinstance(value := (details or {}).get(key), str) and value
    }
    secrets = [s for s in (email, name, *sorted(former), *sorted(ips)) if s]
    people = [s for s in (email, name, *sorted(former)) if s]
    counts: dict[str, int] = {}
    end_impersonations_of(
        user, as_agent=EndReason.AGENT_DEACTIVATED, as_target=EndReason.TARGET_UNAVAILABLE, by=by
    )
    kept = select(Impersonation.id).where(
        or_(
            Impersonation.session_id == UserSession.id,
            Impersonation.agent_session_id == UserSession.id,
        )
    )
    counts["sessions"] = db.session.execute(
        delete(UserSession)
        .where(UserSession.user_id == user.id, ~exists(kept))
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.execute(
        update(UserSession)
        .where(UserSession.user_id == user.id)
        .values(
            ip=None, user_agent=None, revoked_at=func.coalesce(UserSession.revoked_at, utcnow())
        )
        .execution_options(synchronize_session=False)
    )
    db.session.execute(
        update(Impersonation)
        .where(Impersonation.agent_id == user.id)
        .values(ip=None)
        .execution_options(synchronize_session=False)
    )
    for access in db.session.execute(
        select(Impersonation).where(
            or_(
                _mentions(Impersonation.reason, people),
                _mentions(Impersonation.ticket, people),
            )
        )
    ).scalars():
        access.reason, access.ticket = "[erased]", None
    counts["tokens"] = db.session.execute(
        delete(ActionToken)
        .where(ActionToken.user_id == user.id)
        .execution_options(synchronize_session=False)
    ).rowcount
    # An API client's stored answers that name the person (an invitation made through the API):
    # a retry with that key then runs again, as after the key's retention.
    counts["api_answers"] = db.session.execute(
        delete(IdempotentRequest)
        .where(_mentions(IdempotentRequest.body, people))
        .execution_options(synchronize_session=False)
    ).rowcount
    counts["identities"] = db.session.execute(
        delete(SsoIdentity)
        .where(SsoIdentity.user_id == user.id)
        .execution_options(synchronize_session=False)
    ).rowcount
    # The person's own copies, and others' copies that mention them (an admin's actions).
    db.session.execute(
        delete(DataExport)
        .where(or_(DataExport.user_id == user.id, _mentions(DataExport.content, secrets)))
        .execution_options(synchronize_session=False)
    )
    placeholder = erased_address(user.id)
    counts["emails"] = db.session.execute(
        update(OutboxMessage)
        .where(
            or_(
                OutboxMessage.to_address == email,
                OutboxMessage.to_address.in_(former),
                _mentions(OutboxMessage.body_text, people),
                _mentions(OutboxMessage.body_html, people),
                _mentions(OutboxMessage.subject, people),
            )
        )
        .values(to_address=placeholder, subject="[erased]", body_text="", body_html="")
        .execution_options(synchronize_session=False)
    ).rowcount
    # Subscription reasons written by people may name the person.
    for event in db.session.execute(
        select(SubscriptionEvent).where(_mentions(SubscriptionEvent.reason, people))
    ).scalars():
        event.reason = "[erased]"
    user.email = placeholder
    user.display_name = ERASED_NAME
    user.password_hash = None
    user.is_support = False
    user.status = UserStatus.DEACTIVATED
    user.closing_at = None
    user.last_login_at = None
    with audit_maintenance("privacy.erasure", actor=by, target=user) as details:
        touched = 0
        about = _events_about(user)
        for event in db.session.execute(
            select(AuditEvent).where(
                or_(
                    about,
                    AuditEvent.ip.in_(ips) if ips else false(),
                    _mentions(AuditEvent.actor_label, people),
                    _mentions(AuditEvent.details, secrets),
                    # A sign-in or mail request for the address (failed, limited, refused).
                    (AuditEvent.target_type == "email") & _mentions(AuditEvent.target_id, people),
                )
            )
        ).scalars():
            if event.ip in ips:
                event.ip = None
            if event.target_type == "email" and _scrub(event.target_id, people) != event.target_id:
                event.target_id = placeholder
            if event.actor_label.lower() in {p.lower() for p in people}:
                event.actor_label = placeholder
            scrubbed = _scrub(event.details, secrets)
            if scrubbed != event.details:
                event.details = scrubbed
            touched += 1
        touched += _scrub_platform_events(user, people, placeholder)
        details.update(counts)
        details.update({"reason": reason, "audit_events": touched})
    purge_replaced_entries()
    return counts
