"""`flask seed-demo`: the demo accounts, idempotent, refused in production."""

from __future__ import annotations

import re

import sqlalchemy as sa
from conftest import host_client, rows
from flask import Flask

from portal.auth.passwords import hash_password
from portal.extensions import db
from portal.operator.models import Operator
from portal.roles.models import Role
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.users.models import User, UserStatus

ROLES = ["guest", "basic", "advanced", "company", "admin"]


def test_seed_creates_the_demo_accounts_and_is_idempotent(app: Flask, data: Flask) -> None:
    runner = data.test_cli_runner()
    first = runner.invoke(args=["seed-demo"])
    assert first.exit_code == 0, first.output
    assert "http://acme.localhost/login" in first.output
    assert "operator@portal.test" in first.output
    counts = (len(rows(Partner)), len(rows(User)), len(rows(Operator)))
    assert runner.invoke(args=["seed-demo"]).exit_code == 0
    assert (len(rows(Partner)), len(rows(User)), len(rows(Operator))) == counts == (2, 14, 1)

    partners = {p.slug: p for p in rows(Partner)}
    assert partners["acme"].name == "Acme Corp" and partners["globex"].name == "Globex"
    assert partners["acme"].theme != partners["globex"].theme
    for slug, partner in partners.items():
        users = {u.email: u for u in rows(User, partner_id=partner.id)}
        for role in ROLES:
            assert users[f"{role}@{slug}.test"].role == Role(role)
        support = users[f"support@{slug}.test"]
        assert support.role == Role.BASIC and support.is_support
        assert "shared@example.com" in users

    def login(slug: str | None, email: str, password: str) -> int:
        return host_client(app, slug).login(email, password).status_code

    assert login("acme", "admin@acme.test", "portal-demo-2026") == 302
    assert login("acme", "shared@example.com", "harbour-lantern-2026") == 422
    assert login("acme", "shared@example.com", "orchard-lantern-2026") == 302
    assert login("globex", "shared@example.com", "harbour-lantern-2026") == 302
    assert login(None, "operator@portal.test", "portal-demo-2026") == 302
    assert (
        host_client(app, None).login("operator@portal.test", "portal-demo-2026").status_code == 302
    )


def test_seed_refuses_in_production(data: Flask, monkeypatch) -> None:
    monkeypatch.setitem(data.config, "PORTAL_ENV", "production")
    result = data.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code != 0
    assert "refuses to run with PORTAL_ENV=production" in result.output
    assert db.session.execute(sa.select(sa.func.count()).select_from(Partner)).scalar_one() == 0


def test_the_account_table_tells_the_accounts_as_they_are_now(app: Flask, data: Flask) -> None:
    """`make run` prints this table: after people changed the demo, it says so (issue 16)."""
    runner = data.test_cli_runner()
    first = runner.invoke(args=["seed-demo"]).output
    assert re.search(r"basic@acme\.test\s+portal-demo-2026\s+Basic\n", first)
    assert re.search(r"support@acme\.test\s+portal-demo-2026\s+Basic, support agent", first)
    acme = next(p for p in rows(Partner) if p.slug == "acme")
    with partner_scope(acme):
        basic = db.session.execute(
            sa.select(User).where(User.email == "basic@acme.test")
        ).scalar_one()
        basic.role = Role.ADVANCED
        advanced = db.session.execute(
            sa.select(User).where(User.email == "advanced@acme.test")
        ).scalar_one()
        advanced.status = UserStatus.DEACTIVATED
        guest = db.session.execute(
            sa.select(User).where(User.email == "guest@acme.test")
        ).scalar_one()
        guest.password_hash = hash_password("someone-else-2026")
        db.session.commit()
    again = runner.invoke(args=["seed-demo"]).output
    assert re.search(r"basic@acme\.test\s+portal-demo-2026\s+Advanced\n", again)
    assert re.search(r"advanced@acme\.test\s+portal-demo-2026\s+Advanced, DEACTIVATED", again)
    assert re.search(r"guest@acme\.test\s+\(changed\)\s+Guest, PASSWORD CHANGED", again)
    assert re.search(r"basic@globex\.test\s+portal-demo-2026\s+Basic\n", again)
