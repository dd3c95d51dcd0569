"""Email that is never lost: stored with the action, delivered after commit by the mail
worker, against a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from conftest import host_client, rows
from flask import Flask
from racing import WAIT

from portal import unit_of_work
from portal.audit.models import AuditEvent
from portal.auth.passwords import hash_password
from portal.extensions import db
from portal.mail.models import MailStatus, OutboxMessage
from portal.mail.services import send_email
from portal.operator.models import Operator
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.users.models import User

PASSWORD = "correct-horse-battery"


class Inbox:
    """What the SMTP server accepted."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd calls it so
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpServer:
    def __init__(self) -> None:
        self.port = _free_port()
        self.inbox = Inbox()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mail_app(make_app, smtp: SmtpServer, data: Flask) -> Flask:
    return make_app(SMTP_URL=smtp.url, SMTP_TIMEOUT=2, MAIL_MAX_ATTEMPTS=3)


def run_worker(app: Flask) -> str:
    result = app.test_cli_runner().invoke(args=["mail", "worker", "--once"])
    assert result.exit_code == 0, result.output
    return result.output


def forgot(app: Flask, email: str):
    client = host_client(app, "acme")
    return client.post_form("/password/forgot", {"email": email})


def test_a_message_is_delivered_once_after_commit(
    mail_app: Flask, smtp: SmtpServer, acme_user: User
) -> None:
    assert forgot(mail_app, "alice@acme.test").status_code in (200, 302)
    [message] = rows(OutboxMessage)
    assert message.status == MailStatus.PENDING and smtp.inbox.messages == []
    run_worker(mail_app)
    [(to, content)] = smtp.inbox.messages
    assert to == ["alice@acme.test"]
    assert b"/password/reset/" in content
    [message] = rows(OutboxMessage)
    assert message.status == MailStatus.SENT and message.attempts == 1 and message.sent_at
    run_worker(mail_app)  # nothing is due any more: never a second copy
    assert len(smtp.inbox.messages) == 1


def test_retried_after_an_outage_then_failed_for_good(
    mail_app: Flask, smtp: SmtpServer, acme_user: User, frozen_clock
) -> None:
    smtp.stop()
    forgot(mail_app, "alice@acme.test")
    run_worker(mail_app)
    [message] = rows(OutboxMessage)
    assert message.status == MailStatus.PENDING and message.attempts == 1
    assert "ConnectionRefused" in (message.error or "")
    assert message.next_attempt_at == frozen_clock.now() + timedelta(seconds=60)
    smtp.start()
    run_worker(mail_app)  # not due yet: the backoff holds
    assert smtp.inbox.messages == []
    frozen_clock.advance(timedelta(seconds=61))
    run_worker(mail_app)
    assert len(smtp.inbox.messages) == 1
    [message] = rows(OutboxMessage)
    assert message.status == MailStatus.SENT and message.attempts == 2


def test_an_smtp_server_whose_name_resolves_too_slowly_is_retried_later(
    make_app, data: Flask, acme_user: User, frozen_clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SMTP timeout bounds the name lookup too: the worker moves on (and retries with
    backoff) instead of waiting out the resolver's retries with messages leased."""
    entered, release, finished = threading.Event(), threading.Event(), threading.Event()
    real = socket.getaddrinfo

    def lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "slow-smtp.example.com":
            return real(host, *args, **kwargs)
        entered.set()
        try:
            assert release.wait(WAIT), "the test never released the lookup"
            return real("127.0.0.1", *args, **kwargs)
        finally:
            finished.set()

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    app = make_app(SMTP_URL="smtp://slow-smtp.example.com:2525", SMTP_TIMEOUT=0.25)
    try:
        forgot(app, "alice@acme.test")
        began = time.monotonic()
        run_worker(app)
        took = time.monotonic() - began
        assert entered.is_set() and not finished.is_set()  # the lookup still hangs
    finally:
        release.set()
    assert finished.wait(WAIT)  # and ends on its own thread once the resolver answers
    assert 0.25 <= took < 2.5
    [message] = rows(OutboxMessage)
    assert message.status == MailStatus.PENDING and message.attempts == 1
    assert message.error == (
        "TimeoutError: the SMTP server's name slow-smtp.example.com could not be resolved "
        "within 0.25 s"
    )
    assert message.next_attempt_at == frozen_clock.now() + timedelta(seconds=60)


def test_failed_after_every_attempt_and_retried_by_an_operator(
    mail_app: Flask, smtp: SmtpServer, acme_user: User, frozen_clock
) -> None:
    smtp.stop()
    forgot(mail_app, "alice@acme.test")
    for delay in (0, 60, 120):  # MAIL_MAX_ATTEMPTS=3: 60 s, then 120 s between them
        frozen_clock.advance(timedelta(seconds=delay + 1))
        run_worker(mail_app)
    [message] = rows(OutboxMessage)
    assert message.status == MailStatus.FAILED and message.attempts == 3
    frozen_clock.advance(timedelta(hours=2))
    run_worker(mail_app)
    assert rows(OutboxMessage)[0].attempts == 3  # failed stays failed

    db.session.add(Operator(email="op@portal.test", password_hash=hash_password(PASSWORD)))
    db.session.commit()
    console = host_client(mail_app, None)
    assert console.login("op@portal.test").status_code == 302
    page = console.get("/operator/mail").get_data(as_text=True)
    assert "alice@acme.test" in page and "ConnectionRefused" in page
    smtp.start()
    retried = console.post_form(f"/operator/mail/{message.id}/retry", follow_redirects=True)
    assert "is queued again" in retried.get_data(as_text=True), retried.get_data(as_text=True)[
        -2500:
    ]
    assert "No failed messages." in retried.get_data(as_text=True)
    again = console.post_form(f"/operator/mail/{message.id}/retry", follow_redirects=True)
    assert "has not failed" in again.get_data(as_text=True)
    run_worker(mail_app)
    assert len(smtp.inbox.messages) == 1
    assert rows(OutboxMessage)[0].status == MailStatus.SENT
    assert len(rows(AuditEvent, action="mail.retry")) == 1


def test_nothing_is_sent_for_a_rolled_back_action(
    mail_app: Flask, smtp: SmtpServer, acme: Partner
) -> None:
    with mail_app.test_request_context("/", base_url="http://acme.localhost"), partner_scope(acme):
        from flask import g

        g.partner = acme
        send_email("alice@acme.test", "Welcome", "invitation", link="http://x", role="basic")
        unit_of_work.rollback()
    run_worker(mail_app)
    assert rows(OutboxMessage) == [] and smtp.inbox.messages == []


def test_no_request_waits_on_smtp(make_app, data: Flask, acme_user: User) -> None:
    """The SMTP server listens but never answers: the page is not held, no connection is
    even opened by the request; the message waits for the worker."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(5)
    silent.setblocking(False)
    try:
        app = make_app(SMTP_URL=f"smtp://127.0.0.1:{silent.getsockname()[1]}", SMTP_TIMEOUT=1)
        assert forgot(app, "alice@acme.test").status_code in (200, 302)
        with pytest.raises(BlockingIOError):
            silent.accept()  # nobody connected
        [message] = rows(OutboxMessage)
        assert message.status == MailStatus.PENDING
        # The worker's own attempt is bounded by the SMTP timeout and counted as a failure.
        run_worker(app)
        [message] = rows(OutboxMessage)
        assert message.status == MailStatus.PENDING and message.attempts == 1
        assert "timed out" in (message.error or "")
    finally:
        silent.close()


def test_without_smtp_mail_is_kept_in_the_outbox_only(app: Flask, acme_user: User) -> None:
    forgot(app, "alice@acme.test")
    [message] = rows(OutboxMessage)
    assert message.status == MailStatus.KEPT
    result = app.test_cli_runner().invoke(args=["mail", "worker", "--once"])
    assert result.exit_code == 1 and "PORTAL_SMTP_URL is not set" in result.output
