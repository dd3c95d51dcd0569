"""More rules that read before they write, each with two real writers at once (SQLite and
PostgreSQL): settings against role configuration, sign-ins at the session limit, a plan
confirmed while the role changes, and user-side changes against admin actions.
"""

from __future__ import annotations

import re
import secrets
import threading
from typing import Any

import pytest
from conftest import PASSWORD, host_client, logged_in, make_user, rows, set_feature
from flask import Flask
from oidc import configure
from racing import TRIES, WAIT, first_write, race, results, skip_unless_racing
from sqlalchemy import event
from test_subscriptions import plan

from portal.audit.models import AuditEvent
from portal.extensions import db
from portal.features.evaluation import evaluate, forget_settings
from portal.mail.models import OutboxMessage
from portal.roles.models import Role
from portal.roles.policy import current_policy
from portal.sessions.models import UserSession
from portal.sso.models import SsoIdentity
from portal.subscriptions.models import Subscription
from portal.subscriptions.models import SubscriptionState as S
from portal.subscriptions.services import ActorKind, start_signing
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.tokens.models import ActionToken
from portal.users.models import User, UserStatus

HTMX = {"HX-Request": "true"}
pytestmark = pytest.mark.parametrize("attempt", range(TRIES))


def post_together(apps: list[Flask], clients: list, tokens: list, *requests) -> list[Any]:
    def post(index: int) -> Any:
        path, form = requests[index]
        data = {**form, "csrf_token": tokens[index]}
        return clients[index].post(path, data=data, headers=HTMX)

    responses = results(race(apps, post))
    assert all(r.status_code < 500 for r in responses), [r.text[:300] for r in responses]
    return responses


def roles_form(disable: Role) -> dict[str, Any]:
    """The role configuration page as submitted with `disable` unticked."""
    form: dict[str, Any] = {}
    for role, config in current_policy().roles.items():
        if config.enabled and role != disable:
            form[f"enabled_{role.value}"] = "1"
        form[f"label_{role.value}"] = config.label
        form[f"perm_{role.value}"] = [p.value for p in config.permissions]
    return form


def test_default_role_against_disabling_that_role(
    data: Flask, make_app, acme: Partner, acme_admin: User, attempt
) -> None:
    """The default role for sign-ups is always an enabled role."""
    skip_unless_racing()
    second = make_user(acme, "second@acme.test", role=Role.ADMIN)
    with partner_scope(acme):
        form = roles_form(disable=Role.BASIC)
    apps = [make_app(), make_app()]
    clients = [logged_in(apps[0], acme_admin), logged_in(apps[1], second)]
    tokens = [c.csrf_token("/") for c in clients]
    responses = post_together(
        apps,
        clients,
        tokens,
        ("/admin/settings/", {"default_role": "basic"}),
        ("/admin/roles/", form),
    )
    [partner] = rows(Partner, id=acme.id)
    with partner_scope(partner):
        basic_enabled = current_policy().roles[Role.BASIC].enabled
    assert not (partner.default_role == "basic" and not basic_enabled)
    assert sorted(r.status_code for r in responses)[0] in (200, 302)  # one of them went through


@pytest.mark.parametrize("at_limit", ["deny_new", "evict_oldest"])
def test_two_sign_ins_at_the_session_limit(
    data: Flask, make_app, acme: Partner, at_limit: str, attempt
) -> None:
    skip_unless_racing()
    acme.session_policy_settings = {"max_concurrent": 1, "at_limit": at_limit}
    db.session.commit()
    user = make_user(acme, "pat@acme.test", role=Role.BASIC)
    if at_limit == "evict_oldest":
        logged_in(make_app(), user)  # one live session already
    apps = [make_app(), make_app()]
    clients = [host_client(a, "acme") for a in apps]
    tokens = [c.csrf_token("/login") for c in clients]

    def sign_in(index: int) -> Any:
        form = {"email": "pat@acme.test", "password": PASSWORD, "csrf_token": tokens[index]}
        return clients[index].post("/login", data=form)

    responses = results(race(apps, sign_in))
    live = [s for s in rows(UserSession, user_id=user.id) if s.revoked_at is None]
    assert len(live) == 1, [r.status_code for r in responses]
    expected = [302, 409] if at_limit == "deny_new" else [302, 302]
    assert sorted(r.status_code for r in responses) == expected


def test_a_plan_confirmed_while_the_role_changes(
    data: Flask, make_app, acme: Partner, acme_admin: User, attempt
) -> None:
    """The admin's role change goes first, for certain: the confirmation must then see the new
    role, not the one it loaded at its start (DESIGN §5: never signed to a plan the role may
    not have)."""
    skip_unless_racing()
    user = make_user(acme, "pat@acme.test", role=Role.BASIC)
    with partner_scope(acme):
        basic_only = plan("basiconly", roles=(Role.BASIC,))
        db.session.commit()
        me = db.session.get(User, user.id)
        sub_id = start_signing(me, basic_only, actor=me, kind=ActorKind.USER).id
        db.session.commit()
    apps = [make_app(), make_app()]
    clients = [logged_in(apps[0], user), logged_in(apps[1], acme_admin)]
    tokens = [c.csrf_token("/") for c in clients]
    version = rows(User, id=user.id)[0].version
    demoted = threading.Event()
    forms = [
        (f"/account/subscription/{sub_id}/confirm", {"accept_terms": "1"}),
        (f"/admin/users/{user.id}/role", {"role": "advanced", "version": version}),
    ]

    def post(index: int) -> Any:
        path, form = forms[index]
        data = {**form, "csrf_token": tokens[index]}
        if index == 1:
            response = clients[1].post(path, data=data, headers=HTMX)
            demoted.set()
            return response
        waited: list[bool] = []

        def after_the_admin(_conn, _cursor, statement: str, *_args) -> None:
            if not waited and first_write(statement):  # just past the race's barrier
                waited.append(True)
                assert demoted.wait(WAIT)

        event.listen(db.engine, "before_cursor_execute", after_the_admin)
        try:
            return clients[0].post(path, data=data, headers=HTMX)
        finally:
            event.remove(db.engine, "before_cursor_execute", after_the_admin)

    confirm, demote = results(race(apps, post))
    assert demote.status_code == 302 and confirm.status_code == 409
    assert "not available to the role" in confirm.text
    [stored] = rows(User, id=user.id)
    [sub] = rows(Subscription, id=sub_id)
    assert (stored.role, sub.state) == (Role.ADVANCED, S.SIGNING)


def test_password_change_against_deactivation(
    data: Flask, make_app, acme: Partner, acme_admin: User, attempt
) -> None:
    skip_unless_racing()
    user = make_user(acme, "pat@acme.test", role=Role.BASIC)
    apps = [make_app(), make_app()]
    clients = [logged_in(apps[0], user), logged_in(apps[1], acme_admin)]
    tokens = [c.csrf_token("/") for c in clients]
    version = rows(User, id=user.id)[0].version
    new = "another-horse-battery-staple"
    post_together(
        apps,
        clients,
        tokens,
        ("/account/password", {"current_password": PASSWORD, "password": new, "confirm": new}),
        (f"/admin/users/{user.id}/deactivate", {"version": version}),
    )
    [stored] = rows(User, id=user.id)
    if stored.status == UserStatus.DEACTIVATED:
        assert [s for s in rows(UserSession, user_id=user.id) if s.revoked_at is None] == []


def test_accepting_an_invitation_while_it_is_revoked(
    data: Flask, make_app, acme: Partner, acme_admin: User, attempt
) -> None:
    skip_unless_racing()
    apps = [make_app(), make_app()]
    admin = logged_in(apps[1], acme_admin)
    token = admin.csrf_token("/")
    admin.post(
        "/admin/users/invite",
        data={"email": "inv@acme.test", "role": "basic", "csrf_token": token},
    )
    [invited] = rows(User, email="inv@acme.test")
    [mail] = rows(OutboxMessage, to_address="inv@acme.test")
    path = re.search(r"(/invite/\S+)", mail.body_text).group(1)
    visitor = host_client(apps[0], "acme")
    responses = post_together(
        apps,
        [visitor, admin],
        [visitor.csrf_token(path), token],
        (path, {"display_name": "Inv", "password": PASSWORD, "confirm": PASSWORD}),
        (f"/admin/users/{invited.id}/invitation/revoke", {"version": invited.version}),
    )
    stored = rows(User, email="inv@acme.test")
    # One of the two happened, entirely: an active account, or none at all.
    assert stored == [] or stored[0].status == UserStatus.ACTIVE, [r.text for r in responses]


def test_two_acceptances_of_one_invitation(
    data: Flask, make_app, acme: Partner, acme_admin: User, attempt
) -> None:
    """The link is opened twice and both forms sent at once: one acceptance happens entirely
    (the account active with its name and password, the link used, one event), the other
    changes nothing and is told the link is spent."""
    skip_unless_racing()
    apps = [make_app(), make_app()]
    admin = logged_in(apps[0], acme_admin)
    admin.post_form("/admin/users/invite", {"email": "inv@acme.test", "role": "basic"})
    [mail] = rows(OutboxMessage, to_address="inv@acme.test")
    path = re.search(r"(/invite/\S+)", mail.body_text).group(1)
    visitors = [host_client(a, "acme") for a in apps]
    tokens = [v.csrf_token(path) for v in visitors]
    passwords = [f"{PASSWORD}-{n}" for n in range(2)]
    responses = post_together(
        apps,
        visitors,
        tokens,
        *[
            (path, {"display_name": f"Inv {n}", "password": pw, "confirm": pw})
            for n, pw in enumerate(passwords)
        ],
    )
    [won] = [n for n, r in enumerate(responses) if r.status_code == 302]
    lost = responses[1 - won]
    assert lost.status_code in (404, 409), lost.text
    assert "not valid" in lost.text or "changed by someone else" in lost.text, lost.text
    [stored] = rows(User, email="inv@acme.test")
    assert (stored.status, stored.display_name) == (UserStatus.ACTIVE, f"Inv {won}")
    [link] = [t for t in rows(ActionToken) if t.user_id == stored.id]
    assert link.used_at is not None
    assert len(rows(AuditEvent, action="invitation.accept")) == 1
    signing_in = host_client(apps[0], "acme")
    assert signing_in.login("inv@acme.test", passwords[1 - won]).status_code == 422  # refused
    assert signing_in.login("inv@acme.test", passwords[won]).status_code == 302


def test_two_sign_ups_of_one_address(data: Flask, make_app, acme: Partner, attempt) -> None:
    skip_unless_racing()
    set_feature(acme, "self_signup")
    apps = [make_app(), make_app()]
    clients = [host_client(a, "acme") for a in apps]
    tokens = [c.csrf_token("/signup") for c in clients]

    def sign_up(index: int) -> Any:
        form = {"email": "new@acme.test", "display_name": "New", "csrf_token": tokens[index]}
        return clients[index].post("/signup", data=form)

    responses = results(race(apps, sign_up))
    assert [r.status_code for r in responses] == [302, 302]  # the same answer to both
    assert len(rows(User, email="new@acme.test")) == 1


def test_a_burst_of_wrong_passwords_is_counted_one_by_one(
    data: Flask, make_app, acme: Partner, redis_url: str, attempt
) -> None:
    """Eight wrong passwords at once from one address, on eight app instances sharing their
    counts in Redis: five are weighed, three refused unweighed; two such bursts from two
    addresses still leave the owner signing in."""
    skip_unless_racing()
    email = make_user(acme, "pat@acme.test", role=Role.BASIC).email
    shared = {"RATELIMIT_STORAGE_URL": redis_url, "RATELIMIT_KEY_PREFIX": secrets.token_hex(6)}
    for burst, ip in enumerate(("10.0.0.7", "10.0.0.8")):
        apps = [make_app(fresh=True, **shared) for _ in range(8)]
        clients = [host_client(a, "acme") for a in apps]
        tokens = [c.csrf_token("/login") for c in clients]

        def wrong(index: int, clients=clients, tokens=tokens, ip=ip) -> int:
            form = {"email": email, "password": "not-it-at-all", "csrf_token": tokens[index]}
            where = {"REMOTE_ADDR": ip}
            return clients[index].post("/login", data=form, environ_base=where).status_code

        assert sorted(results(race(apps, wrong))) == [422] * 5 + [429] * 3
        assert len(rows(AuditEvent, action="auth.login_failed")) == 5 * (burst + 1)
    owner = host_client(make_app(fresh=True, **shared), "acme")
    assert owner.login(email, environ_base={"REMOTE_ADDR": "10.0.0.3"}).status_code == 302


def test_two_admins_cannot_switch_off_both_ways_to_sign_in(
    data: Flask, make_app, acme: Partner, acme_admin: User, idp, attempt
) -> None:
    """Password sign-in goes off only while single sign-on works, and single sign-on only while
    password sign-in is on: one admin switching each off at the same instant leaves one way in."""
    skip_unless_racing()
    configure(acme, idp.issuer)
    with partner_scope(acme):
        db.session.add(SsoIdentity(user_id=acme_admin.id, issuer=idp.issuer, subject="sub-admin"))
        db.session.commit()
    second = make_user(acme, "second@acme.test", role=Role.ADMIN)
    apps = [make_app(), make_app()]
    clients = [logged_in(apps[0], acme_admin), logged_in(apps[1], second)]
    tokens = [c.csrf_token("/") for c in clients]
    responses = post_together(
        apps,
        clients,
        tokens,
        ("/admin/features/password_login", {"on": "0"}),
        ("/admin/features/oidc_login", {"on": "0"}),
    )
    with partner_scope(rows(Partner, id=acme.id)[0]):
        forget_settings()
        still_on = [key for key in ("password_login", "oidc_login") if evaluate(key).on]
    assert still_on, [r.status_code for r in responses]
    assert sorted(r.status_code for r in responses) == [200, 409]
    refused = next(r for r in responses if r.status_code == 409)
    assert "only way to sign in" in refused.text
    switched = [e.details["on"] for e in rows(AuditEvent, action="feature.switch")]
    assert switched.count(False) == 1  # the refused one left no event
