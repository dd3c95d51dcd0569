"""Reading the outbox across partners (developer tools: the `outbox` command, /dev/outbox)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from portal.extensions import db
from portal.mail.models import OutboxMessage
from portal.tenancy.models import Partner
from portal.tenancy.scope import unscoped


@dataclass(frozen=True)
class OutboxEntry:
    message: OutboxMessage
    partner_slug: str | None  # None for platform mail


def _entries(stmt) -> list[OutboxEntry]:
    stmt = stmt.add_columns(Partner.slug).outerjoin(Partner, Partner.id == OutboxMessage.partner_id)
    with unscoped():
        return [OutboxEntry(message, slug) for message, slug in db.session.execute(stmt).all()]


def latest_messages(limit: int = 20, to: str | None = None) -> list[OutboxEntry]:
    """The newest messages of every partner first, optionally only those sent to `to`."""
    stmt = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
    if to:
        stmt = stmt.where(OutboxMessage.to_address == to.strip().lower())
    return _entries(stmt)


def find_message(message_id: int) -> OutboxEntry | None:
    found = _entries(select(OutboxMessage).where(OutboxMessage.id == message_id))
    return found[0] if found else None
