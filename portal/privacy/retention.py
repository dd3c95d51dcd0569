"""Retention: what `flask maintenance run` removes, per partner, in batches.

Each policy selects a batch of row ids of one partner (`FOR UPDATE SKIP LOCKED` on
PostgreSQL, so several nodes running at once take different rows and never wait on each
other), applies itself to exactly those rows and commits: one short transaction per batch.
On SQLite each batch takes the database's write lock first (BEGIN IMMEDIATE), so a second run
waits for one batch at most, then finds the rows already gone. Policies that touch audit
events go through the audit maintenance path and record what they did.
"""

from __future__ import annotations

import ipaddress
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, delete, exists, func, or_, select
from sqlalchemy.exc import OperationalError

from portal import unit_of_work
from portal.api.models import ApiToken, IdempotentRequest
from portal.audit.maintenance import audit_maintenance
from portal.audit.models import AuditEvent
from portal.extensions import db
from portal.mail.models import OutboxMessage
from portal.privacy.models import DataExport
from portal.privacy.services import close_account, prepare_export
from portal.sessions.models import UserSession
from portal.support.models import Impersonation
from portal.tenancy.models import Partner, RetentionPolicy
from portal.tenancy.scope import partner_scope, unscoped
from portal.tokens.models import ActionToken
from portal.users.models import User


def truncate_ip(ip: str) -> str:
    """An IP reduced to its network (/24 for IPv4, /48 for IPv6), marked by the prefix."""
    try:
        address = ipaddress.ip_address(ip.split("/")[0])
    except ValueError:
        return "invalid/0"
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


@dataclass(frozen=True)
class Policy:
    """One retention rule: which rows are due, and what to do with a batch of them."""

    name: str
    model: Any
    due: Callable[[RetentionPolicy, datetime], ColumnElement[bool]]
    apply: Callable[[list[int]], int]
    audit: bool = False  # changes audit events: the maintenance path, and its own event


def _delete(model: Any) -> Callable[[list[int]], int]:
    def run(ids: list[int]) -> int:
        return db.session.execute(
            delete(model).where(model.id.in_(ids)).execution_options(synchronize_session=False)
        ).rowcount

    return run


def _blank_bodies(ids: list[int]) -> int:
    rows = db.session.execute(select(OutboxMessage).where(OutboxMessage.id.in_(ids))).scalars()
    count = 0
    for message in rows:
        message.body_text, message.body_html = "", ""
        count += 1
    return count


def _truncate_ips(ids: list[int]) -> int:
    count = 0
    for event in db.session.execute(select(AuditEvent).where(AuditEvent.id.in_(ids))).scalars():
        event.ip = truncate_ip(event.ip or "")
        count += 1
    return count


def _prepare_exports(ids: list[int]) -> int:
    for export in db.session.execute(select(DataExport).where(DataExport.id.in_(ids))).scalars():
        prepare_export(export)
    return len(ids)


def _close_accounts(ids: list[int]) -> int:
    users = db.session.execute(select(User).where(User.id.in_(ids))).scalars().all()
    return sum(close_account(user) for user in users)


def _days(n: int) -> timedelta:
    return timedelta(days=n)


def _audit_cutoff(policy: RetentionPolicy, now: datetime) -> datetime:
    years = max(policy.audit_years, current_app.config["RETENTION_AUDIT_MIN_YEARS"])
    return now - timedelta(days=365 * years)


def _session_due(policy: RetentionPolicy, now: datetime) -> ColumnElement[bool]:
    cutoff = now - _days(policy.sessions_days)
    referenced = select(Impersonation.id).where(
        or_(
            Impersonation.session_id == UserSession.id,
            Impersonation.agent_session_id == UserSession.id,
        )
    )
    return or_(UserSession.revoked_at <= cutoff, UserSession.expires_at <= cutoff) & ~exists(
        referenced
    )


POLICIES = (
    Policy(
        "exports_prepared",
        DataExport,
        lambda p, now: DataExport.ready_at.is_(None),
        _prepare_exports,
    ),
    Policy(
        "exports_expired",
        DataExport,
        lambda p, now: DataExport.expires_at <= now,
        _delete(DataExport),
    ),
    Policy("sessions_deleted", UserSession, _session_due, _delete(UserSession)),
    Policy(
        "tokens_deleted",
        ActionToken,
        lambda p, now: or_(
            ActionToken.used_at <= now - _days(p.tokens_days),
            ActionToken.revoked_at <= now - _days(p.tokens_days),
            ActionToken.expires_at <= now - _days(p.tokens_days),
        ),
        _delete(ActionToken),
    ),
    Policy(
        "api_tokens_deleted",
        ApiToken,
        lambda p, now: or_(
            ApiToken.revoked_at <= now - _days(p.tokens_days),
            ApiToken.expires_at <= now - _days(p.tokens_days),
        ),
        _delete(ApiToken),
    ),
    Policy(
        # A stored answer holds what the request created (an invited address, say); a retry
        # after these days runs again.
        "idempotency_keys_deleted",
        IdempotentRequest,
        lambda p, now: IdempotentRequest.created_at <= now - _days(p.tokens_days),
        _delete(IdempotentRequest),
    ),
    Policy(
        "email_bodies_deleted",
        OutboxMessage,
        lambda p, now: (
            (OutboxMessage.created_at <= now - _days(p.outbox_days))
            & or_(OutboxMessage.body_text != "", OutboxMessage.body_html != "")
        ),
        _blank_bodies,
    ),
    Policy(
        "audit_ips_truncated",
        AuditEvent,
        lambda p, now: (
            (AuditEvent.created_at <= now - _days(p.audit_ip_days))
            & AuditEvent.ip.is_not(None)
            & ~AuditEvent.ip.contains("/")
        ),
        _truncate_ips,
        audit=True,
    ),
    Policy(
        "audit_events_deleted",
        AuditEvent,
        lambda p, now: AuditEvent.created_at < _audit_cutoff(p, now),
        _delete(AuditEvent),
        audit=True,
    ),
    Policy(
        "accounts_closed",
        User,
        lambda p, now: User.closing_at <= now,
        _close_accounts,
    ),
)


def _take_write_lock() -> None:
    """SQLite: one writer at a time, taken before the batch reads (PostgreSQL: row locks)."""
    connection = db.session.connection()
    raw = connection.connection.dbapi_connection
    if isinstance(raw, sqlite3.Connection) and not raw.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _batch(policy: Policy, retention: RetentionPolicy, now: datetime, size: int) -> int:
    _take_write_lock()
    ids = list(
        db.session.execute(
            select(policy.model.id)
            .where(policy.due(retention, now))
            .order_by(policy.model.id)
            .limit(size)
            .with_for_update(skip_locked=True)
        ).scalars()
    )
    if not ids:
        return 0
    if policy.audit:
        with audit_maintenance(f"retention.{policy.name}") as details:
            done = policy.apply(ids)
            details.update({"count": done, "first_id": ids[0], "last_id": ids[-1]})
        return done
    return policy.apply(ids)


def _count(policy: Policy, retention: RetentionPolicy, now: datetime) -> int:
    return db.session.execute(
        select(func.count(policy.model.id)).where(policy.due(retention, now))
    ).scalar_one()


def partners_in_order() -> list[Partner]:
    with unscoped():
        partners = db.session.execute(select(Partner).order_by(Partner.id)).scalars().all()
    return list(partners)


def run_maintenance(
    now: datetime, *, dry_run: bool = False, batch: int | None = None
) -> list[tuple[str, str, int]]:
    """Apply every policy to every partner; (partner slug, policy, rows) for each that did
    something (or would, with `dry_run`). Commits after each batch."""
    size = batch or current_app.config["MAINTENANCE_BATCH"]
    report: list[tuple[str, str, int]] = []
    for partner in partners_in_order():
        slug = partner.slug
        for policy in POLICIES:
            total = 0
            while True:
                try:
                    with partner_scope(partner):
                        retention = partner.retention
                        if dry_run:
                            total = _count(policy, retention, now)
                            break
                        done = _batch(policy, retention, now, size)
                    unit_of_work.commit()
                except OperationalError as exc:
                    if not unit_of_work.busy(exc):
                        raise
                    # Another writer held the lock too long: the next run does the rest.
                    unit_of_work.rollback()
                    report.append((slug, f"{policy.name} (busy, left for later)", 0))
                    break
                total += done
                if done < size:
                    break
            unit_of_work.rollback()  # a dry run wrote nothing; end its read transaction
            if total:
                report.append((slug, policy.name, total))
    return report
