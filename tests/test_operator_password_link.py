"""`flask operator create EMAIL --link` and `flask operator link EMAIL`: a new operator chooses
their own password through a one-time link, so no password is typed on a command line (where
the shell's history keeps it) or chosen by someone else."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from browser import LiveServer
from conftest import PASSWORD, host_client, rows
from flask import Flask
from racing import race, results, skip_unless_racing

from portal.audit.models import AuditEvent
from portal.operator.models import Operator
from portal.sessions.models import OperatorSession

LINK_RE = re.compile(r"http://localhost(?::\d+)?(/operator/password/\S+)")
NEW_PASSWORD = "a-password-of-her-own"


def link_of(output: str) -> str:
    match = LINK_RE.search(output)
    assert match, output
    return match.group(1)


def create_with_link(app: Flask, email: str = "Ops@Portal.test") -> str:
    result = app.test_cli_runner().invoke(
        args=["operator", "create", email, "--name", "Olga Ops", "--link"]
    )
    assert result.exit_code == 0, result.output
    assert "Password for the new operator" not in result.output  # nothing prompted
    assert "works once, until 2026-" in result.output
    return link_of(result.output)


def choose(client: Any, path: str, password: str, confirm: str | None = None) -> Any:
    return client.post_form(path, {"password": password, "confirm": confirm or password})


def test_a_new_operator_chooses_their_password_through_the_link(app: Flask, data: Flask) -> None:
    path = create_with_link(app)
    [operator] = rows(Operator)
    assert (operator.email, operator.display_name) == ("ops@portal.test", "Olga Ops")
    root = host_client(app, None)
    # Nobody knows the password the account starts with.
    assert root.login("ops@portal.test", "").status_code != 302

    page = root.get(path)
    assert page.status_code == 200 and "ops@portal.test" in page.text
    short = choose(root, path, "short")
    assert short.status_code == 422 and "at least 10 characters" in short.text
    differ = choose(root, path, NEW_PASSWORD, "something-else-entirely")
    assert differ.status_code == 422 and "not the same" in differ.text
    common = choose(root, path, "1q2w3e4r5t6y")
    assert common.status_code == 422 and "one of the most common" in common.text
    own = choose(root, path, "my-portal-passphrase")  # a word of their own address
    assert own.status_code == 422 and "must not contain" in own.text

    done = choose(root, path, NEW_PASSWORD)
    assert done.status_code == 302 and done.headers["Location"] == "/login"
    login_page = root.get("/login").text
    assert "Your password is set. Sign in with it." in login_page
    assert 'value="ops@portal.test"' in login_page
    assert root.login("ops@portal.test", NEW_PASSWORD).status_code == 302
    assert "Partners" in root.get("/operator/").text

    # Used up: the link now answers like any invalid one.
    again = host_client(app, None).get(path)
    assert again.status_code == 404 and "invalid or has expired" in again.text
    assert choose(host_client(app, None), path, "yet-another-password").status_code == 404
    assert [e.action for e in rows(AuditEvent) if e.action.startswith("operator.")] == [
        "operator.create",
        "operator.password_link",
        "operator.password_set",
        "operator.login",
    ]
    [created] = rows(AuditEvent, action="operator.create")
    assert created.details == {"email": "ops@portal.test", "password": "by link"}


def test_the_link_expires_is_tamper_proof_and_dies_with_the_operator(
    app: Flask, data: Flask, frozen_clock: Any
) -> None:
    path = create_with_link(app)
    root = host_client(app, None)
    assert root.get(path[:-2] + ("AA" if not path.endswith("AA") else "BB")).status_code == 404
    assert root.get("/operator/password/not-a-link").status_code == 404
    frozen_clock.advance(timedelta(hours=24))
    assert root.get(path).status_code == 404

    runner = app.test_cli_runner()
    fresh = runner.invoke(args=["operator", "link", "ops@portal.test"])
    assert fresh.exit_code == 0, fresh.output
    new_path = link_of(fresh.output)
    assert root.get(new_path).status_code == 200
    assert runner.invoke(args=["operator", "deactivate", "ops@portal.test"]).exit_code == 0
    assert root.get(new_path).status_code == 404
    refused = runner.invoke(args=["operator", "link", "ops@portal.test"])
    assert refused.exit_code == 1 and "deactivated" in refused.output
    unknown = runner.invoke(args=["operator", "link", "nobody@portal.test"])
    assert unknown.exit_code == 1 and "There is no operator nobody@portal.test" in unknown.output


def test_a_link_for_a_forgotten_password_ends_the_old_sessions(app: Flask, data: Flask) -> None:
    runner = app.test_cli_runner()
    created = runner.invoke(
        args=["operator", "create", "ops@portal.test"], input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert created.exit_code == 0, created.output
    elsewhere = host_client(app, None)
    assert elsewhere.login("ops@portal.test").status_code == 302
    path = link_of(runner.invoke(args=["operator", "link", "ops@portal.test"]).output)
    # The old password still works until the new one is chosen.
    assert host_client(app, None).login("ops@portal.test").status_code == 302
    assert choose(host_client(app, None), path, NEW_PASSWORD).status_code == 302
    assert elsewhere.get("/operator/").status_code == 302
    assert {s.revoked_reason for s in rows(OperatorSession)} == {"password set"}
    # The other device is told why it was signed out.
    told = elsewhere.get("/operator/", follow_redirects=True).text
    assert "Your password was set with a link, so this device was signed out." in told
    assert host_client(app, None).login("ops@portal.test").status_code != 302


def test_password_and_link_together_are_refused(app: Flask, data: Flask) -> None:
    result = app.test_cli_runner().invoke(
        args=["operator", "create", "ops@portal.test", "--link", "--password", PASSWORD]
    )
    assert result.exit_code == 2 and "not both" in result.output
    assert rows(Operator) == []


def test_two_uses_of_one_link_at_once_set_one_password(
    make_app: Any, data: Flask, app: Flask
) -> None:
    skip_unless_racing()
    path = create_with_link(app)
    apps = [make_app(), make_app()]
    clients = [host_client(a, None) for a in apps]
    tokens = [c.csrf_token(path) for c in clients]
    chosen = ["first-password-chosen", "second-password-chosen"]

    def post(index: int) -> Any:
        form = {"password": chosen[index], "confirm": chosen[index], "csrf_token": tokens[index]}
        return clients[index].post(path, data=form)

    responses = results(race(apps, post))
    codes = sorted(r.status_code for r in responses)
    assert codes in ([302, 404], [302, 409]), [r.text for r in responses]
    winner = chosen[[r.status_code for r in responses].index(302)]
    loser = chosen[1 - chosen.index(winner)]
    assert host_client(app, None).login("ops@portal.test", winner).status_code == 302
    assert host_client(app, None).login("ops@portal.test", loser).status_code != 302
    assert len(rows(AuditEvent, action="operator.password_set")) == 1


@pytest.mark.browser
def test_the_link_works_in_the_browser(live_server: LiveServer, page: Any) -> None:
    path = create_with_link(live_server.server.app)
    page.goto(live_server.url(None, path))
    assert page.locator("h1").inner_text() == "Choose your password"
    page.fill("#password", NEW_PASSWORD)
    page.fill("#confirm", NEW_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url(None, "/login"))
    assert "Your password is set. Sign in with it." in page.content()
    assert page.input_value("#email") == "ops@portal.test"
    page.fill("#password", NEW_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url(None, "/operator/"))
    assert "Partners" in page.content()


def test_the_link_only_on_the_root_domain_with_csrf_no_store_and_no_referrer(
    app: Flask, data: Flask, acme: Any
) -> None:
    path = create_with_link(app)
    # On a partner's host the operator's page does not exist, for a GET or a POST.
    on_partner = host_client(app, "acme")
    assert on_partner.get(path).status_code == 404
    assert choose(on_partner, path, NEW_PASSWORD).status_code == 404

    root = host_client(app, None)
    page = root.get(path)
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    refused = root.get(path.removesuffix(path[-4:]) + "AAAA")
    assert refused.headers["Cache-Control"] == "no-store"
    assert refused.headers["Referrer-Policy"] == "no-referrer"
    # Without the form's CSRF token the POST is refused and the link stays usable.
    forged = root.post(path, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert forged.status_code == 400
    # Only spaces, or far too long: refused in place, nothing set.
    assert choose(root, path, " " * 12).status_code == 422
    assert choose(root, path, "x" * 5000).status_code == 422
    assert rows(AuditEvent, action="operator.password_set") == []
    assert choose(root, path, NEW_PASSWORD).status_code == 302


def test_a_link_dies_when_another_link_set_the_password(app: Flask, data: Flask) -> None:
    first = create_with_link(app)
    runner = app.test_cli_runner()
    second = link_of(runner.invoke(args=["operator", "link", "ops@portal.test"]).output)
    root = host_client(app, None)
    assert root.get(first).status_code == 200 and root.get(second).status_code == 200
    assert choose(root, second, NEW_PASSWORD).status_code == 302
    # The password it was issued against is gone: the older link is used up as well.
    stale = host_client(app, None)
    assert stale.get(first).status_code == 404
    assert stale.get(second).status_code == 404
    assert choose(stale, first, "another-password-now").status_code == 404
    assert host_client(app, None).login("ops@portal.test", NEW_PASSWORD).status_code == 302
