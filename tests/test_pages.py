"""What pages show around their forms: errors next to the field, tabs, the current section."""

from __future__ import annotations

import re

from conftest import logged_in
from flask import Flask

from portal.users.models import User


def test_plan_form_marks_the_field_at_fault(app: Flask, acme_admin: User) -> None:
    admin = logged_in(app, acme_admin)
    form = {"name": "Gold", "code": "Bad Code!", "price": "1", "currency": "EUR"}
    form |= {"interval": "month", "allowed_roles": ["basic"], "position": "0"}
    page = admin.post_form("/admin/plans/new", form)
    assert page.status_code == 422
    code = re.search(r'<input id="code"[^>]*>', page.text).group(0)
    assert 'aria-invalid="true"' in code and 'aria-describedby="code-error"' in code
    assert re.search(r'id="code-error" class="field-error">Use 2 to 40 lowercase', page.text)
    assert 'check <a href="#code">Code</a>' in page.text
    no_roles = admin.post_form("/admin/plans/new", {**form, "code": "gold", "allowed_roles": []})
    assert re.search(r'<fieldset id="allowed_roles" aria-invalid="true"', no_roles.text)
    assert 'id="allowed_roles-error" class="field-error">Choose at least one role' in no_roles.text


def test_account_tabs_lead_to_the_devices_page(app: Flask, acme_user: User) -> None:
    client = logged_in(app, acme_user)
    profile = client.get("/account/profile").text
    assert 'href="/account/sessions/">Devices</a>' in profile
    devices = client.get("/account/sessions/").text
    assert '<a href="/account/sessions/" aria-current="page">Devices</a>' in devices
    # The header marks the section the page belongs to.
    assert '<a href="/account/profile" aria-current="page">Account</a>' in devices
