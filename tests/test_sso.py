"""Single sign-on against a real OpenID Connect provider on 127.0.0.1 (DESIGN §9).

No HTTP call is mocked: the portal talks to the provider (tests/oidc.py) over sockets, and
the test carries the browser's part with `requests`.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import host_client, logged_in, make_user, rows, set_feature
from faultproxy import FaultProxy
from flask import Flask
from oidc import (
    ACME_CLIENT,
    ADMIN,
    ALICE,
    GLOBEX_CLIENT,
    NEWBIE,
    OUTSIDER,
    UNVERIFIED,
    Flow,
    ProviderServer,
    configure,
    sign_in,
    start,
)

from portal.audit.models import AuditEvent
from portal.extensions import db
from portal.roles.models import Role
from portal.sessions.models import LoginMethod, UserSession
from portal.sso.client import client_for
from portal.sso.models import SsoConnection, SsoIdentity
from portal.tenancy.models import Partner, SessionPolicy
from portal.tenancy.scope import partner_scope
from portal.users.models import User, UserStatus


def failures(reason: str) -> list[AuditEvent]:
    return [
        e
        for e in rows(AuditEvent)
        if e.action == "auth.login_failed" and e.details.get("reason") == reason
    ]


def test_sign_in_links_a_verified_email_and_starts_an_oidc_session(
    app: Flask, acme: Partner, acme_user: User, idp: ProviderServer
) -> None:
    configure(acme, idp.issuer)
    client = host_client(app, "acme")
    login_page = client.get("/login")
    assert "Sign in with Acme ID" in login_page.text and 'id="password"' in login_page.text
    response = sign_in(client, ALICE, next_path="/account/sessions/")
    assert response.status_code == 302, response.text
    assert response.headers["Location"] == "/account/sessions/"
    [identity] = rows(SsoIdentity)
    assert (identity.partner_id, identity.user_id, identity.issuer, identity.subject) == (
        acme.id,
        acme_user.id,
        idp.issuer,
        ALICE.subject,
    )
    [session] = rows(UserSession)
    assert session.login_method == LoginMethod.OIDC and session.user_id == acme_user.id
    devices = client.get("/account/sessions/")
    assert devices.status_code == 200 and "oidc" in devices.text
    [login] = [e for e in rows(AuditEvent) if e.action == "auth.login"]
    assert login.details["method"] == "oidc" and login.details["how"] == "linked_by_email"
    assert rows(User, id=acme_user.id)[0].last_login_at is not None
    # The second time, the link itself signs in.
    again = sign_in(host_client(app, "acme"), ALICE)
    assert again.status_code == 302 and len(rows(SsoIdentity)) == 1
    assert [e.details["how"] for e in rows(AuditEvent) if e.action == "auth.login"][-1] == "linked"


def test_an_admin_sees_which_sign_ins_a_user_has_linked(
    app: Flask, acme: Partner, acme_user: User, acme_admin: User, idp: ProviderServer
) -> None:
    configure(acme, idp.issuer)
    admin = logged_in(app, acme_admin)
    before = admin.get(f"/admin/users/{acme_user.id}")
    assert "<dt>Single sign-on</dt><dd>not linked</dd>" in before.text
    assert sign_in(host_client(app, "acme"), ALICE).status_code == 302
    after = admin.get(f"/admin/users/{acme_user.id}")
    assert f"{ALICE.email} at {idp.issuer}, last used " in after.text


def test_auto_provisioning_creates_an_active_account_without_a_password(
    app: Flask, acme: Partner, idp: ProviderServer
) -> None:
    configure(acme, idp.issuer, auto_provision=True, role="advanced")
    client = host_client(app, "acme")
    assert sign_in(client, NEWBIE).status_code == 302
    [user] = rows(User, email=NEWBIE.email)
    assert (user.status, user.role, user.password_hash, user.display_name) == (
        UserStatus.ACTIVE,
        Role.ADVANCED,
        None,
        "Nina Newbie",
    )
    assert client.get("/").status_code == 200
    assert rows(SsoIdentity)[0].user_id == user.id


def test_without_provisioning_or_a_link_nobody_gets_in(
    app: Flask, acme: Partner, idp: ProviderServer
) -> None:
    configure(acme, idp.issuer, auto_provision=False)
    response = sign_in(host_client(app, "acme"), NEWBIE)
    assert response.status_code == 403
    assert "does not create accounts by itself" in response.text
    assert rows(User) == [] and rows(UserSession) == [] and rows(SsoIdentity) == []
    assert len(failures("no_account")) == 1


def test_an_unverified_email_links_nothing(
    app: Flask, acme: Partner, acme_user: User, idp: ProviderServer
) -> None:
    configure(acme, idp.issuer, link_by_email=True, auto_provision=True)
    response = sign_in(host_client(app, "acme"), UNVERIFIED)  # claims alice's address
    assert response.status_code == 403
    assert "is not linked to this sign-in" in response.text
    assert rows(SsoIdentity) == [] and rows(UserSession) == []


def test_linking_by_email_is_off_unless_chosen(
    app: Flask, acme: Partner, acme_user: User, idp: ProviderServer
) -> None:
    configure(acme, idp.issuer, link_by_email=False, auto_provision=True)
    response = sign_in(host_client(app, "acme"), ALICE)
    assert response.status_code == 403 and rows(SsoIdentity) == []
    assert len(rows(User)) == 1  # no second alice either


def test_a_replayed_callback_and_a_replayed_code_sign_nobody_in(
    app: Flask, acme: Partner, acme_user: User, idp: ProviderServer
) -> None:
    configure(acme, idp.issuer)
    client = host_client(app, "acme")
    flow = start(client)
    callback = flow.choose(ALICE)
    assert flow.back(callback).status_code == 302
    # The same answer again (a copied URL, a back button): its state is spent.
    replayed = host_client(app, "acme").get(callback)
    assert replayed.status_code == 400 and "already finished" in replayed.text
    # The code again, inside a fresh flow of the attacker's own: the provider refuses it.
    attacker = host_client(app, "acme")
    fresh = start(attacker)
    code = parse_qs(urlsplit(callback).query)["code"][0]
    answer = attacker.get(f"/sso/callback?code={code}&state={fresh.state}")
    assert answer.status_code == 502 and "refused the sign-in code" in answer.text
    assert len(rows(UserSession)) == 1


def test_a_state_from_another_browser_is_refused_before_any_token_request(
    app: Flask, acme: Partner, acme_user: User, idp: ProviderServer
) -> None:
    configure(acme, idp.issuer)
    victim_flow = start(host_client(app, "acme"))
    callback = victim_flow.choose(ALICE)
    intruder = host_client(app, "acme")
    start(intruder)  # the intruder has a flow of their own, with another state
    response = intruder.get(callback)
    assert response.status_code == 400 and "Start again" in response.text
    assert idp.provider.token_requests == 0
    assert rows(UserSession) == [] and len(failures("state_mismatch")) == 1


@pytest.mark.parametrize(
    ("fault", "value", "says"),
    [
        ("nonce", "a-nonce-from-another-sign-in", "not issued for this sign-in"),
        ("expired", True, "it has expired"),
        ("audience", GLOBEX_CLIENT[0], "issued for another application"),
        ("issuer", "http://127.0.0.1:9/other", "comes from another issuer"),
        ("foreign_key", True, "signature does not match"),
    ],
)
def test_an_id_token_that_fails_a_check_signs_nobody_in(
    app: Flask,
    acme: Partner,
    acme_user: User,
    idp: ProviderServer,
    fault: str,
    value: object,
    says: str,
) -> None:
    configure(acme, idp.issuer)
    setattr(idp.provider.faults, fault, value)
    client = host_client(app, "acme")
    response = sign_in(client, ALICE)
    assert response.status_code == 400, response.text
    assert says in response.text and "Nothing was signed in" in response.text
    assert rows(UserSession) == [] and rows(SsoIdentity) == []
    assert client.get("/").status_code == 302  # still a visitor
    assert len(failures("invalid_id_token")) == 1


def test_globex_codes_and_tokens_do_nothing_at_acme(
    app: Flask, acme: Partner, globex: Partner, acme_user: User, idp: ProviderServer
) -> None:
    configure(acme, idp.issuer, ACME_CLIENT)
    configure(globex, idp.issuer, GLOBEX_CLIENT, auto_provision=True)
    # A code the provider issued to globex's client, presented with acme's own state.
    acme_client = host_client(app, "acme")
    acme_flow = start(acme_client)
    globex_callback = start(host_client(app, "globex")).choose(ALICE)
    code = parse_qs(urlsplit(globex_callback).query)["code"][0]
    response = acme_client.get(f"/sso/callback?code={code}&state={acme_flow.state}")
    assert response.status_code == 502 and "refused the sign-in code" in response.text
    # An ID token issued for globex's client, handed to acme (a provider mix-up).
    idp.provider.faults.audience = GLOBEX_CLIENT[0]
    mixed = sign_in(host_client(app, "acme"), ALICE)
    assert mixed.status_code == 400 and "issued for another application" in mixed.text
    assert rows(UserSession) == [] and rows(SsoIdentity) == []


def test_an_identity_linked_in_acme_is_a_stranger_in_globex(
    app: Flask, acme: Partner, globex: Partner, acme_user: User, idp: ProviderServer
) -> None:
    configure(acme, idp.issuer, ACME_CLIENT)
    configure(globex, idp.issuer, GLOBEX_CLIENT, link_by_email=False)
    assert sign_in(host_client(app, "acme"), ALICE).status_code == 302
    make_user(globex, ALICE.email)  # even an account with the same address in globex
    response = sign_in(host_client(app, "globex"), ALICE)
    assert response.status_code == 403 and "not linked to this sign-in" in response.text
    [identity] = rows(SsoIdentity)
    assert identity.partner_id == acme.id
    assert [s.partner_id for s in rows(UserSession)] == [acme.id]


def test_the_same_provider_account_may_be_linked_in_each_partner_separately(
    app: Flask, acme: Partner, globex: Partner, acme_user: User, idp: ProviderServer
) -> None:
    configure(acme, idp.issuer, ACME_CLIENT)
    configure(globex, idp.issuer, GLOBEX_CLIENT, auto_provision=True)
    assert sign_in(host_client(app, "acme"), ALICE).status_code == 302
    assert sign_in(host_client(app, "globex"), ALICE).status_code == 302
    identities = rows(SsoIdentity)
    assert {i.partner_id for i in identities} == {acme.id, globex.id}
    assert len({i.user_id for i in identities}) == 2  # two unrelated accounts


def test_an_email_domain_outside_the_list_is_refused(
    app: Flask, acme: Partner, idp: ProviderServer
) -> None:
    configure(acme, idp.issuer, auto_provision=True, domains="acme.test")
    response = sign_in(host_client(app, "acme"), OUTSIDER)
    assert response.status_code == 403
    assert "Accounts at example.org cannot sign in" in response.text
    assert rows(User) == [] and len(failures("domain_not_allowed")) == 1
    assert sign_in(host_client(app, "acme"), NEWBIE).status_code == 302


def test_cancelling_at_the_provider_says_so(app: Flask, acme: Partner, idp: ProviderServer) -> None:
    configure(acme, idp.issuer)
    flow = start(host_client(app, "acme"))
    response = flow.back(flow.choose(None))
    assert response.status_code == 400 and "You cancelled the sign-in" in response.text
    assert "Back to sign-in" in response.text


def test_a_deactivated_user_stays_out(
    app: Flask, acme: Partner, acme_user: User, idp: ProviderServer
) -> None:
    configure(acme, idp.issuer)
    assert sign_in(host_client(app, "acme"), ALICE).status_code == 302
    user = rows(User, id=acme_user.id)[0]
    user.status = UserStatus.DEACTIVATED
    db.session.commit()
    response = sign_in(host_client(app, "acme"), ALICE)
    assert response.status_code == 403 and "deactivated" in response.text
    assert len(failures("deactivated")) == 1


def test_the_session_policy_applies(
    app: Flask, acme: Partner, acme_user: User, idp: ProviderServer
) -> None:
    configure(acme, idp.issuer)
    partner = rows(Partner, id=acme.id)[0]
    partner.session_policy_settings = SessionPolicy(max_concurrent=1, at_limit="deny_new").to_dict()
    db.session.commit()
    assert sign_in(host_client(app, "acme"), ALICE).status_code == 302
    response = sign_in(host_client(app, "acme"), ALICE)
    assert response.status_code == 409 and "already signed in on 1 device" in response.text
    assert len(rows(UserSession)) == 1


def test_failed_sign_ins_are_throttled_per_client(
    make_app, data: Flask, acme: Partner, acme_user: User, idp: ProviderServer
) -> None:
    app = make_app(LOGIN_LIMIT_PER_IP="2/5minutes")
    configure(acme, idp.issuer)
    client = host_client(app, "acme")
    for _ in range(2):
        start(client)
        assert client.get("/sso/callback?code=x&state=forged").status_code == 400
    refused = client.get("/sso/callback?code=x&state=forged")
    assert refused.status_code == 429 and "Too many failed sign-in attempts" in refused.text
    token = client.csrf_token("/login")
    assert client.post("/sso/start", data={"csrf_token": token}).status_code == 429


def test_a_provider_that_refuses_or_hangs_gets_a_clear_page_within_seconds(
    make_app, data: Flask, acme: Partner, acme_user: User, idp: ProviderServer
) -> None:
    app = make_app(OIDC_TIMEOUT=0.5)
    with FaultProxy("127.0.0.1", idp.port) as proxy:
        idp.rebase(f"http://127.0.0.1:{proxy.port}")
        configure(acme, idp.issuer)
        client = host_client(app, "acme")
        token = client.csrf_token("/login")

        proxy.refuse()
        down = client.post("/sso/start", data={"csrf_token": token})
        assert down.status_code == 503 and "could not be reached" in down.text

        proxy.silent()
        began = time.monotonic()
        hung = client.post("/sso/start", data={"csrf_token": token})
        assert time.monotonic() - began < 2
        assert hung.status_code == 503 and "did not answer within 0.5 seconds" in hung.text

        proxy.forward()
        flow = start(client)
        callback = flow.choose(ALICE)
        proxy.silent()  # gone quiet between the visitor leaving and coming back
        began = time.monotonic()
        late = flow.back(callback)
        assert time.monotonic() - began < 2
        assert late.status_code == 503 and "did not answer within" in late.text
        assert rows(UserSession) == []
        assert "Back to sign-in" in late.text


def test_each_partner_has_its_own_client_rebuilt_on_change(
    app: Flask, acme: Partner, globex: Partner, idp: ProviderServer
) -> None:
    configure(acme, idp.issuer, ACME_CLIENT)
    configure(globex, idp.issuer, GLOBEX_CLIENT)
    [acme_conn, globex_conn] = sorted(rows(SsoConnection), key=lambda c: c.partner_id)
    with app.test_request_context():
        first = client_for(acme_conn)
        assert client_for(acme_conn) is first
        assert client_for(globex_conn) is not first
        assert (first.client_id, client_for(globex_conn).client_id) == (
            ACME_CLIENT[0],
            GLOBEX_CLIENT[0],
        )
    acme_conn.scopes = "openid email"
    db.session.commit()
    assert acme_conn.version == 2
    with app.test_request_context():
        rebuilt = client_for(acme_conn)
        assert rebuilt is not first and rebuilt.client_kwargs["scope"] == "openid email"


def test_a_signed_in_user_links_and_unlinks_sign_ins_but_keeps_one(
    app: Flask, acme: Partner, acme_user: User, idp: ProviderServer
) -> None:
    configure(acme, idp.issuer, link_by_email=False)
    client = logged_in(app, acme_user)
    page = client.get("/account/identities/")
    assert "No single sign-on account is linked" in page.text and "Link Acme ID" in page.text
    token = client.csrf_token("/account/identities/")
    leave = client.post("/account/identities/link", data={"csrf_token": token})
    callback = Flow(client, leave.headers["Location"]).choose(NEWBIE)
    back = client.get(callback)
    assert back.headers["Location"] == "/account/identities/"
    listed = client.get("/account/identities/")
    assert "Single sign-on (Acme ID) is linked" in listed.text and NEWBIE.email in listed.text
    [identity] = rows(SsoIdentity)
    assert identity.user_id == acme_user.id
    # A password remains, so the link may go.
    removed = client.post_form(f"/account/identities/{identity.id}/unlink", follow_redirects=True)
    assert "The sign-in method was removed." in removed.text and rows(SsoIdentity) == []


def _linked(partner: Partner, user: User, subject: str, email: str, at: datetime) -> None:
    with partner_scope(partner):
        db.session.add(
            SsoIdentity(
                user_id=user.id,
                issuer="https://id.test",
                subject=subject,
                email=email,
                created_at=at,
            )
        )
        db.session.commit()


def test_the_sign_in_methods_page_lists_only_the_users_own_identities_oldest_first(
    app: Flask, acme: Partner, globex: Partner, acme_user: User, idp: ProviderServer
) -> None:
    """The identities and the connection come in one statement: every identity once, in the
    order they were linked, the link button once; nobody else's identity."""
    configure(acme, idp.issuer)
    _linked(acme, acme_user, "s-2", "second@id.test", datetime(2026, 3, 2, 9, 0))
    _linked(acme, acme_user, "s-1", "first@id.test", datetime(2026, 3, 1, 9, 0))
    colleague = make_user(acme, "colleague@acme.test")
    _linked(acme, colleague, "s-3", "colleague@id.test", datetime(2026, 3, 1, 8, 0))
    twin = make_user(globex, acme_user.email)
    _linked(globex, twin, "s-4", "twin@id.test", datetime(2026, 3, 1, 7, 0))
    page = logged_in(app, acme_user).get("/account/identities/").text
    assert page.count('<tr id="identity-') == 2 and page.count("Link Acme ID") == 1
    assert page.index("first@id.test") < page.index("second@id.test")
    assert "colleague@id.test" not in page and "twin@id.test" not in page
    # Without a connection people may sign in through, the identities stay, the button goes.
    with partner_scope(acme):
        db.session.delete(db.session.execute(db.select(SsoConnection)).scalar_one())
        db.session.commit()
    page = logged_in(app, acme_user).get("/account/identities/").text
    assert page.count('<tr id="identity-') == 2 and "Link " not in page
    alone = logged_in(app, colleague).get("/account/identities/").text
    assert alone.count('<tr id="identity-') == 1 and "colleague@id.test" in alone


def test_the_last_way_to_sign_in_cannot_be_removed(
    app: Flask, acme: Partner, idp: ProviderServer
) -> None:
    configure(acme, idp.issuer, auto_provision=True)
    client = host_client(app, "acme")
    assert sign_in(client, NEWBIE).status_code == 302
    [identity] = rows(SsoIdentity)
    response = client.post_form(
        f"/account/identities/{identity.id}/unlink",
        follow_redirects=True,
    )
    assert "This is your only way to sign in here" in response.text
    assert len(rows(SsoIdentity)) == 1


def test_nobody_unlinks_another_users_identity(
    app: Flask, acme: Partner, acme_user: User, idp: ProviderServer
) -> None:
    configure(acme, idp.issuer, auto_provision=True)
    assert sign_in(host_client(app, "acme"), NEWBIE).status_code == 302
    [identity] = rows(SsoIdentity)
    response = logged_in(app, acme_user).post_form(f"/account/identities/{identity.id}/unlink")
    assert response.status_code == 404 and len(rows(SsoIdentity)) == 1


def test_the_secret_never_appears_in_a_page_a_log_line_or_the_audit_trail(
    app: Flask,
    acme: Partner,
    acme_admin: User,
    idp: ProviderServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = ACME_CLIENT[1]
    admin = logged_in(app, acme_admin)
    pages = []
    form = {
        "discovery_url": idp.issuer,
        "client_id": ACME_CLIENT[0],
        "client_secret": secret,
        "scopes": "openid email profile",
        "button_label": "Acme ID",
        "allowed_domains": "acme.test",
        "link_by_email": "y",
        "provision_role": "basic",
        "sso_on": "y",
        "password_on": "y",
    }
    saved = admin.post_form("/admin/settings/login/", form, follow_redirects=True)
    pages.append(saved.text)
    assert "Single sign-on settings saved." in saved.text
    assert "Connection test passed" in saved.text
    pages.append(admin.get("/admin/settings/login/").text)
    pages.append(admin.post_form("/admin/settings/login/test", follow_redirects=True).text)
    pages.append(admin.get("/admin/audit/").text)
    # A sign-in, which sends the secret to the provider.
    visitor = host_client(app, "acme")
    assert sign_in(visitor, ADMIN).status_code == 302
    for page in pages:
        assert secret not in page
    assert "A secret is stored, encrypted; it is never shown" in pages[1]
    assert secret not in caplog.text
    for event in rows(AuditEvent):
        assert secret not in json.dumps(event.details)
    [connection] = rows(SsoConnection)
    assert secret not in connection.client_secret_encrypted
    [update] = [e for e in rows(AuditEvent) if e.action == "sso.connection_create"]
    assert update.details["client_secret_changed"] is True


def test_the_settings_page_shows_errors_in_place(
    app: Flask, acme: Partner, acme_admin: User, idp: ProviderServer
) -> None:
    admin = logged_in(app, acme_admin)
    empty = admin.post_form("/admin/settings/login/", {"provision_role": "basic"})
    assert empty.status_code == 422
    assert "Enter the provider&#39;s issuer" in empty.text and "Enter the client ID" in empty.text
    bad = {
        "discovery_url": idp.issuer,
        "client_id": "acme-client",
        "scopes": "email profile",
        "provision_role": "basic",
        "password_on": "y",
    }
    no_secret = admin.post_form("/admin/settings/login/", bad)
    assert no_secret.status_code == 422 and "Enter the client secret" in no_secret.text
    no_openid = admin.post_form("/admin/settings/login/", {**bad, "client_secret": "x" * 12})
    assert "The scopes must include openid." in no_openid.text
    domains = {**bad, "client_secret": "x" * 12, "scopes": "openid", "allowed_domains": "not a@"}
    assert "is not a domain name" in admin.post_form("/admin/settings/login/", domains).text
    admin_role = {**bad, "client_secret": "x" * 12, "scopes": "openid", "provision_role": "admin"}
    refused = admin.post_form("/admin/settings/login/", admin_role)
    assert "cannot be admins" in refused.text
    assert rows(SsoConnection) == []


def test_test_connection_says_in_plain_words_what_is_wrong(
    app: Flask, acme: Partner, acme_admin: User, idp: ProviderServer
) -> None:
    admin = logged_in(app, acme_admin)
    form = {
        "discovery_url": idp.issuer + "/nothing-here",
        "client_id": "acme-client",
        "client_secret": ACME_CLIENT[1],
        "scopes": "openid email",
        "provision_role": "basic",
        "sso_on": "y",
        "password_on": "y",
    }
    saved = admin.post_form("/admin/settings/login/", form, follow_redirects=True)
    assert "Saved, but the connection test failed" in saved.text
    assert "answered HTTP 404" in saved.text
    assert "has not passed yet" in saved.text
    assert "Sign in with" not in host_client(app, "acme").get("/login").text
    form["discovery_url"] = idp.issuer + "/.well-known/openid-configuration"
    fixed = admin.post_form("/admin/settings/login/", form, follow_redirects=True)
    assert "Connection test passed" in fixed.text and "1 signing key found" in fixed.text
    assert "Sign in with single sign-on" in host_client(app, "acme").get("/login").text
    idp.rebase("http://127.0.0.1:9")  # now names another issuer
    retest = admin.post_form("/admin/settings/login/test", follow_redirects=True)
    assert "Connection test failed: The provider names its issuer" in retest.text
    assert rows(SsoConnection)[0].verified_at is not None  # a failed re-test switches nothing off


def test_password_sign_in_goes_off_only_while_sso_works_for_the_admin(
    app: Flask, acme: Partner, acme_admin: User, idp: ProviderServer
) -> None:
    admin = logged_in(app, acme_admin)
    off = admin.post_form("/admin/features/password_login", {"on": "0"}, follow_redirects=True)
    assert "Set up single sign-on first" in off.text
    configure(acme, idp.issuer)
    not_yet = admin.post_form("/admin/features/password_login", {"on": "0"}, follow_redirects=True)
    assert "Sign in once with single sign-on yourself" in not_yet.text
    sso_admin = host_client(app, "acme")
    assert sign_in(sso_admin, ADMIN).status_code == 302
    done = sso_admin.post_form("/admin/features/password_login", {"on": "0"}, follow_redirects=True)
    assert "Password sign-in is off." in done.text
    login = host_client(app, "acme").get("/login")
    assert 'id="password"' not in login.text and "Sign in with Acme ID" in login.text
    assert host_client(app, "acme").login(acme_admin.email).status_code == 403
    # Single sign-on is now the only way in: it cannot be switched off or removed.
    sso_off = sso_admin.post_form("/admin/features/oidc_login", {"on": "0"}, follow_redirects=True)
    assert "switch password sign-in on first" in sso_off.text
    removed = sso_admin.post_form("/admin/settings/login/delete", follow_redirects=True)
    assert "Switch password sign-in on first" in removed.text
    assert len(rows(SsoConnection)) == 1


def test_the_sign_in_page_switches_both_ways_in_one_save(
    app: Flask, acme: Partner, acme_admin: User, idp: ProviderServer
) -> None:
    configure(acme, idp.issuer, sso_on=False)
    sso_admin = host_client(app, "acme")
    with partner_scope(rows(Partner, id=acme.id)[0]):
        make_identity = SsoIdentity(user_id=acme_admin.id, issuer=idp.issuer, subject=ADMIN.subject)
        db.session.add(make_identity)
        db.session.commit()
    sso_admin = logged_in(app, acme_admin)
    form = {
        "discovery_url": idp.issuer,
        "client_id": ACME_CLIENT[0],
        "scopes": "openid email profile",
        "provision_role": "basic",
        "sso_on": "y",
    }
    saved = sso_admin.post_form("/admin/settings/login/", form, follow_redirects=True)
    assert "Single sign-on is on." in saved.text and "Password sign-in is off." in saved.text
    back = sso_admin.post_form(
        "/admin/settings/login/", {**form, "sso_on": "", "password_on": "y"}, follow_redirects=True
    )
    assert "Password sign-in is on." in back.text and "Single sign-on is off." in back.text


def test_sso_pages_do_not_exist_while_the_feature_is_off(
    app: Flask, acme: Partner, idp: ProviderServer
) -> None:
    configure(acme, idp.issuer, sso_on=False)
    client = host_client(app, "acme")
    assert "Sign in with" not in client.get("/login").text
    assert client.post_form("/sso/start").status_code == 404
    assert client.get("/sso/callback?code=x&state=y").status_code == 404
    set_feature(acme, "oidc_login", True)
    assert "Sign in with Acme ID" in client.get("/login").text
