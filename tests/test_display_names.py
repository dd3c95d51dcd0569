"""Display names: one check behind every form that takes a name, against text that spoofs."""

from __future__ import annotations

import re

import pytest
from conftest import PASSWORD, host_client, logged_in, rows, set_feature
from flask import Flask

from portal.mail.models import OutboxMessage
from portal.tenancy.models import Partner
from portal.users.models import User, UserStatus
from portal.users.services import InvalidName, clean_display_name

# Each reorders or hides text: "Ada\u202enimdA" shows as "AdaAdmin" reversed in a list.
BIDI = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"]
MARKS = ["\u200e", "\u200f", "\u061c"]
INVISIBLE = ["\u200b", "\u2060", "\ufeff", "\u00ad", "\u180e", "\U000e0041", "\u3164", "\u115f"]
# Blank symbols, and variation selectors after a letter (where they change nothing visible).
INVISIBLE += ["\u2800", "\ufe00", "\ufe0f", "\U000e0100", "\u180b"]
REFUSED = BIDI + MARKS + INVISIBLE
# Zero-width non-joiner and joiner: Persian words and emoji sequences need them.
PERSIAN = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # "I want", with a ZWNJ
# A variation selector after a symbol picks its text or emoji form: that is its use.
HEART = "Ada \u2764\ufe0f"
ALLOWED = [PERSIAN, "\U0001f469\u200d\U0001f4bb Dev", "Zoë O'Brien-Łukasz", "李小龍", HEART]
SPOOF_MESSAGE = re.compile(r"Remove the invisible or text-direction character U\+[0-9A-F]{4,5}")


@pytest.mark.parametrize("char", REFUSED, ids=lambda c: f"U+{ord(c):04X}")
def test_text_direction_and_invisible_characters_are_refused(char: str) -> None:
    with pytest.raises(InvalidName) as refused:
        clean_display_name(f"Ada{char}Admin")
    assert f"U+{ord(char):04X}" in refused.value.message
    assert refused.value.status == 422 and refused.value.field == "display_name"


@pytest.mark.parametrize("name", ALLOWED)
def test_joiners_and_ordinary_letters_are_kept(name: str) -> None:
    assert clean_display_name(f"  {name} ") == name


@pytest.mark.parametrize(
    ("value", "required", "expected"),
    [
        ("Ada \t\n  Admin", True, "Ada Admin"),  # any run of white space is one space
        ("Ada\u00a0\u2003Admin", True, "Ada Admin"),
        ("", False, ""),
        ("x" * 120, True, "x" * 120),
    ],
)
def test_white_space_is_collapsed(value: str, required: bool, expected: str) -> None:
    assert clean_display_name(value, required=required) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [("   ", "Enter your name."), ("x" * 121, "Use at most 120 characters."), ("a\x07", "Use")],
)
def test_other_refusals(value: str, message: str) -> None:
    with pytest.raises(InvalidName, match=re.escape(message)):
        clean_display_name(value)


# --- Every form that takes a name -------------------------------------------------------------


def invite(client, name: str, email: str = "new@acme.test"):
    return client.post_form(
        "/admin/users/invite", {"email": email, "display_name": name, "role": "basic"}
    )


def accept(app: Flask, admin, name: str):
    assert invite(admin, "").status_code == 302
    [mail] = rows(OutboxMessage, to_address="new@acme.test")
    path = re.search(r"/invite/[A-Za-z0-9_-]+", mail.body_text).group(0)
    return host_client(app, "acme").post_form(
        path, {"display_name": name, "password": PASSWORD, "confirm": PASSWORD}
    )


def profile(client, name: str):
    return client.post_form("/account/profile", {"display_name": name})


def signup(app: Flask, acme: Partner, name: str):
    set_feature(acme, "self_signup")
    return host_client(app, "acme").post_form(
        "/signup", {"email": "new@acme.test", "display_name": name}
    )


def confirm_signup(app: Flask, acme: Partner, name: str):
    assert signup(app, acme, "New Person").status_code == 302
    [mail] = rows(OutboxMessage, to_address="new@acme.test")
    path = re.search(r"/signup/verify/[A-Za-z0-9_-]+", mail.body_text).group(0)
    return host_client(app, "acme").post_form(
        path, {"display_name": name, "password": PASSWORD, "confirm": PASSWORD}
    )


FORMS = ["invitation", "acceptance", "profile", "sign-up", "sign-up confirmation"]


def names_stored() -> set[str]:
    return {u.display_name for u in rows(User)}


@pytest.mark.parametrize("char", ["\u202e", "\u200b", "\u2066", "\ufeff"], ids=ascii)
@pytest.mark.parametrize("form", FORMS)
def test_every_name_form_refuses_spoofing_characters(
    app: Flask, acme: Partner, acme_admin: User, acme_user: User, form: str, char: str
) -> None:
    admin = logged_in(app, acme_admin)
    before = names_stored()
    name = f"Ada{char}Admin"
    response = {
        "invitation": lambda: invite(admin, name),
        "acceptance": lambda: accept(app, admin, name),
        "profile": lambda: profile(logged_in(app, acme_user), name),
        "sign-up": lambda: signup(app, acme, name),
        "sign-up confirmation": lambda: confirm_signup(app, acme, name),
    }[form]()
    assert response.status_code == 422
    assert SPOOF_MESSAGE.search(response.text), response.text
    assert name not in names_stored()
    # At most the invitation or sign-up that the second step needed.
    assert names_stored() <= before | {"", "New Person"}
    assert all(u.status != UserStatus.ACTIVE for u in rows(User, email="new@acme.test"))


@pytest.mark.parametrize("form", FORMS)
def test_every_name_form_keeps_joiners_and_collapses_spaces(
    app: Flask, acme: Partner, acme_admin: User, acme_user: User, form: str
) -> None:
    admin = logged_in(app, acme_admin)
    name = "\U0001f469\u200d\U0001f4bb  Dev\u200c Person "
    response = {
        "invitation": lambda: invite(admin, name),
        "acceptance": lambda: accept(app, admin, name),
        "profile": lambda: profile(logged_in(app, acme_user), name),
        "sign-up": lambda: signup(app, acme, name),
        "sign-up confirmation": lambda: confirm_signup(app, acme, name),
    }[form]()
    assert response.status_code == 302, response.text
    assert "\U0001f469\u200d\U0001f4bb Dev\u200c Person" in names_stored()
