"""Templates' url_for takes short cuts (remembered addresses, a row's id put into a kept
pattern, a list's query string encoded directly): each answer must be Flask's own."""

from __future__ import annotations

import flask
import pytest
from conftest import SERVER_NAME
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal import template_urls
from portal.tenancy.models import Partner

CALLS = [
    ("home.index", {}),
    ("static", {"filename": "css/portal.css"}),
    ("auth.login", {}),
    ("operator.index", {}),  # the root domain's, from a partner host: another origin
    ("users_admin.detail", {"user_id": 0}),
    ("users_admin.detail", {"user_id": 12345}),
    ("users_admin.index", {"page": 3}),  # one number that goes to the query string
    ("users_admin.index", {"q": "a b&c=d/é%+#?", "sort": "email", "page": 2}),
    ("users_admin.index", {"q": "", "role": "admin", "direction": "desc"}),
    ("users_admin.index", {"_anchor": "top"}),
    ("users_admin.index", {"_external": True}),
    ("users_admin.detail", {"user_id": 7, "tab": "sessions"}),
    ("support.index", {"q": "x", "page": 1}),
    ("subscriptions_admin.index", {"state": "signed"}),
    ("branding.logo", {"digest": "a" * 64}),
]


@pytest.mark.parametrize(("endpoint", "values"), CALLS)
@pytest.mark.parametrize("slug", ["acme", None])
def test_the_short_cuts_answer_as_flask_does(
    app: Flask, acme: Partner, endpoint: str, values: dict, slug: str | None
) -> None:
    host = f"{slug}.{SERVER_NAME}" if slug else SERVER_NAME
    answers = []
    for _ in range(2):  # the first builds what is kept, the second uses it
        with app.test_request_context("/", base_url=f"http://{host}/"):
            app.preprocess_request()
            try:
                expected = flask.url_for(endpoint, **values)
            except Exception as error:  # the same refusal either way
                with pytest.raises(type(error)):
                    template_urls.url_for(endpoint, **values)
                continue
            answers.append(template_urls.url_for(endpoint, **values))
            assert answers[-1] == expected


@settings(
    max_examples=60,
    derandomize=True,
    deadline=None,  # the machine's load, not the code, sets how long an example takes
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    q=st.text(max_size=12),
    page=st.integers(min_value=0, max_value=10**12),
    user_id=st.integers(min_value=0, max_value=10**18),
)
def test_any_text_and_number_answer_as_flask_does(
    app: Flask, acme: Partner, q: str, page: int, user_id: int
) -> None:
    with app.test_request_context("/", base_url=f"http://acme.{SERVER_NAME}/"):
        app.preprocess_request()
        for endpoint, values in (
            ("users_admin.index", {"q": q, "page": page}),
            ("users_admin.detail", {"user_id": user_id}),
        ):
            assert template_urls.url_for(endpoint, **values) == flask.url_for(endpoint, **values)


def test_what_is_kept_per_host(app: Flask, acme: Partner) -> None:
    """The list's links come from what is kept: a second request builds no URL through
    Werkzeug for them."""
    kept = app.extensions["portal_template_urls"]
    with app.test_request_context("/", base_url=f"http://acme.{SERVER_NAME}/"):
        app.preprocess_request()
        template_urls.url_for("users_admin.detail", user_id=1)
        template_urls.url_for("users_admin.index", q="x", page=2)
    host = f"http://acme.{SERVER_NAME}/"
    assert kept[(host, "users_admin.detail", "user_id")] == ("/admin/users/", "")
    assert kept[(host, "users_admin.index")] == "/admin/users/"


@pytest.mark.parametrize("slug", ["acme", None])
def test_row_links_answer_as_flask_does(app: Flask, acme: Partner, slug: str | None) -> None:
    """A list's row links, on a partner's host and on the root domain (where a partner's page
    has no address: the same refusal)."""
    host = f"{slug}.{SERVER_NAME}" if slug else SERVER_NAME
    with app.test_request_context("/", base_url=f"http://{host}/"):
        app.preprocess_request()
        for number in (0, 7, 10**18):
            try:
                expected = flask.url_for("audit_admin.detail", event_id=number)
            except Exception as error:
                with pytest.raises(type(error)):
                    template_urls.row_links("audit_admin.detail", "event_id")(number)
                continue
            link = template_urls.row_links("audit_admin.detail", "event_id")
            assert link(number) == expected == f"/admin/audit/{number}"
