"""Self sign-up (the password chosen at confirmation), the profile, email and password change."""

from __future__ import annotations

import itertools
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from conftest import PASSWORD, HostClient, host_client, make_user, rows, set_feature
from flask import Flask
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from mailed import last_mail, mailed_link, mails_to

from portal.audit.models import AuditEvent
from portal.auth.passwords import hash_password, verify_password
from portal.extensions import db
from portal.features.models import FeatureSetting
from portal.mail.models import OutboxMessage
from portal.roles.models import Role, RoleSetting
from portal.sessions.models import UserSession
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.tokens.models import ActionToken, TokenPurpose
from portal.users.models import User, UserStatus
from portal.users.services import clean_email

NEW_PASSWORD = "a-brand-new-passphrase"
INVALID = "This link is invalid or has expired"
FIELD_ERROR_RE = re.compile(r'<small id="([a-z_]+)-errors" class="field-error">([^<]*)</small>')

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    derandomize=True,  # the same examples on every run
)
text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=200)
emailish = st.one_of(
    text,
    st.emails(),
    st.from_regex(r"[a-zA-Z0-9._%+-]{1,20}@(acme|example)\.test", fullmatch=True),
    st.just("alice@acme.test"),
)
# Mostly plausible input, so that the successful path is explored as well as the refusals.
plausible_name = st.from_regex(r"[A-Za-z][A-Za-z .'-]{0,40}", fullmatch=True)
names = st.one_of(text, plausible_name, plausible_name)
long_enough = st.text(min_size=10, max_size=40)
passwords = st.one_of(text, long_enough, long_enough)
same_or_other = st.one_of(st.none(), st.none(), st.none(), text)  # None: repeat the password


def field_errors(html: str) -> dict[str, str]:
    return dict(FIELD_ERROR_RE.findall(html))


def stored(user_id: int) -> User:
    [row] = rows(User, id=user_id)
    return row


def logged_in(app: Flask, email: str, password: str = PASSWORD) -> HostClient:
    client = host_client(app, "acme")
    assert client.login(email, password).status_code == 302
    return client


def allow_signup(partner: Partner, default_role: str = "guest") -> None:
    set_feature(partner, "self_signup")
    with partner_scope(partner):
        row = db.session.get(Partner, partner.id)
        row.default_role = default_role
        db.session.commit()


CLIENTS = itertools.count()


def sign_up(client: HostClient, email: str, name: str = "Sam Signup"):
    return client.post_form("/signup", {"email": email, "display_name": name})


def complete(client: HostClient, path: str, name: str = "Sam Signup", password=NEW_PASSWORD):
    """Choose name and password on the page the sign-up link opens."""
    return client.post_form(path, {"display_name": name, "password": password, "confirm": password})


def counts() -> tuple[int, int, int, int]:
    return len(rows(User)), len(rows(ActionToken)), len(rows(OutboxMessage)), len(rows(AuditEvent))


# --- Self sign-up -----------------------------------------------------------------------------


def test_signup_is_404_while_the_partner_has_it_off(acme_client: HostClient, acme: Partner) -> None:
    assert acme_client.get("/signup").status_code == 404
    assert sign_up(acme_client, "sam@acme.test").status_code == 404
    assert "Create an account" not in acme_client.get("/login").text
    assert rows(User) == []


def test_signup_creates_a_pending_user_without_a_password_and_mails_a_link(
    acme_client: HostClient, acme: Partner
) -> None:
    allow_signup(acme, default_role="basic")
    login = acme_client.get("/login")
    assert 'href="/signup"' in login.text and "Create an account" in login.text
    form = acme_client.get("/signup")
    assert form.status_code == 200 and 'type="password"' not in form.text

    response = sign_up(acme_client, " Sam@Acme.test ", name="  Sam Signup ")
    assert response.status_code == 302
    assert response.headers["Location"] == "/signup?sent=1"
    assert "choose your password" in acme_client.get("/signup?sent=1").text

    [user] = rows(User)
    assert (user.email, user.display_name) == ("sam@acme.test", "Sam Signup")
    assert user.partner_id == acme.id
    assert user.status == UserStatus.INVITED and user.role == Role.BASIC
    assert user.password_hash is None  # whoever opens the link chooses it
    [token] = rows(ActionToken)
    assert token.purpose == TokenPurpose.VERIFY_EMAIL and token.user_id == user.id
    mail = last_mail("sam@acme.test")
    assert mail.subject == "Confirm your email address · Acme Corp"
    # The visitor's own words are not mailed to the address they typed.
    assert "Sam Signup" not in mail.body_text and "Sam Signup" not in mail.body_html
    mailed_link("sam@acme.test", "/signup/verify/")
    assert {"user.create", "account.signup"} <= {e.action for e in rows(AuditEvent)}


def test_the_link_asks_for_the_password_and_activates_the_account(
    acme_client: HostClient, acme: Partner
) -> None:
    allow_signup(acme)
    sign_up(acme_client, "sam@acme.test")
    path = mailed_link("sam@acme.test", "/signup/verify/")
    page = acme_client.get(path)
    assert page.status_code == 200
    assert "sam@acme.test" in page.text and 'value="Sam Signup"' in page.text
    assert page.text.count('type="password"') == 2
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert rows(User)[0].status == UserStatus.INVITED  # opening the link alone changes nothing

    response = complete(acme_client, path, name="Samantha Signup")
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert "Your account is ready. Sign in with the password you chose." in (
        acme_client.get("/login").text
    )
    [user] = rows(User)
    assert user.status == UserStatus.ACTIVE and user.display_name == "Samantha Signup"
    assert verify_password(user.password_hash, NEW_PASSWORD)
    assert rows(ActionToken)[0].used_at is not None
    assert "account.signup_verified" in [e.action for e in rows(AuditEvent)]
    assert acme_client.login("sam@acme.test", NEW_PASSWORD).status_code == 302
    # Once only.
    again = complete(host_client(acme_client.application, "acme"), path, password="other-pass-1")
    assert again.status_code == 404 and INVALID in again.text
    assert verify_password(rows(User)[0].password_hash, NEW_PASSWORD)


@pytest.mark.parametrize(
    ("name", "password", "confirm", "field", "message"),
    [
        ("Sam", "short", "short", "password", "Use at least 10 characters."),
        ("Sam", NEW_PASSWORD, "something-else-1", "confirm", "The two passwords are not"),
        ("", NEW_PASSWORD, NEW_PASSWORD, "display_name", "Enter your name."),
        ("Sam\u202e", NEW_PASSWORD, NEW_PASSWORD, "display_name", "Remove the invisible"),
    ],
)
def test_the_link_page_shows_errors_in_place_and_stays_usable(
    acme_client: HostClient, acme: Partner, name, password, confirm, field, message
) -> None:
    allow_signup(acme)
    sign_up(acme_client, "sam@acme.test")
    path = mailed_link("sam@acme.test", "/signup/verify/")
    before = counts()
    response = acme_client.post_form(
        path, {"display_name": name, "password": password, "confirm": confirm}
    )
    assert response.status_code == 422
    assert field_errors(response.text)[field].startswith(message)
    assert password not in response.text
    assert counts() == before
    [user] = rows(User)
    assert user.status == UserStatus.INVITED and user.password_hash is None
    assert complete(acme_client, path).status_code == 302


def test_confirmation_link_expires_and_stays_on_its_host(
    app: Flask, acme_client: HostClient, acme: Partner, globex: Partner, frozen_clock
) -> None:
    allow_signup(acme)
    allow_signup(globex)
    sign_up(acme_client, "sam@acme.test")
    path = mailed_link("sam@acme.test", "/signup/verify/")
    globex_client = host_client(app, "globex")
    assert globex_client.get(path).status_code == 404
    assert complete(globex_client, path).status_code == 404
    tampered = path[:-2] + ("xy" if not path.endswith("xy") else "yz")
    assert complete(acme_client, tampered).status_code == 404
    frozen_clock.advance(timedelta(days=2))
    expired = complete(acme_client, path)
    assert expired.status_code == 404 and INVALID in expired.text
    assert 'href="/signup"' in expired.text  # signing up again sends a fresh link
    [user] = rows(User)
    assert user.status == UserStatus.INVITED and user.password_hash is None


def test_signing_up_first_with_someone_elses_address_gains_nothing(
    app: Flask, acme: Partner, frozen_clock
) -> None:
    """Account pre-hijack: the attacker signs up the victim's address and never confirms."""
    allow_signup(acme)
    attacker = host_client(app, "acme")
    sign_up(attacker, "victim@acme.test", name="Attacker")
    # Nothing the attacker chose can sign in: there is no password yet.
    for guess in ("attacker-chosen-pw", NEW_PASSWORD, ""):
        assert attacker.login("victim@acme.test", guess).status_code == 422

    # Later the victim signs up too, gets a fresh link and chooses name and password there.
    frozen_clock.advance(timedelta(minutes=5))
    victim = host_client(app, "acme")
    assert sign_up(victim, "victim@acme.test", name="Vic Tim").status_code == 302
    assert len(mails_to("victim@acme.test")) == 2
    path = mailed_link("victim@acme.test", "/signup/verify/")
    assert 'value="Attacker"' in victim.get(path).text  # shown, and the victim replaces it
    assert complete(victim, path, name="Vic Tim").status_code == 302
    assert victim.login("victim@acme.test", NEW_PASSWORD).status_code == 302
    [user] = rows(User, email="victim@acme.test")
    assert (user.status, user.display_name) == (UserStatus.ACTIVE, "Vic Tim")
    assert attacker.login("victim@acme.test", "attacker-chosen-pw").status_code == 422


@pytest.fixture
def admin(app: Flask, acme: Partner) -> HostClient:
    make_user(acme, "root@acme.test", role=Role.ADMIN)
    return logged_in(app, "root@acme.test")


def test_an_admin_sees_a_pending_sign_up_and_cannot_activate_it(
    app: Flask, acme: Partner, admin: HostClient
) -> None:
    allow_signup(acme)
    sign_up(host_client(app, "acme"), "sam@acme.test")
    [user] = rows(User, email="sam@acme.test")
    detail = admin.get(f"/admin/users/{user.id}").text
    assert "pending sign-up" in detail and "Remove pending sign-up" in detail
    assert "Revoke invitation" not in detail

    # Deactivating and reactivating leaves it pending: there is no password to activate.
    admin.post_form(f"/admin/users/{user.id}/deactivate")
    admin.post_form(f"/admin/users/{user.id}/reactivate")
    [user] = rows(User, email="sam@acme.test")
    assert user.status == UserStatus.INVITED and user.password_hash is None
    assert "pending sign-up" in admin.get(f"/admin/users/{user.id}").text

    response = admin.post_form(f"/admin/users/{user.id}/invitation/revoke")
    assert response.status_code == 302
    assert "The pending sign-up of sam@acme.test is removed." in admin.get("/admin/users/").text
    assert rows(User, email="sam@acme.test") == [] and rows(ActionToken) == []
    [event] = rows(AuditEvent, action="user.signup_remove")
    assert event.details == {"email": "sam@acme.test"}
    # The address is free again: an admin may invite it, or its owner sign up.
    invited = admin.post_form("/admin/users/invite", {"email": "sam@acme.test", "role": "basic"})
    assert invited.status_code == 302


def test_an_invitation_sent_to_a_pending_sign_up_makes_it_an_invitation(
    app: Flask, acme: Partner, admin: HostClient
) -> None:
    allow_signup(acme)
    sign_up(host_client(app, "acme"), "sam@acme.test")
    [user] = rows(User, email="sam@acme.test")
    response = admin.post_form(f"/admin/users/{user.id}/invitation/resend")
    assert (
        "An invitation was sent to sam@acme.test." in admin.get(response.headers["Location"]).text
    )
    detail = admin.get(f"/admin/users/{user.id}").text
    assert "pending sign-up" not in detail and "Revoke invitation" in detail
    path = mailed_link("sam@acme.test", "/invite/")
    accepted = host_client(app, "acme").post_form(
        path, {"display_name": "Sam", "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    )
    assert accepted.status_code == 302
    assert rows(User, email="sam@acme.test")[0].status == UserStatus.ACTIVE


def test_a_pending_sign_up_from_before_loses_the_password_it_was_made_with(
    app: Flask, acme: Partner, admin: HostClient, frozen_clock
) -> None:
    """Sign-ups made when the form still asked for a password carry one, not the owner's."""
    allow_signup(acme)
    sign_up(host_client(app, "acme"), "old@acme.test")
    sign_up(host_client(app, "acme"), "older@acme.test")
    with partner_scope(acme):
        db.session.execute(
            sa.update(User)
            .where(User.status == UserStatus.INVITED)
            .values(password_hash=hash_password("attacker-chosen-pw"))
        )
        db.session.commit()
    old, older = rows(User, email="old@acme.test")[0], rows(User, email="older@acme.test")[0]
    # An admin can remove it...
    assert "Remove pending sign-up" in admin.get(f"/admin/users/{old.id}").text
    # ...deactivating and reactivating it does not activate it...
    admin.post_form(f"/admin/users/{old.id}/deactivate")
    admin.post_form(f"/admin/users/{old.id}/reactivate")
    assert (stored(old.id).status, stored(old.id).password_hash) == (UserStatus.INVITED, None)
    # ...and signing up again sends a link to choose the password, the old one gone.
    frozen_clock.advance(timedelta(minutes=5))
    sign_up(host_client(app, "acme"), "older@acme.test")
    assert stored(older.id).password_hash is None
    mailed_link("older@acme.test", "/signup/verify/")
    for address in ("old@acme.test", "older@acme.test"):
        assert host_client(app, "acme").login(address, "attacker-chosen-pw").status_code == 422


def test_signup_with_a_known_address_tells_its_owner_not_the_visitor(
    acme_client: HostClient, acme: Partner, acme_user: User
) -> None:
    allow_signup(acme)
    known = sign_up(acme_client, "alice@acme.test")
    unknown = sign_up(acme_client, "fresh@acme.test")
    assert known.status_code == unknown.status_code == 302
    assert known.headers["Location"] == unknown.headers["Location"]
    # Alice's account is untouched and she is told what happened.
    user = stored(acme_user.id)
    assert user.status == UserStatus.ACTIVE and user.display_name == "Alice Acme"
    assert verify_password(user.password_hash, PASSWORD)
    notice = last_mail("alice@acme.test")
    assert notice.subject.startswith("Someone tried to sign up with your address")
    assert "http://acme.localhost/password/forgot" in notice.body_text
    assert len(rows(User)) == 2
    assert [t.user_id for t in rows(ActionToken)] != [acme_user.id]


def test_signing_up_again_before_confirming_resends_the_link(
    acme_client: HostClient, acme: Partner, frozen_clock
) -> None:
    allow_signup(acme)
    sign_up(acme_client, "sam@acme.test")
    first = mailed_link("sam@acme.test", "/signup/verify/")
    sign_up(acme_client, "sam@acme.test")  # a minute has not passed: the first is on its way
    assert len(mails_to("sam@acme.test")) == 1
    frozen_clock.advance(timedelta(minutes=5))
    sign_up(acme_client, "sam@acme.test", name="Someone Else")
    second = mailed_link("sam@acme.test", "/signup/verify/")
    assert first != second and len(rows(User)) == 1
    assert complete(acme_client, first).status_code == 404
    assert complete(acme_client, second).status_code == 302
    assert stored(rows(User)[0].id).display_name == "Sam Signup"


def test_signup_never_grants_admin(acme_client: HostClient, acme: Partner) -> None:
    allow_signup(acme, default_role="admin")
    sign_up(acme_client, "sam@acme.test")
    assert rows(User)[0].role == Role.GUEST


def test_signup_errors_are_shown_in_place_and_nothing_is_written(
    acme_client: HostClient, acme: Partner
) -> None:
    allow_signup(acme)
    before = counts()
    response = sign_up(acme_client, "not-an-email", name="\x07")
    assert response.status_code == 422
    errors = field_errors(response.text)
    assert errors["display_name"] == "Use letters, digits, spaces and punctuation only."
    assert errors["email"].startswith("Enter a valid email address")
    assert 'value="not-an-email"' in response.text
    assert counts() == before


@FUZZ
@given(email=emailish, name=names)
@example(email="Zoë@Example.test", name="Zoë Ünïcode")
@example(email="alice@acme.test", name="Alice Again")
@example(email="new@acme.test", name="Tab\tName")
def test_signup_form_input_never_breaks_anything(
    acme_client: HostClient, acme: Partner, email: str, name: str
) -> None:
    if not rows(FeatureSetting, key="self_signup"):
        allow_signup(acme)
        make_user(acme, "alice@acme.test")
    users, tokens, mails, events = counts()
    existing = {u.email for u in rows(User)}
    # Each example from its own client address: one address may make ten an hour.
    n = next(CLIENTS)
    response = acme_client.post_form(
        "/signup",
        {"email": email, "display_name": name},
        environ_base={"REMOTE_ADDR": f"10.{n // 250}.{n % 250}.1"},
    )
    # 400: a NUL character, refused before any view runs.
    assert response.status_code in (302, 400, 422), response.status_code
    event(f"signup {response.status_code}")
    if response.status_code in (400, 422):
        assert counts() == (users, tokens, mails, events)
        return
    with partner_scope(acme):
        address = clean_email(email)
    if address in existing:
        assert counts()[0] == users
    else:
        assert counts()[:3] == (users + 1, tokens + 1, mails + 1)
        [user] = rows(User, email=address)
        assert user.status == UserStatus.INVITED and user.password_hash is None
        # White space runs are one space, whatever the runs were made of.
        assert user.display_name == " ".join(name.split())


# --- Profile ----------------------------------------------------------------------------------


def test_header_links_to_the_account_pages(app: Flask, acme_user: User) -> None:
    client = logged_in(app, "alice@acme.test")
    assert 'href="/account/profile"' in client.get("/").text
    page = client.get("/account/profile")
    assert page.status_code == 200
    assert 'value="Alice Acme"' in page.text
    assert 'href="/account/password"' in page.text


def test_profile_changes_the_display_name(app: Flask, acme_user: User) -> None:
    client = logged_in(app, "alice@acme.test")
    response = client.post_form("/account/profile", {"display_name": "  Alice Liddell "})
    assert response.status_code == 302 and response.headers["Location"] == "/account/profile"
    assert "Your profile is saved." in client.get("/account/profile").text
    assert stored(acme_user.id).display_name == "Alice Liddell"
    [event] = rows(AuditEvent, action="account.profile_update")
    assert event.details == {"from": "Alice Acme", "to": "Alice Liddell"}
    assert event.actor_id == acme_user.id


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "Enter your name."),
        ("   ", "Enter your name."),
        ("x" * 121, "Use at most 120 characters."),
        ("Bad\x07Name", "Use letters, digits, spaces and punctuation only."),
    ],
)
def test_profile_errors_in_place(app: Flask, acme_user: User, name: str, message: str) -> None:
    client = logged_in(app, "alice@acme.test")
    response = client.post_form("/account/profile", {"display_name": name})
    assert response.status_code == 422
    assert field_errors(response.text)["display_name"] == message
    assert stored(acme_user.id).display_name == "Alice Acme"


def test_account_pages_need_a_login(acme_client: HostClient, acme: Partner) -> None:
    for path in ("/account/profile", "/account/password"):
        response = acme_client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login")


# --- Email change -----------------------------------------------------------------------------


def request_change(client: HostClient, new_email: str, password: str = PASSWORD):
    return client.post_form("/account/email", {"new_email": new_email, "password": password})


def test_email_change_needs_confirmation_from_the_new_address(app: Flask, acme_user: User) -> None:
    client = logged_in(app, "alice@acme.test")
    response = request_change(client, "Alice.New@acme.test")
    assert response.status_code == 302
    profile = client.get("/account/profile")
    assert "We sent a confirmation link to alice.new@acme.test" in profile.text
    assert "Waiting for confirmation" in profile.text and "alice.new@acme.test" in profile.text
    assert stored(acme_user.id).email == "alice@acme.test"
    path = mailed_link("alice.new@acme.test", "/account/email/confirm/")
    [token] = rows(ActionToken)
    assert token.payload == {"email": "alice.new@acme.test"}

    # Whoever merely holds the link cannot confirm: only the account's owner, signed in.
    mail = last_mail("alice.new@acme.test")
    assert "Alice" not in mail.body_text  # nothing of the requester's choosing goes out
    stranger = host_client(app, "acme")
    page = stranger.get(path)
    assert page.status_code == 401 and "Sign in to confirm" in page.text
    assert stranger.post_form(path).status_code == 401
    assert stored(acme_user.id).email == "alice@acme.test"
    page = client.get(path)
    assert page.status_code == 200 and "alice.new@acme.test" in page.text
    confirmed = client.post_form(path)
    assert confirmed.status_code == 302 and confirmed.headers["Location"] == "/account/profile"
    assert stored(acme_user.id).email == "alice.new@acme.test"
    notice = last_mail("alice@acme.test")
    assert notice.subject.startswith("Your email address was changed")
    assert "alice.new@acme.test" in notice.body_text
    [event] = rows(AuditEvent, action="account.email_change")
    assert event.details == {"from": "alice@acme.test", "to": "alice.new@acme.test"}
    # The new address signs in, the old one no longer does; the link is spent.
    assert stranger.login("alice@acme.test").status_code == 422
    assert stranger.login("alice.new@acme.test").status_code == 302
    assert stranger.post_form(path).status_code == 404
    assert "Waiting for confirmation" not in client.get("/account/profile").text


@pytest.mark.parametrize(
    ("new_email", "password", "field", "message"),
    [
        ("bob@acme.test", "wrong-password-here", "password", "Your password is not correct."),
        ("alice@acme.test", PASSWORD, "new_email", "This is already your email address."),
        ("not an email", PASSWORD, "new_email", "Enter a valid email address"),
        ("", PASSWORD, "new_email", "Enter an email address."),
    ],
)
def test_email_change_errors_in_place(
    app: Flask, acme: Partner, acme_user: User, new_email, password, field, message
) -> None:
    make_user(acme, "bob@acme.test")
    client = logged_in(app, "alice@acme.test")
    before = counts()
    response = request_change(client, new_email, password)
    assert response.status_code == 422
    assert field_errors(response.text)[field].startswith(message)
    assert 'value="Alice Acme"' in response.text  # the other form keeps its value
    assert password not in response.text
    assert counts() == before


def test_email_change_link_expires_and_stays_on_its_host(
    app: Flask, acme_user: User, globex: Partner, frozen_clock
) -> None:
    client = logged_in(app, "alice@acme.test")
    request_change(client, "alice.new@acme.test")
    path = mailed_link("alice.new@acme.test", "/account/email/confirm/")
    globex_client = host_client(app, "globex")
    assert globex_client.get(path).status_code == 404
    assert globex_client.post_form(path).status_code == 404
    assert client.post_form(path + "x").status_code == 404
    frozen_clock.advance(timedelta(days=1))
    expired = host_client(app, "acme").post_form(path)
    assert expired.status_code == 404 and INVALID in expired.text
    assert stored(acme_user.id).email == "alice@acme.test"


def test_an_address_in_use_gets_the_same_answer_and_its_owner_a_notice(
    app: Flask, acme: Partner, acme_user: User
) -> None:
    """The form tells nobody which addresses have accounts: the same answer, the same pending
    change; the owner of the address hears of it, and the change is refused at confirmation."""
    make_user(acme, "bob@acme.test")
    client = logged_in(app, "alice@acme.test")
    taken = request_change(client, "bob@acme.test")
    assert taken.status_code == 302
    profile = client.get("/account/profile").text
    assert "We sent a confirmation link to bob@acme.test" in profile
    assert "Waiting for confirmation" in profile
    notice = last_mail("bob@acme.test")
    assert notice.subject.startswith("Someone asked to use your email address")
    assert "/account/email/confirm/" not in notice.body_text and "Alice" not in notice.body_text
    [token] = rows(ActionToken, purpose=TokenPurpose.CHANGE_EMAIL)
    assert token.payload == {"email": "bob@acme.test"}
    assert stored(acme_user.id).email == "alice@acme.test"


def test_email_taken_meanwhile_is_refused_at_confirmation(
    app: Flask, acme: Partner, acme_user: User
) -> None:
    client = logged_in(app, "alice@acme.test")
    request_change(client, "alice.new@acme.test")
    path = mailed_link("alice.new@acme.test", "/account/email/confirm/")
    make_user(acme, "alice.new@acme.test")
    mails = len(rows(OutboxMessage))
    response = client.post_form(path)
    assert response.status_code == 409
    assert "Your email address is unchanged." in response.text
    assert stored(acme_user.id).email == "alice@acme.test"
    assert len(rows(OutboxMessage)) == mails
    assert rows(ActionToken)[0].used_at is None


def test_pending_email_change_can_be_cancelled(app: Flask, acme_user: User) -> None:
    client = logged_in(app, "alice@acme.test")
    request_change(client, "alice.new@acme.test")
    path = mailed_link("alice.new@acme.test", "/account/email/confirm/")
    response = client.post_form("/account/email/cancel")
    assert response.status_code == 302
    profile = client.get("/account/profile")
    assert "The email change is cancelled" in profile.text
    assert "Waiting for confirmation" not in profile.text
    assert client.post_form(path).status_code == 404
    assert stored(acme_user.id).email == "alice@acme.test"
    assert "account.email_change_cancel" in [e.action for e in rows(AuditEvent)]


@FUZZ
@given(name=names, new_email=emailish, password=st.one_of(st.just(PASSWORD), text))
def test_profile_forms_input_never_breaks_anything(
    app: Flask, acme: Partner, acme_user: User, name: str, new_email: str, password: str
) -> None:
    client = logged_in(app, "alice@acme.test")
    before_name = stored(acme_user.id).display_name
    response = client.post_form("/account/profile", {"display_name": name})
    assert response.status_code in (302, 400, 422), response.status_code
    event(f"profile {response.status_code}")
    expected = " ".join(name.split()) if response.status_code == 302 else before_name
    assert stored(acme_user.id).display_name == expected

    users, tokens, mails, events = counts()
    response = request_change(client, new_email, password)
    assert response.status_code in (302, 400, 422), response.status_code
    event(f"email {response.status_code}")
    after = counts()
    if response.status_code in (400, 422):
        assert after == (users, tokens, mails, events)
    else:  # a link or a notice, nothing when a mail limit is reached, or the link on its way
        assert after[0] == users
        assert after[1:3] in ((tokens + 1, mails + 1), (tokens + 1, mails), (tokens, mails))
    assert stored(acme_user.id).email == "alice@acme.test"


# --- Password change --------------------------------------------------------------------------


def change_password(client: HostClient, current: str, new: str = NEW_PASSWORD, confirm=None):
    return client.post_form(
        "/account/password",
        {"current_password": current, "password": new, "confirm": confirm or new},
    )


def test_password_change_ends_the_other_sessions_only(app: Flask, acme_user: User) -> None:
    phone = logged_in(app, "alice@acme.test")
    laptop = logged_in(app, "alice@acme.test")
    assert laptop.get("/account/password").status_code == 200
    response = change_password(laptop, PASSWORD)
    assert response.status_code == 302 and response.headers["Location"] == "/account/password"
    page = laptop.get("/account/password")
    assert page.status_code == 200
    assert "Your password has been changed. 1 other session was signed out." in page.text
    assert phone.get("/").status_code == 302  # the other device is signed out
    sessions = {s.revoked_reason for s in rows(UserSession, user_id=acme_user.id)}
    assert sessions == {None, "password change"}
    assert verify_password(stored(acme_user.id).password_hash, NEW_PASSWORD)
    assert last_mail("alice@acme.test").subject.startswith("Your password was changed")
    assert "account.password_change" in [e.action for e in rows(AuditEvent)]
    assert host_client(app, "acme").login("alice@acme.test", NEW_PASSWORD).status_code == 302


@pytest.mark.parametrize(
    ("current", "new", "confirm", "field", "message"),
    [
        ("wrong-password-here", NEW_PASSWORD, None, "current_password", "Your current password"),
        (PASSWORD, "short", None, "password", "Use at least 10 characters."),
        (PASSWORD, NEW_PASSWORD, "something-else-1", "confirm", "The two passwords are not"),
        (PASSWORD, PASSWORD, None, "password", "Choose a password different"),
        ("", NEW_PASSWORD, None, "current_password", "Enter your current password."),
        (PASSWORD, "password1234", None, "password", "This password is one of the most common"),
        (PASSWORD, "Dragon2026!!", None, "password", "This password is one of the most common"),
        (PASSWORD, "alice-in-wonderland", None, "password", "A password must not contain"),
        (PASSWORD, "we-love-acme-corp", None, "password", "A password must not contain"),
    ],
)
def test_password_change_errors_in_place(
    app: Flask, acme_user: User, current, new, confirm, field, message
) -> None:
    phone = logged_in(app, "alice@acme.test")
    client = logged_in(app, "alice@acme.test")
    before = counts()
    response = change_password(client, current, new, confirm)
    assert response.status_code == 422
    assert field_errors(response.text)[field].startswith(message)
    assert counts() == before
    assert verify_password(stored(acme_user.id).password_hash, PASSWORD)
    assert phone.get("/").status_code == 200
    assert mails_to("alice@acme.test") == []


def test_a_role_without_profile_edit_gets_403(app: Flask, acme: Partner, acme_user: User) -> None:
    with partner_scope(acme):
        db.session.add(RoleSetting(role=Role.BASIC, label="Basic", permissions=["portal.view"]))
        db.session.commit()
    client = logged_in(app, "alice@acme.test")
    assert 'href="/account/profile"' not in client.get("/").text
    assert client.get("/account/profile").status_code == 403
    assert change_password(client, PASSWORD).status_code == 403
    assert verify_password(stored(acme_user.id).password_hash, PASSWORD)
