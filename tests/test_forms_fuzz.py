"""Hypothesis-generated input on the user forms: never a 500, never a partial write."""

from __future__ import annotations

import re

from conftest import host_client, logged_in, rows
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.mail.models import OutboxMessage
from portal.tokens.models import ActionToken
from portal.users.models import User, UserStatus

FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,  # the same examples on every run: a deterministic suite
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=300)
emailish = st.one_of(
    text, st.emails(), st.from_regex(r"[a-zA-Z0-9._%+-]{1,20}@acme\.test", fullmatch=True)
)
roles = st.one_of(st.sampled_from(["guest", "basic", "advanced", "company", "admin"]), text)


def counts() -> tuple[int, int, int]:
    return len(rows(User)), len(rows(OutboxMessage)), len(rows(ActionToken))


@FUZZ
@given(email=emailish, name=text, role=roles)
def test_invite_form(app: Flask, acme_admin: User, email: str, name: str, role: str) -> None:
    client = logged_in(app, acme_admin)
    users, mails, tokens = counts()
    response = client.post_form(
        "/admin/users/invite", {"email": email, "display_name": name, "role": role}
    )
    assert response.status_code in (302, 400, 422), response.status_code
    if response.status_code == 302:
        assert counts() == (users + 1, mails + 1, tokens + 1)
        newest = max(rows(User), key=lambda u: u.id)
        assert newest.status == UserStatus.INVITED and newest.email == newest.email.lower()
    else:
        assert counts() == (users, mails, tokens)


@FUZZ
@given(name=text, password=text, confirm=text)
def test_accept_invitation_form(
    app: Flask, acme_admin: User, name: str, password: str, confirm: str
) -> None:
    admin = logged_in(app, acme_admin)
    address = f"fuzz{len(rows(User))}@acme.test"
    assert (
        admin.post_form("/admin/users/invite", {"email": address, "role": "basic"}).status_code
        == 302
    )
    [mail] = rows(OutboxMessage, to_address=address)
    path = re.search(r"/invite/[A-Za-z0-9_-]+", mail.body_text).group(0)
    client = host_client(app, "acme")
    response = client.post_form(
        path, {"display_name": name, "password": password, "confirm": confirm}
    )
    assert response.status_code in (302, 422)
    [user] = rows(User, email=address)
    if response.status_code == 302:
        assert user.status == UserStatus.ACTIVE and user.password_hash
    else:
        assert user.status == UserStatus.INVITED and user.password_hash is None


@FUZZ
@given(
    role=roles,
    ids=st.lists(st.one_of(st.integers(-5, 10**30).map(str), text), max_size=5),
    action=st.one_of(st.sampled_from(["role", "deactivate", "reactivate"]), text),
)
def test_role_and_bulk_forms(
    app: Flask, acme_admin: User, acme_user: User, role, ids, action
) -> None:
    client = logged_in(app, acme_admin)
    before = {u.id: (u.role, u.status) for u in rows(User)}
    single = client.post_form(f"/admin/users/{acme_user.id}/role", {"role": role})
    assert single.status_code in (302, 400)
    middle = {u.id: (u.role, u.status) for u in rows(User)}
    changed = {uid for uid in before if middle.get(uid) != before[uid]}
    assert changed <= ({acme_user.id} if single.status_code == 302 else set())
    bulk = client.post_form("/admin/users/bulk", {"action": action, "user_ids": ids, "role": role})
    assert bulk.status_code in (200, 400, 403, 422)
    after = {u.id: (u.role, u.status) for u in rows(User)}
    assert set(after) == set(before)
    changed = {uid for uid in middle if after[uid] != middle[uid]}
    if bulk.status_code != 200:
        assert not changed  # a refused request leaves every row as it was
    else:  # only listed users change, and never the acting admin
        listed = {int(i) for i in ids if i.strip().isascii() and i.strip().isdigit()}
        assert changed <= listed - {acme_admin.id}


def test_nul_characters_are_refused_clearly(app: Flask, acme_admin: User) -> None:
    client = logged_in(app, acme_admin)
    before = counts()
    response = client.post_form(
        "/admin/users/invite", {"email": "x@acme.test", "display_name": "a\x00b", "role": "basic"}
    )
    assert response.status_code == 400
    assert "not allowed (NUL)" in response.text
    assert counts() == before
    assert client.get("/admin/users/?q=%00").status_code == 400


def test_control_characters_in_names_are_form_errors(app: Flask, acme_admin: User) -> None:
    client = logged_in(app, acme_admin)
    response = client.post_form(
        "/admin/users/invite", {"email": "x@acme.test", "display_name": "a\x07b", "role": "basic"}
    )
    assert response.status_code == 422
    assert "letters, digits, spaces and punctuation" in response.text
    assert rows(User, email="x@acme.test") == []
