"""OpenID Connect Back-Channel Logout: the partner's provider signs people out of the portal.

The provider is the real one of tests/oidc.py: people sign in through it over HTTP (its ID
tokens carry `sid`), the portal fetches its keys over HTTP, and its logout tokens are signed
with its own key. Times come from the test's frozen clock.
"""

from __future__ import annotations

import calendar
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from conftest import across_partners, host_client, make_user, rows
from flask import Flask
from joserfc.jwk import RSAKey
from oidc import ACME_CLIENT, ALICE, GLOBEX_CLIENT, GUS, ProviderServer, configure, sign_in
from racing import TRIES, race, results, skip_unless_racing
from sqlalchemy import update

from portal.audit.models import ActorType, AuditEvent
from portal.clock import utcnow
from portal.extensions import db
from portal.sessions.models import LoginMethod, UserSession
from portal.sso.flow import LOGOUT_MAX_AGE
from portal.sso.models import SsoLogoutToken
from portal.tenancy.models import Partner
from portal.users.models import User

URL = "/sso/backchannel-logout"


def now() -> int:
    return calendar.timegm(utcnow().timetuple())


def logout_token(idp: ProviderServer, client_id: str = ACME_CLIENT[0], **claims: Any) -> str:
    """The provider's logout token, issued now by the test's clock."""
    return idp.provider.logout_token(client_id, **{"iat": now(), **claims})


def deliver(app: Flask, token: str | None, slug: str = "acme") -> Any:
    """The provider's server posting a logout token: no cookie, no CSRF token."""
    data = {} if token is None else {"logout_token": token}
    return host_client(app, slug).post(URL, data=data)


def signed_in_twice(app: Flask) -> tuple[Any, Any, list[UserSession]]:
    """Alice signed in through the provider in two browsers: two provider sessions."""
    first, second = host_client(app, "acme"), host_client(app, "acme")
    assert sign_in(first, ALICE).status_code == 302
    assert sign_in(second, ALICE).status_code == 302
    sessions = rows(UserSession)
    assert len(sessions) == 2 and len({s.sso_sid for s in sessions}) == 2
    return first, second, sessions


def signed_in(client: Any) -> bool:
    response = client.get("/account/profile")
    return response.status_code == 200


def logouts() -> list[AuditEvent]:
    return [e for e in rows(AuditEvent) if e.action == "sso.backchannel_logout"]


@pytest.fixture
def alice(acme: Partner, acme_user: User, idp: ProviderServer) -> User:
    configure(acme, idp.issuer)
    return acme_user


def test_the_sign_in_keeps_the_providers_session(app: Flask, alice: User, idp) -> None:
    assert sign_in(host_client(app, "acme"), ALICE).status_code == 302
    [session] = rows(UserSession)
    assert session.sso_issuer == idp.issuer
    assert idp.provider.sessions[session.sso_sid] == (ALICE.subject, ACME_CLIENT[0])


def test_a_sid_signs_out_that_browser_only(app: Flask, alice: User, idp) -> None:
    first, second, [one, _two] = signed_in_twice(app)
    password = host_client(app, "acme")
    assert password.login(alice.email).status_code == 302
    response = deliver(app, logout_token(idp, subject=ALICE.subject, sid=one.sso_sid))
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    assert not signed_in(first)  # the next request: signed out
    assert first.get("/account/profile").headers["Location"].startswith("/login")
    assert signed_in(second) and signed_in(password)
    [ended] = [s for s in rows(UserSession) if s.revoked_at is not None]
    assert ended.id == one.id and ended.revoked_reason == "signed out at the identity provider"
    [event] = logouts()
    assert (event.actor_type, event.actor_label) == (ActorType.IDENTITY_PROVIDER, idp.issuer)
    assert (event.target_type, event.target_id) == ("users", str(alice.id))
    assert event.details["sessions_revoked"] == 1 and event.details["by"] == "sid"
    assert event.partner_id == alice.partner_id


def test_signing_out_at_the_provider_signs_out_of_the_portal(app: Flask, alice: User, idp) -> None:
    """The demo provider's own sign-out sends the logout token; only its last hop, from the
    provider's thread into the portal, goes through the test client instead of a socket."""

    def through_the_portal(address: str, token: str) -> int:
        parts = urlsplit(address)
        slug = (parts.hostname or "").split(".")[0]
        return host_client(app, slug).post(parts.path, data={"logout_token": token}).status_code

    idp.provider.now = now
    idp.provider.deliver = through_the_portal
    first, second, [one, two] = signed_in_twice(app)
    page = requests.get(f"{idp.issuer}/sessions", timeout=5)
    assert page.text.count("Sign out</button>") == 2 and ALICE.subject in page.text
    answer = requests.post(f"{idp.issuer}/sessions/{one.sso_sid}/sign-out", timeout=5)
    assert answer.status_code == 200 and "acme-client answered HTTP 200" in answer.text
    assert not signed_in(first) and signed_in(second)
    assert [s.id for s in rows(UserSession) if s.revoked_at is None] == [two.id]
    [event] = logouts()
    assert event.details["sessions_revoked"] == 1 and event.details["sid"] == one.sso_sid
    again = requests.post(f"{idp.issuer}/sessions/{one.sso_sid}/sign-out", timeout=5)
    assert "No such session" in again.text and len(logouts()) == 1


def test_a_sid_alone_is_enough(app: Flask, alice: User, idp) -> None:
    first, second, [one, _two] = signed_in_twice(app)
    assert deliver(app, logout_token(idp, sid=one.sso_sid)).status_code == 200
    assert not signed_in(first) and signed_in(second)


def test_a_subject_alone_signs_out_every_single_sign_on_session_of_its_user(
    app: Flask, alice: User, idp
) -> None:
    first, second, _ = signed_in_twice(app)
    password = host_client(app, "acme")
    assert password.login(alice.email).status_code == 302
    bob = make_user(alice.partner, "bob@acme.test")
    bob_client = host_client(app, "acme")
    assert bob_client.login(bob.email).status_code == 302
    assert deliver(app, logout_token(idp, subject=ALICE.subject)).status_code == 200
    assert not signed_in(first) and not signed_in(second)
    assert signed_in(password) and signed_in(bob_client)  # not the provider's to end
    ended = [s for s in rows(UserSession) if s.revoked_at is not None]
    assert {s.login_method for s in ended} == {LoginMethod.OIDC} and len(ended) == 2
    [event] = logouts()
    assert event.details["sessions_revoked"] == 2 and event.details["by"] == "sub"


def test_a_session_from_before_sessions_kept_their_provider_ends_by_subject_only(
    app: Flask, alice: User, idp
) -> None:
    """Sessions started before migration 0019 have no provider session: a `sid` cannot name
    them, the user's subject still does."""
    browser = host_client(app, "acme")
    assert sign_in(browser, ALICE).status_code == 302
    [session] = rows(UserSession)
    sid = session.sso_sid
    with across_partners():
        db.session.execute(update(UserSession).values(sso_issuer=None, sso_sid=None))
        db.session.commit()
    assert deliver(app, logout_token(idp, sid=sid)).status_code == 200
    assert signed_in(browser)
    assert deliver(app, logout_token(idp, subject=ALICE.subject)).status_code == 200
    assert not signed_in(browser)
    assert [e.details["sessions_revoked"] for e in logouts()] == [0, 1]


def test_a_subject_nobody_here_is_linked_to_signs_out_nobody(
    app: Flask, alice: User, globex: Partner, idp
) -> None:
    """Gus is linked at globex, to the same provider: acme's host does nothing for him."""
    configure(globex, idp.issuer, GLOBEX_CLIENT)
    make_user(globex, GUS.email)
    gus = host_client(app, "globex")
    assert sign_in(gus, GUS).status_code == 302
    acme_browser = host_client(app, "acme")
    assert sign_in(acme_browser, ALICE).status_code == 302
    response = deliver(app, logout_token(idp, subject=GUS.subject))
    assert response.status_code == 200  # valid for acme, and about nobody of acme's
    assert signed_in(gus) and signed_in(acme_browser)
    assert all(s.revoked_at is None for s in rows(UserSession))
    [event] = logouts()
    assert event.details["sessions_revoked"] == 0 and event.target_id is None
    # Nor does a sid of globex's session, posted to acme.
    [gus_session] = rows(UserSession, partner_id=globex.id)
    assert deliver(app, logout_token(idp, sid=gus_session.sso_sid)).status_code == 200
    assert signed_in(gus)


def test_a_sid_of_another_subject_signs_out_nobody(app: Flask, alice: User, idp) -> None:
    first, _second, [one, _two] = signed_in_twice(app)
    make_user(alice.partner, "other@acme.test")
    response = deliver(app, logout_token(idp, subject="sub-someone-else", sid=one.sso_sid))
    assert response.status_code == 200 and signed_in(first)


def new_key(kid: str = "demo-2") -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig"})


# Each case: the claims (or the token) that make it invalid, and what the answer says.
INVALID = {
    "bad_signature": (
        lambda idp, sid: logout_token(idp, sid=sid, key=idp.provider.foreign),
        "signature",
    ),
    "unknown_key": (lambda idp, sid: logout_token(idp, sid=sid, key=new_key()), "signature"),
    "wrong_iss": (
        lambda idp, sid: logout_token(idp, sid=sid, iss="http://127.0.0.1:9/other"),
        "iss",
    ),
    "wrong_aud": (lambda idp, sid: logout_token(idp, sid=sid, aud="someone-else"), "aud"),
    "foreign_partner": (lambda idp, sid: logout_token(idp, GLOBEX_CLIENT[0], sid=sid), "aud"),
    "nonce": (lambda idp, sid: logout_token(idp, sid=sid, nonce="n-0S6_WzA2Mj"), "nonce"),
    "no_events": (lambda idp, sid: logout_token(idp, sid=sid, events=None), "event"),
    "other_event": (lambda idp, sid: logout_token(idp, sid=sid, events={"urn:x": {}}), "event"),
    "no_sub_or_sid": (lambda idp, sid: logout_token(idp), "neither"),
    "no_iat": (lambda idp, sid: logout_token(idp, sid=sid, iat=None), "iat claim is missing"),
    "stale_iat": (
        lambda idp, sid: logout_token(idp, sid=sid, iat=now() - LOGOUT_MAX_AGE - 120),
        "too long ago",
    ),
    "future_iat": (lambda idp, sid: logout_token(idp, sid=sid, iat=now() + 600), "iat claim"),
    "expired": (lambda idp, sid: logout_token(idp, sid=sid, exp=now() - 600), "exp claim"),
    "no_jti": (lambda idp, sid: logout_token(idp, sid=sid, jti=None), "jti claim is missing"),
    "garbage": (lambda idp, sid: "not.a.token", "could not be read"),
    "not_a_jwt": (lambda idp, sid: "garbage", "not a signed JWT"),
    "unsigned": (
        lambda idp, sid: "eyJhbGciOiJub25lIn0." + logout_token(idp, sid=sid).split(".")[1] + ".",
        "could not be read",
    ),
    "missing_parameter": (lambda idp, sid: None, "not a signed JWT"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_an_invalid_logout_token_is_refused_and_signs_out_nobody(
    app: Flask, alice: User, idp, case: str
) -> None:
    make_token, says = INVALID[case]
    browser = host_client(app, "acme")
    assert sign_in(browser, ALICE).status_code == 302
    [session] = rows(UserSession)
    response = deliver(app, make_token(idp, session.sso_sid))
    assert response.status_code == 400, (case, response.status_code, response.text)
    assert response.headers["Cache-Control"] == "no-store"
    assert response.json["error"] == "invalid_request"
    assert says in response.json["error_description"], response.json
    assert signed_in(browser)
    assert all(s.revoked_at is None for s in rows(UserSession))
    assert logouts() == [] and rows(SsoLogoutToken) == []


def key_set_fetches(idp: ProviderServer) -> list[int]:
    """A list that grows by one each time the portal fetches the provider's key set."""
    fetches: list[int] = []
    original = idp.app.wsgi_app

    def counting(environ: dict, start_response: Any) -> Any:
        if environ["PATH_INFO"] == "/jwks":
            fetches.append(1)
        return original(environ, start_response)

    idp.app.wsgi_app = counting
    return fetches


def test_a_key_the_provider_rotated_in_is_fetched_once(app: Flask, alice: User, idp) -> None:
    """The keys are cached with the client (signing in fetched them); a token signed with a
    key id the cache lacks fetches the key set again, once."""
    browser = host_client(app, "acme")
    assert sign_in(browser, ALICE).status_code == 302
    [session] = rows(UserSession)
    idp.provider.key = new_key("demo-2")  # the provider rotates: its key set holds the new key
    fetches = key_set_fetches(idp)
    response = deliver(app, logout_token(idp, sid=session.sso_sid))
    assert response.status_code == 200 and fetches == [1]
    assert not signed_in(browser)
    second = deliver(app, logout_token(idp, sid="another-sid"))
    assert second.status_code == 200 and fetches == [1]  # cached again


def test_tokens_naming_unknown_keys_fetch_the_key_set_at_most_once_a_minute(
    app: Flask, alice: User, idp, frozen_clock
) -> None:
    """Anyone may post a logout token: a stream of tokens with made-up key ids is refused
    without making the portal fetch the provider's keys for each; a minute later a key the
    provider really rotated in is fetched and accepted."""
    browser = host_client(app, "acme")
    assert sign_in(browser, ALICE).status_code == 302
    [session] = rows(UserSession)
    fetches = key_set_fetches(idp)
    strangers = [new_key(f"made-up-{n}") for n in range(3)]
    for key in strangers * 3:
        refused = deliver(app, logout_token(idp, sid=session.sso_sid, key=key))
        assert refused.status_code == 400 and "signature" in refused.json["error_description"]
    assert fetches == [1]  # the first unknown key id, then the cached set for a minute
    idp.provider.key = new_key("demo-2")  # the provider rotates within that minute
    early = deliver(app, logout_token(idp, sid=session.sso_sid))
    assert early.status_code == 400 and fetches == [1] and signed_in(browser)
    frozen_clock.advance(timedelta(seconds=61))
    later = deliver(app, logout_token(idp, sid=session.sso_sid))
    assert later.status_code == 200 and fetches == [1, 1]
    assert not signed_in(browser)


def test_a_replayed_token_is_refused(app: Flask, alice: User, idp) -> None:
    first, second, [one, _two] = signed_in_twice(app)
    token = logout_token(idp, subject=ALICE.subject, sid=one.sso_sid)
    assert deliver(app, token).status_code == 200
    assert not signed_in(first)
    again = deliver(app, token)
    assert again.status_code == 400 and "delivered before" in again.json["error_description"]
    assert signed_in(second) and len(logouts()) == 1
    [seen] = rows(SsoLogoutToken)
    assert (seen.partner_id, seen.issuer) == (alice.partner_id, idp.issuer)


def test_a_spent_jti_is_forgotten_once_its_token_would_be_stale(
    app: Flask, alice: User, idp, frozen_clock
) -> None:
    assert deliver(app, logout_token(idp, sid="sid-one", jti="jti-one")).status_code == 200
    assert [t.jti for t in rows(SsoLogoutToken)] == ["jti-one"]
    frozen_clock.advance(timedelta(seconds=LOGOUT_MAX_AGE + 60))
    assert deliver(app, logout_token(idp, sid="sid-two", jti="jti-two")).status_code == 200
    assert [t.jti for t in rows(SsoLogoutToken)] == ["jti-one", "jti-two"]  # still refusable
    frozen_clock.advance(timedelta(seconds=61))
    assert deliver(app, logout_token(idp, sid="sid-three", jti="jti-three")).status_code == 200
    assert [t.jti for t in rows(SsoLogoutToken)] == ["jti-two", "jti-three"]


def test_the_token_is_checked_against_the_hosts_partner_only(
    app: Flask, alice: User, globex: Partner, globex_user: User, idp
) -> None:
    """Globex's provider (another client at the same issuer) cannot sign out acme's users,
    and acme's token posted to globex's host signs out nobody there."""
    configure(globex, idp.issuer, GLOBEX_CLIENT)
    browser = host_client(app, "acme")
    assert sign_in(browser, ALICE).status_code == 302
    [session] = rows(UserSession)
    to_globex = deliver(app, logout_token(idp, sid=session.sso_sid), slug="globex")
    assert to_globex.status_code == 400 and "aud" in to_globex.json["error_description"]
    assert signed_in(browser)


def test_without_a_provider_the_address_does_not_exist(app: Flask, acme: Partner) -> None:
    response = deliver(app, "x.y.z")
    assert response.status_code == 404


def test_an_unreachable_provider_is_a_503_not_a_500(app: Flask, alice: User, idp) -> None:
    browser = host_client(app, "acme")
    assert sign_in(browser, ALICE).status_code == 302
    [session] = rows(UserSession)
    token = logout_token(idp, sid=session.sso_sid, key=new_key())  # a key id to fetch
    idp.close()
    app.extensions["portal_sso_clients"].clear()  # nothing cached: keys must be fetched
    response = deliver(app, token)
    assert response.status_code == 503 and response.json["error"] == "temporarily_unavailable"
    assert signed_in(browser)


def test_the_settings_page_shows_the_address_to_register(
    app: Flask, alice: User, acme_admin: User
) -> None:
    from conftest import logged_in

    page = logged_in(app, acme_admin).get("/admin/settings/login/")
    assert page.status_code == 200
    assert (
        '<code id="backchannel-logout-url">http://acme.localhost/sso/backchannel-logout</code>'
        in page.text
    )


@pytest.mark.parametrize("attempt", range(TRIES))
def test_two_deliveries_of_one_token_at_once_act_once(
    data: Flask, make_app, acme: Partner, acme_user: User, idp: ProviderServer, attempt
) -> None:
    skip_unless_racing()
    configure(acme, idp.issuer)
    apps = [make_app(), make_app()]
    browser = host_client(apps[0], "acme")
    assert sign_in(browser, ALICE).status_code == 302
    [session] = rows(UserSession)
    token = logout_token(idp, subject=ALICE.subject, sid=session.sso_sid)
    for app in apps:  # each app has fetched the keys: the race is in the database only
        host_client(app, "acme").post(URL, data={"logout_token": "a.b.c"})
    responses = results(race(apps, lambda i: deliver(apps[i], token)))
    assert sorted(r.status_code for r in responses) == [200, 400], [r.text for r in responses]
    refused = next(r for r in responses if r.status_code == 400)
    assert "delivered before" in refused.json["error_description"]
    assert not signed_in(browser)
    assert len(logouts()) == 1 and len(rows(SsoLogoutToken)) == 1
    [ended] = rows(UserSession)
    assert ended.revoked_at is not None
