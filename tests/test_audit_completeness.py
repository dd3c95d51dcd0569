"""Every write is audited: walk every POST route of a partner's host as an admin (every
feature on) and, wherever the stored data changed, find the audit event that says so."""

from __future__ import annotations

import sqlalchemy as sa
from conftest import make_user, set_feature
from flask import Flask
from test_authz_matrix import partner_rules, path_for, session_alive, signed_in

from portal.audit.models import AuditEvent
from portal.extensions import db
from portal.features.catalogue import CATALOGUE, Scope
from portal.roles.models import Role
from portal.tenancy.models import Partner
from portal.tenancy.scope import unscoped

# Bookkeeping a request keeps without it being anyone's action: when a session was last used,
# when a user last signed in; and the trail and the mail themselves.
NOT_ACTIONS = {"last_seen_at", "last_login_at", "last_used_at"}
SKIPPED_TABLES = {"audit_events", "outbox_messages"}


def stored(partner_id: int) -> dict[str, set]:
    """Every row of the partner, without bookkeeping columns."""
    with unscoped():
        state = {}
        for table in db.metadata.sorted_tables:
            if "partner_id" not in table.c or table.name in SKIPPED_TABLES:
                continue
            columns = [c for c in table.c if c.name not in NOT_ACTIONS]
            stmt = sa.select(*columns).where(table.c.partner_id == partner_id)
            state[table.name] = {repr(tuple(r)) for r in db.session.execute(stmt)}
        db.session.rollback()
        return state


def audit_ids(partner_id: int) -> set[int]:
    with unscoped():
        ids = set(
            db.session.execute(
                sa.select(AuditEvent.id).where(AuditEvent.partner_id == partner_id)
            ).scalars()
        )
        db.session.rollback()
        return ids


def test_every_successful_write_writes_an_audit_event(app: Flask, acme: Partner) -> None:
    admin = make_user(acme, "walker@acme.test", role=Role.ADMIN)
    make_user(acme, "keeper@acme.test", role=Role.ADMIN)  # never the last admin
    for key, item in CATALOGUE.items():
        if key != "password_login" and item.scope == Scope.PARTNER:
            set_feature(acme, key, True)
    client, token = signed_in(app, admin)
    changed_routes = []
    for n, (rule, method) in enumerate(partner_rules(app)):
        if method != "POST":
            continue
        target = make_user(acme, f"t{n}@acme.test", role=Role.BASIC)
        if not session_alive(client):  # the route before signed the walker out
            client, token = signed_in(app, admin)
        before, events_before = stored(acme.id), audit_ids(acme.id)
        form = {
            "csrf_token": token,
            "display_name": f"Walked {n}",
            "email": f"new{n}@acme.test",
            "role": "advanced",
            "reason": "walking every route of the portal",
            "on": "1",
            "accept_terms": "1",
        }
        response = client.post(
            path_for(app, rule, "acme", target.id), data=form, headers={"X-CSRFToken": token}
        )
        assert response.status_code < 500, (rule.endpoint, response.status_code)
        after = stored(acme.id)
        if after == before:
            continue
        changed = sorted(t for t in after if after[t] != before[t])
        new_events = audit_ids(acme.id) - events_before
        changed_routes.append(rule.endpoint)
        assert new_events, (rule.endpoint, response.status_code, changed)
    # The generic form reaches these writes (and more as forms accept it): logout, profile,
    # role change, deactivation, password reset, invitation, ...
    assert len(changed_routes) >= 7, changed_routes
