"""Invitation mail is limited per partner and per address, like sign-up and reset mail.

An admin (or a stolen admin session, or an API client) cannot make the portal send unlimited
invitations: one too many is refused in place (the invite form's error, a flash for "send
again", a 429 problem on the API), nothing of it is stored or sent, and an audit event says so.
"""

from __future__ import annotations

import secrets
import threading
from datetime import timedelta
from typing import Any

import pytest
from apikit import Api, api_client_for, error_code, get_token
from conftest import host_client, logged_in, make_user, rows, set_feature
from flask import Flask
from mailed import mailed_link, mails_to
from racing import WAIT, first_write, race, results, skip_unless_racing
from sqlalchemy import event

from portal.audit.models import AuditEvent
from portal.extensions import db
from portal.mail.models import OutboxMessage
from portal.roles.models import Role
from portal.tenancy.models import Partner
from portal.users.models import User, UserStatus

LIMITS = {"INVITE_LIMIT_PER_PARTNER": "3/hour", "INVITE_LIMIT_PER_ADDRESS": "2/hour"}
HTMX = {"HX-Request": "true"}


@pytest.fixture
def limited(data: Flask, make_app: Any) -> Flask:
    """The app with small invitation limits: 3 an hour per partner, 2 per address."""
    return make_app(**LIMITS)


def invite(client: Any, email: str) -> Any:
    return client.post_form("/admin/users/invite", {"email": email, "role": "basic"})


def limited_events() -> list[tuple[str | None, Any]]:
    return [(e.target_id, e.details) for e in rows(AuditEvent, action="invitation.limited")]


def test_the_partner_limit_refuses_the_next_invitation_in_the_form(
    limited: Flask, acme: Partner, globex: Partner, acme_admin: User, windows_follow_the_clock: Any
) -> None:
    admin = logged_in(limited, acme_admin)
    for n in range(3):
        assert invite(admin, f"new{n}@acme.test").status_code == 302
    users, mails = len(rows(User)), len(rows(OutboxMessage))

    refused = invite(admin, "one-more@acme.test")
    assert refused.status_code == 429
    assert "This portal may send at most 3 invitations per hour." in refused.text
    assert "Nothing was sent; try again in " in refused.text
    assert 'value="one-more@acme.test"' in refused.text  # the form keeps what was typed
    assert (len(rows(User)), len(rows(OutboxMessage))) == (users, mails)
    assert rows(User, email="one-more@acme.test") == []
    assert [e.action for e in rows(AuditEvent, target_id="one-more@acme.test")] == [
        "invitation.limited"
    ]
    assert limited_events() == [("one-more@acme.test", {"limit": "partner"})]
    # A taken address is refused as before, and counts nothing.
    assert invite(admin, "new0@acme.test").status_code == 409

    # Another partner's admins have their own count.
    g_admin = logged_in(limited, make_user(globex, "admin@globex.test", role=Role.ADMIN))
    assert invite(g_admin, "one-more@acme.test").status_code == 302

    # An hour later (a moving window) the partner may invite again.
    windows_follow_the_clock.advance(timedelta(hours=1, seconds=1))
    admin = logged_in(limited, acme_admin)  # the first session was idle too long meanwhile
    assert invite(admin, "one-more@acme.test").status_code == 302
    assert len(mails_to("one-more@acme.test")) == 2  # Globex's and Acme's


def test_the_address_limit_counts_new_invitations_and_ones_sent_again(
    limited: Flask, acme: Partner, acme_admin: User
) -> None:
    admin = logged_in(limited, acme_admin)
    assert invite(admin, "pat@acme.test").status_code == 302
    [pat] = rows(User, email="pat@acme.test")
    resend = f"/admin/users/{pat.id}/invitation/resend"
    assert admin.post_form(resend).status_code == 302
    assert len(mails_to("pat@acme.test")) == 2

    refused = admin.post_form(resend)
    assert refused.status_code == 302  # back to the user's page, with the reason
    page = admin.get(refused.headers["Location"]).text
    assert "pat@acme.test was already sent 2 invitations within the last hour." in page
    assert len(mails_to("pat@acme.test")) == 2
    # The link sent last still works: the refused request issued no new one.
    assert (
        host_client(limited, "acme").get(mailed_link("pat@acme.test", "/invite/")).status_code
        == 200
    )
    htmx = admin.post(resend, data={"csrf_token": admin.csrf_token("/")}, headers=HTMX)
    assert htmx.status_code == 429 and "Nothing was sent" in htmx.text
    assert htmx.headers["Retry-After"].isdigit()
    assert limited_events() == [(str(pat.id), {"limit": "address"})] * 2

    # Revoked and invited again within the hour: still the same address's count.
    admin.post_form(f"/admin/users/{pat.id}/invitation/revoke")
    again = invite(admin, "pat@acme.test")
    assert again.status_code == 429 and "already sent 2 invitations" in again.text
    assert rows(User, email="pat@acme.test") == []


def test_the_api_answers_429_with_retry_after_and_audits_the_refusal(
    limited: Flask, acme: Partner, acme_admin: User
) -> None:
    client_id, secret, _ = api_client_for(acme, acme_admin)
    api = Api(limited, "acme", get_token(limited, "acme", client_id, secret))
    for n in range(3):
        assert api.post("/users", {"email": f"n{n}@acme.test", "role": "basic"}).status_code == 201
    refused = api.post("/users", {"email": "late@acme.test", "role": "basic"})
    assert refused.status_code == 429 and error_code(refused) == "rate_limited"
    assert "at most 3 invitations per hour" in refused.json["error"]["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 3600
    assert rows(User, email="late@acme.test") == [] and mails_to("late@acme.test") == []
    [event] = rows(AuditEvent, action="invitation.limited")
    assert event.actor_label == "API client Back office"
    assert (event.target_id, event.details) == ("late@acme.test", {"limit": "partner"})


def test_the_operator_recovery_invitation_is_not_held_by_the_partner_limit(
    limited: Flask, acme: Partner, acme_admin: User
) -> None:
    admin = logged_in(limited, acme_admin)
    for n in range(3):
        invite(admin, f"new{n}@acme.test")
    result = limited.test_cli_runner().invoke(
        args=["partner", "grant-admin", "acme", "boss@acme.test"]
    )
    assert result.exit_code == 0, result.output
    assert len(mails_to("boss@acme.test")) == 1


def test_limits_are_settings(make_app: Any, data: Flask) -> None:
    app = make_app(INVITE_LIMIT_PER_PARTNER="50/day", INVITE_LIMIT_PER_ADDRESS="1/10minutes")
    limits = app.extensions["portal_throttle"].limits
    assert (limits.invite_per_partner.amount, limits.invite_per_partner.get_expiry()) == (50, 86400)
    assert (limits.invite_per_address.amount, limits.invite_per_address.get_expiry()) == (1, 600)


def test_two_admins_inviting_at_once_share_the_partner_limit(
    make_app: Any, data: Flask, acme: Partner, acme_admin: User, redis_url: str
) -> None:
    """Two processes (app instances sharing Redis), each with one invitation left between
    them: exactly one is sent, the other refused, and the log says the same."""
    skip_unless_racing()
    prefix = f"race-{secrets.token_hex(4)}"
    settings = {**LIMITS, "INVITE_LIMIT_PER_PARTNER": "1/hour"}
    apps = [
        make_app(
            fresh=True, RATELIMIT_STORAGE_URL=redis_url, RATELIMIT_KEY_PREFIX=prefix, **settings
        )
        for _ in range(2)
    ]
    second = make_user(acme, "second@acme.test", role=Role.ADMIN)
    clients = [logged_in(apps[0], acme_admin), logged_in(apps[1], second)]
    tokens = [c.csrf_token("/") for c in clients]

    def post(index: int) -> Any:
        form = {"email": f"new{index}@acme.test", "role": "basic", "csrf_token": tokens[index]}
        return clients[index].post("/admin/users/invite", data=form, headers=HTMX)

    responses = results(race(apps, post))
    assert sorted(r.status_code for r in responses) == [302, 429]
    assert len(rows(User, status=UserStatus.INVITED)) == 1
    assert len(rows(OutboxMessage)) == 1 and len(rows(AuditEvent, action="invitation.send")) == 1
    assert [e.details for e in rows(AuditEvent, action="invitation.limited")] == [
        {"limit": "partner"}
    ]


def test_case_and_whitespace_variants_of_an_address_share_its_count(
    limited: Flask, acme: Partner, acme_admin: User
) -> None:
    admin = logged_in(limited, acme_admin)
    client_id, secret, _ = api_client_for(acme, acme_admin)
    api = Api(limited, "acme", get_token(limited, "acme", client_id, secret))
    assert invite(admin, "Pat@ACME.test").status_code == 302
    [pat] = rows(User, email="pat@acme.test")
    admin.post_form(f"/admin/users/{pat.id}/invitation/revoke")
    # Through the API this time, spelled another way: the same address, the second of two.
    second = api.post("/users", {"email": "  pAT@acme.TEST ", "role": "basic"})
    assert second.status_code == 201
    [pat] = rows(User, email="pat@acme.test")
    admin.post_form(f"/admin/users/{pat.id}/invitation/revoke")
    refused = invite(admin, " PAT@acme.test")
    assert refused.status_code == 429 and "already sent 2 invitations" in refused.text
    assert rows(User, email="pat@acme.test") == []
    assert len(mails_to("pat@acme.test")) == 2
    assert limited_events() == [("pat@acme.test", {"limit": "address"})]


def test_an_invitation_that_loses_its_address_to_a_sign_up_counts_nothing(
    make_app: Any, data: Flask, acme: Partner, acme_admin: User
) -> None:
    """An admin invites pat@ while a visitor signs up as pat@, each on their own app instance
    and thread. Whoever loses, the invitation limit (one an hour to an address here) counts an
    invitation only if it was sent.

    The invitation stops just before it inserts pat@, having found the address free. On
    PostgreSQL the sign-up (which takes no partner lock) then writes and commits pat@, and the
    invitation's insert breaks the unique address. On SQLite the invitation holds the
    database's write lock since before its check: the sign-up waits for it, then finds pat@.
    """
    skip_unless_racing()
    set_feature(acme, "self_signup")
    apps = [make_app(fresh=True, **{**LIMITS, "INVITE_LIMIT_PER_ADDRESS": "1/hour"}), make_app()]
    admin, visitor = logged_in(apps[0], acme_admin), host_client(apps[1], "acme")
    tokens = [admin.csrf_token("/"), visitor.csrf_token("/signup")]
    checked, writing, signed_up = threading.Event(), threading.Event(), threading.Event()
    postgres = db.engine.dialect.name == "postgresql"

    def hold_invitation(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO USERS"):
            checked.set()
            assert writing.wait(WAIT) and (not postgres or signed_up.wait(WAIT))

    def see_sign_up(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if first_write(statement):
            writing.set()

    def invite_pat() -> Any:
        with apps[0].app_context():
            form = {"email": "pat@acme.test", "role": "basic", "csrf_token": tokens[0]}
            return admin.post("/admin/users/invite", data=form, headers=HTMX)

    def sign_up_pat() -> Any:
        assert checked.wait(WAIT)
        form = {"email": "pat@acme.test", "display_name": "Pat", "csrf_token": tokens[1]}
        try:
            return visitor.post("/signup", data=form)
        finally:
            signed_up.set()

    answers: list[Any] = [None, None]

    def run(index: int, work: Any) -> None:
        try:
            answers[index] = work()
        except BaseException as exc:  # reported below, not lost in the thread
            answers[index] = exc
            for flag in (checked, writing, signed_up):
                flag.set()

    engines = []
    for app, hook in zip(apps, (hold_invitation, see_sign_up), strict=True):
        with app.app_context():
            engines.append((db.engine, hook))
            event.listen(db.engine, "before_cursor_execute", hook)
    try:
        threads = [
            threading.Thread(target=run, args=p) for p in enumerate((invite_pat, sign_up_pat))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT * 2)
        assert not any(t.is_alive() for t in threads), "a writer hung"
    finally:
        for engine, hook in engines:
            event.remove(engine, "before_cursor_execute", hook)
    invited, visited = answers
    assert not isinstance(invited, BaseException), invited
    assert not isinstance(visited, BaseException), visited
    assert visited.status_code == 302  # the visitor's answer is the same either way

    [pat] = rows(User, email="pat@acme.test")
    sent = len(rows(AuditEvent, action="invitation.send"))
    if postgres:
        assert invited.status_code == 409, invited.text
        assert "pat@acme.test was just invited by someone else." in invited.text
        assert sent == 0 and len(rows(AuditEvent, action="account.signup")) == 1
    else:
        assert invited.status_code == 302, invited.text
        assert sent == 1 and rows(AuditEvent, action="account.signup") == []
    # The pending account removed, the admin invites pat@ again within the hour: refused only
    # if an invitation already went to pat@ (the one an hour allowed).
    admin.post_form(f"/admin/users/{pat.id}/invitation/revoke")
    again = invite(admin, "pat@acme.test")
    assert again.status_code == (429 if sent else 302), again.text
    if sent:
        assert "pat@acme.test was already sent 1 invitation within the last hour." in again.text
    assert len(rows(AuditEvent, action="invitation.send")) == 1
    assert len([m for m in mails_to("pat@acme.test") if "You are invited" in m.subject]) == 1
