"""Data protection with two writers at once, and the append-only audit table (PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import PASSWORD, logged_in, make_user, rows
from flask import Flask
from racing import TRIES, race, results, skip_unless_racing

from portal import unit_of_work
from portal.audit.maintenance import audit_maintenance
from portal.audit.models import AuditEvent
from portal.clock import clock
from portal.extensions import db
from portal.privacy.retention import run_maintenance
from portal.roles.models import Role
from portal.sessions.models import UserSession
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.users.models import User

HTMX = {"HX-Request": "true"}


@pytest.mark.parametrize("attempt", range(TRIES))
def test_two_last_admins_closing_at_once(
    data: Flask, make_app: Any, acme: Partner, acme_admin: User, attempt: int
) -> None:
    """Two admins, each the other's only fellow admin, close their accounts at once: one
    closure is accepted, the other refused; the partner keeps an admin who is not leaving."""
    skip_unless_racing()
    second = make_user(acme, "second@acme.test", role=Role.ADMIN)
    apps = [make_app(), make_app()]
    clients = [logged_in(apps[0], acme_admin), logged_in(apps[1], second)]
    tokens = [c.csrf_token("/account/data") for c in clients]

    def close(index: int) -> Any:
        data = {"password": PASSWORD, "csrf_token": tokens[index]}
        return clients[index].post("/account/data/close", data=data, headers=HTMX)

    responses = results(race(apps, close))
    assert sorted(r.status_code for r in responses) == [302, 422], [r.text for r in responses]
    assert any("last active admin" in r.text for r in responses)
    closing = [u for u in rows(User) if u.closing_at is not None]
    assert len(closing) == 1


@pytest.mark.parametrize("attempt", range(TRIES))
def test_two_maintenance_runs_at_once(
    data: Flask, make_app: Any, acme: Partner, acme_user: User, attempt: int
) -> None:
    """Two nodes run the maintenance at the same moment: together they delete every due row
    once, without errors or waiting on each other's rows."""
    skip_unless_racing()
    old = clock.now() - timedelta(days=400)
    with partner_scope(acme):
        for i in range(30):
            db.session.add(
                UserSession(
                    user_id=acme_user.id,
                    token_hash=f"race-{i:03d}".ljust(64, "0"),
                    created_at=old,
                    last_seen_at=old,
                    expires_at=old,
                    ip="203.0.113.5",
                )
            )
            db.session.add(
                AuditEvent(actor_type="system", action="test.old", ip="203.0.113.5", created_at=old)
            )
        db.session.commit()
    apps = [make_app(), make_app()]
    now = clock.now()
    reports = results(race(apps, lambda i: run_maintenance(now, batch=4)))
    deleted = sum(
        n for report in reports for _, policy, n in report if policy == "sessions_deleted"
    )
    assert deleted == 30
    assert rows(UserSession, user_id=acme_user.id) == []
    assert {e.ip for e in rows(AuditEvent, action="test.old")} == {"203.0.113.0/24"}
    truncated = sum(
        e.details["count"] for e in rows(AuditEvent, action="retention.audit_ips_truncated")
    )
    assert truncated == 30  # each event truncated once, by one of the two


def test_audit_events_are_append_only_except_through_maintenance(
    data: Flask, acme: Partner, acme_user: User
) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("the append-only trigger is PostgreSQL's")
    with partner_scope(acme):
        event = AuditEvent(actor_type="system", action="test.kept", ip="203.0.113.9")
        db.session.add(event)
        db.session.commit()
    for statement in (
        sa.update(AuditEvent).values(ip=None),
        sa.delete(AuditEvent),
    ):
        with partner_scope(acme), pytest.raises(sa.exc.ProgrammingError, match="append-only"):
            db.session.execute(statement.where(AuditEvent.action == "test.kept"))
        unit_of_work.rollback()
    assert len(rows(AuditEvent, action="test.kept")) == 1
    with partner_scope(acme), audit_maintenance("test.maintenance") as details:
        details["count"] = db.session.execute(
            sa.delete(AuditEvent).where(AuditEvent.action == "test.kept")
        ).rowcount
    unit_of_work.commit()
    assert rows(AuditEvent, action="test.kept") == []
    [record] = rows(AuditEvent, action="test.maintenance")
    assert record.details == {"count": 1}
    # The setting was transaction-local: the next transaction is append-only again.
    with partner_scope(acme), pytest.raises(sa.exc.ProgrammingError, match="append-only"):
        db.session.execute(sa.delete(AuditEvent).where(AuditEvent.action == "test.maintenance"))
    unit_of_work.rollback()
