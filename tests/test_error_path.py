"""The error path cannot fail: after a failed write, with the database gone, for htmx too.

Every 500 gives the partner's branded page with a reference to quote, the security headers,
and exactly one JSON log line with the traceback and the same request id.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from conftest import host_client, logged_in, rows
from flask import Flask

from portal.sessions.models import UserSession
from portal.tenancy.models import Partner
from portal.users import services as user_services
from portal.users.models import User


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What the portal's JSON log handler writes, for this test."""
    [handler] = [h for h in logging.getLogger("portal").handlers if getattr(h, "_portal", False)]
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)


def entries(buffer: io.StringIO) -> list[dict]:
    """The lines about what went wrong: not the access line every request writes, nor the
    audit lines (tests/test_ops.py reads those)."""
    found = [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
    return [e for e in found if e["logger"] not in ("portal.request", "portal.audit")]


@pytest.fixture
def serving(make_app, data: Flask) -> Flask:
    """An app that handles unexpected errors as in production (tests usually re-raise them)."""
    return make_app(PROPAGATE_EXCEPTIONS=False)


def broken_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug: the invitation stores an address the database's CHECK constraint refuses."""
    monkeypatch.setattr(user_services, "clean_email", lambda email: email.strip().upper())


def test_a_failed_write_gives_a_branded_500_with_a_reference(
    serving: Flask, acme: Partner, acme_admin: User, log_lines, monkeypatch
) -> None:
    admin = logged_in(serving, acme_admin)
    token = admin.csrf_token("/")
    broken_write(monkeypatch)
    log_lines.seek(0)
    log_lines.truncate(0)
    response = admin.post(
        "/admin/users/invite",
        data={"email": "new@acme.test", "role": "basic", "csrf_token": token},
        headers={"X-Request-ID": "trace-failed-write-1"},
    )
    assert response.status_code == 500
    assert response.headers["X-Request-ID"] == "trace-failed-write-1"
    page = response.text
    assert "Something went wrong" in page and "Acme Corp" in page  # the partner's page
    assert "trace-failed-write-1" in page and "Traceback" not in page
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    lines = [e for e in entries(log_lines) if e.get("request_id") == "trace-failed-write-1"]
    assert len(lines) == 1, lines
    [line] = lines
    assert line["level"] == "ERROR" and line["partner"] == "acme"
    assert line["user"] == f"user:{acme_admin.id}"
    assert "IntegrityError" in line["exception"]
    assert rows(User, email="NEW@ACME.TEST") == [] and rows(User, email="new@acme.test") == []
    # The next request of the same admin works as ever.
    assert admin.get("/admin/users/").status_code == 200


def test_htmx_gets_the_reference_as_text(
    serving: Flask, acme: Partner, acme_admin: User, log_lines, monkeypatch
) -> None:
    admin = logged_in(serving, acme_admin)
    token = admin.csrf_token("/")
    broken_write(monkeypatch)
    response = admin.post(
        "/admin/users/invite",
        data={"email": "new@acme.test", "role": "basic", "csrf_token": token},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 500 and "<html" not in response.text
    assert f"reference {response.headers['X-Request-ID']}" in response.text


def test_a_lost_race_on_a_unique_key_is_a_conflict_not_a_500(
    serving: Flask, acme: Partner, acme_admin: User, log_lines, monkeypatch
) -> None:
    """The existence check missed (as in a race): the unique index decides, clearly."""
    admin = logged_in(serving, acme_admin)
    token = admin.csrf_token("/")
    monkeypatch.setattr(user_services, "user_by_email", lambda _email: None)
    monkeypatch.setattr(user_services, "hold_partner", lambda *_args: None)
    response = admin.post(
        "/admin/users/invite",
        data={"email": "root@acme.test", "role": "basic", "csrf_token": token},
    )
    assert response.status_code == 409
    assert "root@acme.test was just invited by someone else." in response.text
    assert [e for e in entries(log_lines) if e["level"] == "ERROR"] == []


def test_database_outage_pages_carry_the_request_id(
    make_app, data: Flask, tmp_path, log_lines
) -> None:
    down = make_app(
        fresh=True, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/missing/dir/db.sqlite3"
    )
    page = host_client(down, "acme").get("/login", headers={"X-Request-ID": "trace-outage-1"})
    assert page.status_code == 503
    assert page.headers["X-Request-ID"] == "trace-outage-1"
    assert "trace-outage-1" in page.text and "Temporarily unavailable" in page.text
    assert page.headers["X-Frame-Options"] == "DENY"
    [line] = [e for e in entries(log_lines) if e.get("request_id") == "trace-outage-1"]
    assert line["partner"] == "acme" and line["message"].startswith("database unavailable")


def test_refusals_are_on_the_record(
    serving: Flask, acme: Partner, globex: Partner, acme_user: User, log_lines
) -> None:
    """A 403, another partner's id and a missing CSRF token each write a log line with the
    request id, partner and user; log times are UTC."""
    from conftest import make_user

    gus = make_user(globex, "gus@globex.test")
    logged_in(serving, gus)
    [gus_session] = rows(UserSession, user_id=gus.id)
    alice = logged_in(serving, acme_user)
    log_lines.seek(0)
    log_lines.truncate(0)
    forbidden = alice.get("/admin/users/", headers={"X-Request-ID": "trace-403-0001"})
    foreign = alice.post_form(  # globex's session id on acme's host
        f"/account/sessions/{gus_session.id}/revoke", headers={"X-Request-ID": "trace-404-0001"}
    )
    no_token = alice.post("/account/profile", headers={"X-Request-ID": "trace-csrf-001"})
    assert (forbidden.status_code, foreign.status_code, no_token.status_code) == (403, 404, 400)
    logged = {e.get("request_id"): e for e in entries(log_lines)}
    assert "refused: GET /admin/users/" in logged["trace-403-0001"]["message"]
    assert logged["trace-403-0001"]["user"] == f"user:{acme_user.id}"
    assert "no user_sessions" in logged["trace-404-0001"]["message"]
    assert "CSRF" in logged["trace-csrf-001"]["message"]
    assert all(e["time"].endswith("+00:00") for e in entries(log_lines))
