"""The developer outbox: the `flask outbox` command and the /dev/outbox page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import HostClient, host_client
from flask import Flask

from portal.extensions import db
from portal.mail.cli import outbox_command
from portal.mail.models import OutboxMessage
from portal.mail.services import send_email
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.users.models import User

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def mail(partner: Partner | None, to: str, subject: str, body: str, html: str = "<p>hi</p>"):
    message = OutboxMessage(
        partner_id=partner.id if partner else None,
        to_address=to,
        from_address="Portal <no-reply@localhost>",
        subject=subject,
        body_text=body,
        body_html=html,
    )
    if partner is None:
        db.session.add(message)
        db.session.commit()
    else:
        with partner_scope(partner):
            db.session.add(message)
            db.session.commit()
    return message


@pytest.fixture
def two_partners_mail(acme: Partner, globex: Partner, frozen_clock) -> list[OutboxMessage]:
    first = mail(acme, "alice@acme.test", "Reset · Acme", "Open http://acme.localhost/r/abc.")
    frozen_clock.advance(timedelta(minutes=1))
    second = mail(globex, "gus@globex.test", "Hello · Globex", "Plain text for Gus")
    frozen_clock.advance(timedelta(minutes=1))
    third = mail(None, "ops@portal.test", "Platform notice", "For operators")
    return [first, second, third]


# --- Command line -----------------------------------------------------------------------------


def test_cli_lists_the_newest_messages_of_every_partner(
    app: Flask, two_partners_mail: list[OutboxMessage]
) -> None:
    result = app.test_cli_runner().invoke(outbox_command, [])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["ID", "TIME", "(UTC)", "PARTNER", "TO", "SUBJECT"]
    assert "ops@portal.test" in lines[1] and " - " in lines[1]  # platform mail, newest first
    assert "globex" in lines[2] and "gus@globex.test" in lines[2] and "Hello · Globex" in lines[2]
    assert "acme" in lines[3] and "2026-03-02 09:00:00" in lines[3]
    limited = app.test_cli_runner().invoke(outbox_command, ["-n", "1"])
    assert "ops@portal.test" in limited.output and "acme" not in limited.output
    filtered = app.test_cli_runner().invoke(outbox_command, ["--to", "Alice@acme.test"])
    assert "alice@acme.test" in filtered.output and "gus@" not in filtered.output


def test_cli_shows_one_message(app: Flask, two_partners_mail: list[OutboxMessage]) -> None:
    first = two_partners_mail[0]
    result = app.test_cli_runner().invoke(outbox_command, ["--show", str(first.id)])
    assert result.exit_code == 0, result.output
    assert "To:      alice@acme.test" in result.output
    assert "Partner: acme" in result.output
    assert result.output.rstrip().endswith("Open http://acme.localhost/r/abc.")


def test_cli_answers_clearly_for_nothing(app: Flask, data: Flask) -> None:
    runner = app.test_cli_runner()
    assert runner.invoke(outbox_command, []).output.strip() == "The outbox is empty."
    missing = runner.invoke(outbox_command, ["--show", "999"])
    assert missing.exit_code == 1
    assert "There is no outbox message with id 999." in missing.output


def test_cli_is_registered_with_flask(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["outbox", "--help"])
    assert result.exit_code == 0 and "--show ID" in result.output


# --- The page ---------------------------------------------------------------------------------


def test_page_lists_every_partners_mail_with_clickable_links(
    root: HostClient, two_partners_mail: list[OutboxMessage]
) -> None:
    page = root.get("/dev/outbox")
    assert page.status_code == 200
    text = page.text
    assert text.index("Platform notice") < text.index("Hello · Globex") < text.index("Reset · Acme")
    link = 'href="http://acme.localhost/r/abc"'
    assert f'<a {link} rel="noopener noreferrer">http://acme.localhost/r/abc</a>.' in text
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in text
    only = root.get("/dev/outbox?to=gus@globex.test").text
    assert "Hello · Globex" in only and "Reset · Acme" not in only


def test_page_escapes_message_content(root: HostClient, acme: Partner) -> None:
    mail(acme, "eve@acme.test", EVIL, f'{EVIL} http://x.test/"onmouseover="alert(1)', html=EVIL)
    text = root.get("/dev/outbox").text
    assert "<script>alert" not in text
    assert "<img src=x" not in text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in text
    # The quote stays inside the link's address instead of closing the attribute.
    assert 'href="http://x.test/&#34;onmouseover=&#34;alert(1" rel=' in text
    # The HTML body is only ever an escaped srcdoc attribute of a sandboxed frame.
    assert 'srcdoc="&lt;base target=&#34;_blank&#34;&gt;&lt;script&gt;' in text


def test_page_exists_on_the_root_domain_only(app: Flask, acme: Partner) -> None:
    assert host_client(app, "acme").get("/dev/outbox").status_code == 404


def test_page_and_cli_see_real_mail(root: HostClient, acme: Partner, acme_user: User) -> None:
    with partner_scope(acme):
        send_email("alice@acme.test", "Welcome", "password_changed", user=acme_user, reset_link="")
        db.session.commit()
    assert "Welcome · Acme Corp" in root.get("/dev/outbox").text


def test_not_registered_in_production(make_app) -> None:
    production = make_app(PORTAL_ENV="production", SERVER_NAME="localhost")
    assert not any(e.startswith("mail_dev.") for e in production.view_functions)
    assert all(not r.rule.startswith("/dev/") for r in production.url_map.iter_rules())
    assert host_client(production, None).get("/dev/outbox").status_code == 404


def test_development_shows_it_to_this_machine(make_app, data: Flask, acme: Partner) -> None:
    mail(acme, "alice@acme.test", "Reset · Acme", "http://acme.localhost/r/abc")
    development = host_client(make_app(PORTAL_ENV="development"), None)
    for loopback in ("127.0.0.1", "::1"):
        page = development.get("/dev/outbox", environ_base={"REMOTE_ADDR": loopback})
        assert page.status_code == 200 and "Reset · Acme" in page.text


@pytest.mark.parametrize("client_ip", ["10.0.0.5", "192.168.1.20", "203.0.113.9", "2001:db8::1"])
def test_nobody_else_sees_it(
    root: HostClient, two_partners_mail: list[OutboxMessage], client_ip: str
) -> None:
    page = root.get("/dev/outbox", environ_base={"REMOTE_ADDR": client_ip})
    assert page.status_code == 404
    assert "Reset · Acme" not in page.text and "/r/abc" not in page.text


def test_a_forwarded_address_counts_only_behind_a_trusted_proxy(make_app, data: Flask) -> None:
    """Without PORTAL_PROXY_FIX a header cannot make a remote client local, nor the reverse;
    behind a trusted proxy on this machine, the client it names is the one that counts."""
    direct = host_client(make_app(PORTAL_ENV="development"), None)
    local = {"X-Forwarded-For": "127.0.0.1"}
    remote = {"X-Forwarded-For": "203.0.113.9"}
    far = {"REMOTE_ADDR": "203.0.113.9"}
    assert direct.get("/dev/outbox", headers=local, environ_base=far).status_code == 404
    assert direct.get("/dev/outbox", headers=remote).status_code == 200
    proxied = host_client(make_app(PORTAL_ENV="development", PROXY_FIX=1), None)
    assert proxied.get("/dev/outbox", headers=remote).status_code == 404
    assert proxied.get("/dev/outbox", headers=local).status_code == 200
