"""Two first sign-ins with one provider account at once (a double click on "Continue", two
tabs), with two real writers (SQLite and PostgreSQL): both browsers are signed in, and the
portal holds one account and one link."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import host_client, rows
from flask import Flask
from oidc import ALICE, NEWBIE, ProviderServer, configure, sign_in, start
from racing import TRIES, race, results, skip_unless_racing

from portal.audit.models import AuditEvent
from portal.extensions import db
from portal.sessions.models import LoginMethod, UserSession
from portal.sso.models import SsoIdentity
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.users.models import User

HTMX = {"HX-Request": "true"}
pytestmark = pytest.mark.parametrize("attempt", range(TRIES))


def both_come_back(make_app: Any, person: Any) -> list[Any]:
    """Two browsers sign in at the provider as `person`; their callbacks reach the portal at
    once, each through its own app instance."""
    apps = [make_app(), make_app()]
    clients = [host_client(a, "acme") for a in apps]
    callbacks = []
    for client in clients:
        flow = start(client)
        callbacks.append((flow, flow.choose(person)))
    responses = results(race(apps, lambda i: callbacks[i][0].back(callbacks[i][1])))
    assert all(r.status_code < 500 for r in responses), [r.text[:300] for r in responses]
    return responses


def signed_in(responses: list[Any]) -> None:
    assert [r.status_code for r in responses] == [302, 302], [r.text[:300] for r in responses]
    assert all(r.headers["Location"] == "/" for r in responses)
    sessions = [s for s in rows(UserSession) if s.login_method == LoginMethod.OIDC]
    assert len(sessions) == 2


def test_two_first_sign_ins_provision_one_account(
    data: Flask, make_app, acme: Partner, idp: ProviderServer, attempt
) -> None:
    skip_unless_racing()
    configure(acme, idp.issuer, auto_provision=True)
    signed_in(both_come_back(make_app, NEWBIE))
    [user] = rows(User, email=NEWBIE.email)
    [identity] = rows(SsoIdentity)
    assert identity.user_id == user.id
    assert {s.user_id for s in rows(UserSession)} == {user.id}
    hows = sorted(e.details["how"] for e in rows(AuditEvent) if e.action == "auth.login")
    assert hows == ["linked", "provisioned"]


def test_two_first_sign_ins_link_an_existing_account_once(
    data: Flask, make_app, acme: Partner, acme_user: User, idp: ProviderServer, attempt
) -> None:
    skip_unless_racing()
    configure(acme, idp.issuer)
    signed_in(both_come_back(make_app, ALICE))
    [identity] = rows(SsoIdentity)
    assert identity.user_id == acme_user.id
    links = [e for e in rows(AuditEvent) if e.action == "sso.identity_link"]
    assert len(links) == 1


def test_two_unlinks_of_the_last_two_sign_ins_leave_one(
    data: Flask, make_app, acme: Partner, idp: ProviderServer, attempt
) -> None:
    """A user without a password, with two linked sign-ins, removes each in its own tab at
    once: one removal, the other refused as the only way in left; one identity stays."""
    skip_unless_racing()
    configure(acme, idp.issuer, auto_provision=True)
    apps = [make_app(), make_app()]
    clients = [host_client(a, "acme") for a in apps]
    for client in clients:  # the first sign-in provisions the account, the second uses it
        assert sign_in(client, NEWBIE).status_code == 302
    [user] = rows(User, email=NEWBIE.email)
    assert user.password_hash is None
    with partner_scope(acme):
        db.session.add(
            SsoIdentity(user_id=user.id, issuer=idp.issuer, subject="sub-newbie-2", email=None)
        )
        db.session.commit()
    identities = [i.id for i in rows(SsoIdentity, user_id=user.id)]
    assert len(identities) == 2
    tokens = [c.csrf_token("/account/identities/") for c in clients]

    def unlink(index: int) -> Any:
        path = f"/account/identities/{identities[index]}/unlink"
        return clients[index].post(path, data={"csrf_token": tokens[index]}, headers=HTMX)

    responses = results(race(apps, unlink))
    assert sorted(r.status_code for r in responses) == [302, 409], [r.text for r in responses]
    [refusal] = [r for r in responses if r.status_code == 409]
    assert "This is your only way to sign in here" in refusal.text
    assert len(rows(SsoIdentity, user_id=user.id)) == 1
    assert len(rows(AuditEvent, action="sso.identity_unlink")) == 1
