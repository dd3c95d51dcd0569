"""Every write is audited: walk every POST route of a partner's host as an admin (every
feature on) and, wherever the stored data changed, find the audit event that says so; and
every POST route of the root domain (the operator console), each from a state where it
succeeds, with the audit event it must write."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa
from conftest import PASSWORD, host_client, make_partner, make_user, set_feature
from flask import Flask
from test_authz_matrix import partner_rules, path_for, session_alive, signed_in

from portal.audit.models import AuditEvent
from portal.auth.passwords import hash_password
from portal.clock import clock
from portal.extensions import db
from portal.features.catalogue import CATALOGUE, Scope
from portal.mail.models import MailStatus, OutboxMessage
from portal.operator.models import Operator
from portal.operator.services import set_password_link
from portal.roles.models import Role
from portal.tenancy.models import Partner, PartnerStatus, Theme
from portal.tenancy.scope import partner_scope, unscoped

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


# --- The operator console (root domain) --------------------------------------------------------


def everything() -> dict[str, set]:
    """Every row of every table but the trail itself, without bookkeeping columns."""
    with unscoped():
        state = {}
        for table in db.metadata.sorted_tables:
            if table.name == "audit_events":
                continue
            columns = [c for c in table.c if c.name not in NOT_ACTIONS]
            state[table.name] = {repr(tuple(r)) for r in db.session.execute(sa.select(*columns))}
        db.session.rollback()
        return state


def all_audit_events() -> set[tuple]:
    """Every event as (id, action, target): SQLite reuses the ids of a deleted partner's."""
    columns = (AuditEvent.id, AuditEvent.action, AuditEvent.target_type, AuditEvent.target_id)
    with unscoped():
        events = {tuple(row) for row in db.session.execute(sa.select(*columns))}
        db.session.rollback()
        return events


def root_post_endpoints(app: Flask) -> set[str]:
    return {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.subdomain != "<partner>" and "POST" in (rule.methods or ())
    }


def partner_in(
    slug: str, status: PartnerStatus = PartnerStatus.ACTIVE, **values: object
) -> Partner:
    """A partner with an admin, in `status`, its branding not the default."""
    partner = make_partner(slug, slug.title(), Theme(base="midnight", primary_color="#10b981"))
    make_user(partner, f"admin@{slug}.test", role=Role.ADMIN)
    partner.status = status
    for name, value in values.items():
        setattr(partner, name, value)
    db.session.commit()
    return partner


def failed_message(partner: Partner) -> OutboxMessage:
    with partner_scope(partner):
        message = OutboxMessage(
            to_address=f"admin@{partner.slug}.test",
            from_address="Partner Portal <no-reply@localhost>",
            subject="Invitation",
            body_text="text",
            body_html="<p>html</p>",
            status=MailStatus.FAILED,
            transport="smtp",
            attempts=3,
            error="ConnectionRefusedError: refused",
        )
        db.session.add(message)
        db.session.commit()
    return message


def operator_writes() -> dict[str, Callable[[], tuple[str, dict, str]]]:
    """Per root-domain POST endpoint: set up the state its write needs, and return the path,
    the form that makes the write succeed and the audit action it must record."""
    now = clock.now()

    def closed(slug: str, *, deletable: bool) -> Partner:
        after = now - timedelta(days=1) if deletable else now + timedelta(days=30)
        return partner_in(slug, PartnerStatus.CLOSED, closed_at=now, delete_after=after)

    def link() -> tuple[str, dict, str]:
        _, token, _ = set_password_link(None, "op@portal.test")
        db.session.commit()
        form = {"password": PASSWORD, "confirm": PASSWORD}  # a new hash; the walk signs in on
        return f"/operator/password/{token}", form, "operator.password_set"

    return {
        "operator.login": lambda: (
            "/login",
            {"email": "op@portal.test", "password": PASSWORD},
            "operator.login",
        ),
        "operator.logout": lambda: ("/logout", {}, "operator.logout"),
        "operator.set_password": link,
        "operator.new_partner": lambda: (
            "/operator/partners/new",
            {"slug": "initech", "name": "Initech", "admin_email": "boss@initech.test"},
            "partner.create",
        ),
        "operator.suspend": lambda: (
            f"/operator/partners/{partner_in('p-suspend').id}/suspend",
            {"reason": "unpaid invoices"},
            "partner.suspend",
        ),
        "operator.reactivate": lambda: (
            f"/operator/partners/{partner_in('p-react', PartnerStatus.SUSPENDED).id}/reactivate",
            {},
            "partner.reactivate",
        ),
        "operator.features": lambda: (
            f"/operator/partners/{partner_in('p-lock').id}/features",
            {"key": "impersonation", "lock": "off"},
            "feature.lock",
        ),
        "operator.admins": lambda: (
            f"/operator/partners/{partner_in('p-admin').id}/admins",
            {"email": "second@p-admin.test"},
            "partner.admin_granted",
        ),
        "operator.branding": lambda: (
            f"/operator/partners/{partner_in('p-brand').id}/branding",
            {},
            "partner.branding_reset",
        ),
        "operator.retry_mail": lambda: (
            f"/operator/mail/{failed_message(partner_in('p-mail')).id}/retry",
            {},
            "mail.retry",
        ),
        "privacy_operator.archive": lambda: (
            f"/operator/partners/{partner_in('p-archive').id}/archive",
            {},
            "partner.export",
        ),
        "privacy_operator.close_partner": lambda: (
            f"/operator/partners/{partner_in('p-close').id}/close",
            {"grace_days": "30", "confirm": "p-close"},
            "partner.close",
        ),
        "privacy_operator.reopen": lambda: (
            f"/operator/partners/{closed('p-reopen', deletable=False).id}/reopen",
            {},
            "partner.reopen",
        ),
        "privacy_operator.delete": lambda: (
            f"/operator/partners/{closed('p-delete', deletable=True).id}/delete",
            {"confirm": "p-delete", "understood": "1"},
            "partner.delete",
        ),
    }


def test_every_operator_write_writes_its_audit_event(make_app, data: Flask) -> None:
    """Every POST of the root domain, each from a state where it succeeds: what it changes
    (or, for the archive, reads) is on the trail under its own action."""
    app = make_app(SMTP_URL="smtp://127.0.0.1:1")  # so that a failed message can be retried
    db.session.add(Operator(email="op@portal.test", password_hash=hash_password(PASSWORD)))
    db.session.commit()
    writes = operator_writes()
    assert root_post_endpoints(app) == set(writes)  # a new operator write must be listed here
    for endpoint, prepare in writes.items():
        console = host_client(app, None)
        if endpoint != "operator.login":
            assert console.login("op@portal.test").status_code == 302
        path, form, action = prepare()
        before, events_before = everything(), all_audit_events()
        response = console.post_form(path, form)
        assert response.status_code in (200, 302), (endpoint, response.status_code)
        if response.status_code == 302:  # a refusal goes back with its message: none here
            page = console.get(response.headers["Location"]).get_data(as_text=True)
            assert "flash-error" not in page, (endpoint, page)
        new_actions = [event[1] for event in all_audit_events() - events_before]
        assert action in new_actions, (endpoint, new_actions)
        if endpoint != "privacy_operator.archive":  # a download: it reads, changes nothing
            assert everything() != before, endpoint
