"""The one controlled path that may change or delete audit events.

On PostgreSQL the audit table is append-only: a trigger (migration 0014) refuses UPDATE and
DELETE unless the transaction set `portal.audit_maintenance` to 'on'. Only `audit_maintenance()`
sets it, transaction-locally, and every use writes its own audit event saying what was done
(retention, erasure, partner deletion), so the log still shows that it was changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import text

from portal.audit.services import record_audit
from portal.extensions import db
from portal.tenancy.scope import raw_sql


def allow_audit_changes() -> None:
    """Let this transaction (and only it) change audit rows; a no-op on SQLite."""
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        with raw_sql():  # a setting, no tenant table read
            db.session.execute(text("SELECT set_config('portal.audit_maintenance', 'on', true)"))


@contextmanager
def audit_maintenance(action: str, *, actor: Any = None, target: Any = None) -> Iterator[dict]:
    """Run a block that changes or deletes audit events, then record `action` with the
    details the block filled in (counts, never the erased data)."""
    allow_audit_changes()
    details: dict[str, Any] = {}
    yield details
    record_audit(action, actor=actor, target=target, details=details)
