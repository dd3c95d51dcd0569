"""Page numbers from the address bar, whatever they hold, never give a 500, and the count of
a filtered list is the same on every page, past the end too, with no other partner's rows."""

from __future__ import annotations

import pytest
from conftest import logged_in, make_user
from flask import Flask

from portal.roles.models import Role
from portal.tenancy.models import Partner
from portal.users.models import User

ODD_PAGES = ["-1", "0", "abc", "1e3", "9" * 30, "9" * 5000, "", "2.5", "99"]


@pytest.fixture
def admin(app: Flask, acme: Partner, globex: Partner, acme_admin: User):
    for n in range(3):
        make_user(acme, f"basic{n}@acme.test")
    make_user(acme, "adv@acme.test", role=Role.ADVANCED)
    for n in range(4):
        make_user(globex, f"basic{n}@globex.test")
    return logged_in(app, acme_admin)


@pytest.mark.parametrize("page", ODD_PAGES)
def test_the_user_list_counts_its_filter_on_any_page(admin, page: str) -> None:
    answer = admin.get(f"/admin/users/?role=basic&sort=created&direction=desc&page={page}")
    assert answer.status_code == 200
    assert "3 users match." in answer.text
    assert "globex" not in answer.text
    everyone = admin.get(f"/admin/users/?page={page}")
    assert everyone.status_code == 200 and "5 users." in everyone.text


@pytest.mark.parametrize("page", ODD_PAGES)
def test_the_other_admin_lists_take_any_page(admin, page: str) -> None:
    for path in ("/admin/subscriptions/?state=signed&", "/admin/audit/?", "/admin/sessions/?"):
        answer = admin.get(f"{path}page={page}")
        assert answer.status_code == 200, (path, answer.status_code)
    subs = admin.get(f"/admin/subscriptions/?plan=12&email=x&page={page}")
    assert subs.status_code == 200 and "0 subscriptions (all but ended)." in subs.text


def test_a_nul_in_the_page_number_is_a_clear_400(admin) -> None:
    for path in ("/admin/users/", "/admin/subscriptions/", "/admin/audit/"):
        answer = admin.get(f"{path}?page=%00")
        assert answer.status_code in (200, 400), (path, answer.status_code)
    assert admin.get("/admin/users/?page=%00").status_code == 400
