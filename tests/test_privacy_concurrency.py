"""Data protection with two writers at once, and the append-only audit table (PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import PASSWORD, logged_in, make_user, rows
from flask import Flask
from racing import TRIES, WAIT, first_write, race, results, skip_unless_racing
from sqlalchemy import event

from portal import unit_of_work
from portal.audit.maintenance import audit_maintenance
from portal.audit.models import AuditEvent
from portal.clock import clock
from portal.extensions import db
from portal.privacy.retention import run_maintenance
from portal.privacy.services import close_account
from portal.roles.models import Role
from portal.sessions.models import UserSession
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.users.models import User, UserStatus

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


def _active_admins() -> list[User]:
    return rows(User, role=Role.ADMIN, status=UserStatus.ACTIVE)


def _post_together(apps: list[Flask], clients: list[Any], *requests: tuple[str, dict]) -> list:
    tokens = [c.csrf_token("/") for c in clients]

    def post(index: int) -> Any:
        path, form = requests[index]
        return clients[index].post(path, data={**form, "csrf_token": tokens[index]}, headers=HTMX)

    responses = results(race(apps, post))
    assert all(r.status_code < 500 for r in responses), [r.text[:300] for r in responses]
    return responses


def _version(user: User) -> int:
    return rows(User, id=user.id)[0].version


ERASE = {"confirm": "erase"}


@pytest.mark.parametrize("attempt", range(TRIES))
def test_two_admins_erasing_each_other_at_once(
    data: Flask, make_app: Any, acme: Partner, acme_admin: User, attempt: int
) -> None:
    """Each of two admins erases the other at the same instant: one erasure, the other
    refused; the partner keeps an active admin."""
    skip_unless_racing()
    second = make_user(acme, "second@acme.test", role=Role.ADMIN)
    apps = [make_app(), make_app()]
    clients = [logged_in(apps[0], acme_admin), logged_in(apps[1], second)]
    responses = _post_together(
        apps,
        clients,
        (f"/admin/users/{second.id}/erase", ERASE),
        (f"/admin/users/{acme_admin.id}/erase", ERASE),
    )
    assert sorted(r.status_code for r in responses)[0] == 302, [r.text for r in responses]
    [refusal] = [r for r in responses if r.status_code != 302]
    assert refusal.status_code in (403, 422), refusal.text
    assert any(why in refusal.text for why in ("last active admin", "permission"))
    assert len(_active_admins()) == 1
    assert len(rows(AuditEvent, action="privacy.erasure")) == 1


@pytest.mark.parametrize("attempt", range(TRIES))
def test_erasing_an_admin_while_they_demote_the_eraser(
    data: Flask, make_app: Any, acme: Partner, acme_admin: User, attempt: int
) -> None:
    """Admin B erases admin A while A demotes B: one of the two changes, never both; the
    partner keeps an active admin."""
    skip_unless_racing()
    second = make_user(acme, "second@acme.test", role=Role.ADMIN)
    apps = [make_app(), make_app()]
    clients = [logged_in(apps[0], acme_admin), logged_in(apps[1], second)]
    demote, erase = _post_together(
        apps,
        clients,
        (f"/admin/users/{second.id}/role", {"role": "company", "version": _version(second)}),
        (f"/admin/users/{acme_admin.id}/erase", ERASE),
    )
    assert sorted([demote.status_code, erase.status_code])[0] == 302
    assert max(demote.status_code, erase.status_code) in (403, 409, 422)
    [admin] = _active_admins()
    erased = rows(AuditEvent, action="privacy.erasure")
    demoted = rows(AuditEvent, action="user.role_change")
    assert len(erased) + len(demoted) == 1
    assert admin.id == (second.id if erased else acme_admin.id)


@pytest.mark.parametrize("attempt", range(TRIES))
def test_an_admin_demoted_meanwhile_erases_nobody(
    data: Flask, make_app: Any, acme: Partner, acme_admin: User, attempt: int
) -> None:
    """Admin C demotes admin B just before B's erasure of admin A is carried out (the demotion
    first, for certain): the erasure is refused; B no longer has the right to erase."""
    skip_unless_racing()
    second = make_user(acme, "second@acme.test", role=Role.ADMIN)
    third = make_user(acme, "third@acme.test", role=Role.ADMIN)
    apps = [make_app(), make_app()]
    clients = [logged_in(apps[0], second), logged_in(apps[1], third)]
    tokens = [c.csrf_token("/") for c in clients]
    demotion = (f"/admin/users/{second.id}/role", {"role": "company", "version": _version(second)})
    erasure = f"/admin/users/{acme_admin.id}/erase"
    demoted = threading.Event()

    def post(index: int) -> Any:
        if index == 1:
            path, form = demotion
            response = clients[1].post(path, data={**form, "csrf_token": tokens[1]}, headers=HTMX)
            demoted.set()
            return response
        waited: list[bool] = []

        def after_the_demotion(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if not waited and first_write(statement):  # just past the race's barrier
                waited.append(True)
                assert demoted.wait(WAIT)

        event.listen(db.engine, "before_cursor_execute", after_the_demotion)
        try:
            form = {**ERASE, "csrf_token": tokens[0]}
            return clients[0].post(erasure, data=form, headers=HTMX)
        finally:
            event.remove(db.engine, "before_cursor_execute", after_the_demotion)

    erase, demote = results(race(apps, post))
    assert demote.status_code == 302, demote.text
    assert erase.status_code == 403, erase.text
    assert "permission" in erase.text
    assert rows(AuditEvent, action="privacy.erasure") == []
    assert {u.id for u in _active_admins()} == {acme_admin.id, third.id}


@pytest.mark.parametrize("attempt", range(TRIES))
def test_closing_ones_account_while_the_other_admin_demotes_one(
    data: Flask, make_app: Any, acme: Partner, acme_admin: User, attempt: int
) -> None:
    """Admin A closes their account while admin B, A's only fellow admin, demotes A. The
    closure always goes through; the demotion too when it comes first, and is otherwise
    refused as made on a page A's closure changed meanwhile. B stays an active admin who is
    not leaving."""
    skip_unless_racing()
    second = make_user(acme, "second@acme.test", role=Role.ADMIN)
    apps = [make_app(), make_app()]
    clients = [logged_in(apps[0], acme_admin), logged_in(apps[1], second)]
    demotion = {"role": "company", "version": _version(acme_admin)}
    close, demote = _post_together(
        apps,
        clients,
        ("/account/data/close", {"password": PASSWORD}),
        (f"/admin/users/{acme_admin.id}/role", demotion),
    )
    assert close.status_code == 302, close.text
    assert demote.status_code in (302, 409), demote.text
    [leaving] = rows(User, id=acme_admin.id)
    assert leaving.closing_at is not None
    if demote.status_code == 302:
        assert leaving.role == Role.COMPANY
    else:
        assert "changed by someone else" in demote.text and leaving.role == Role.ADMIN
    staying = [u for u in _active_admins() if u.closing_at is None]
    assert [u.id for u in staying] == [second.id]


@pytest.mark.parametrize("attempt", range(TRIES))
def test_closing_ones_account_while_demoting_the_only_other_admin(
    data: Flask, make_app: Any, acme: Partner, acme_admin: User, attempt: int
) -> None:
    """Admin A, in two tabs, closes their account and demotes B, the only other admin, at
    once. Either the demotion comes first and the closure is refused (the last active
    admin), or the closure comes first and the demotion goes through: then A is the last
    admin, leaving, and the closure waits when it falls due instead of erasing them."""
    skip_unless_racing()
    second = make_user(acme, "second@acme.test", role=Role.ADMIN)
    apps = [make_app(), make_app()]
    clients = [logged_in(apps[0], acme_admin), logged_in(apps[1], acme_admin)]
    close, demote = _post_together(
        apps,
        clients,
        ("/account/data/close", {"password": PASSWORD}),
        (f"/admin/users/{second.id}/role", {"role": "company", "version": _version(second)}),
    )
    assert demote.status_code == 302, demote.text
    [admin] = _active_admins()
    assert admin.id == acme_admin.id
    if close.status_code == 302:  # the closure first: A is the last admin, and leaving
        assert admin.closing_at is not None
        with partner_scope(rows(Partner, id=acme.id)[0]):
            assert close_account(db.session.get(User, acme_admin.id)) is False
            unit_of_work.rollback()
        assert [u.id for u in _active_admins()] == [acme_admin.id]
    else:  # the demotion first: the closure is refused
        assert close.status_code == 422 and "last active admin" in close.text
        assert admin.closing_at is None
