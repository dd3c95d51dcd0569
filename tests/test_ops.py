"""Running it in production: request log lines, /metrics, `flask operator`, gunicorn."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import PASSWORD, host_client, make_user, rows, set_feature
from flask import Flask
from test_mail_worker import SmtpServer, run_worker
from test_subscriptions import plan
from test_support import acting_as

from portal.audit.models import AuditEvent
from portal.audit.services import record_audit
from portal.auth.passwords import hash_password
from portal.extensions import db
from portal.mail.models import MailStatus
from portal.observability import JsonFormatter
from portal.operator.models import Operator
from portal.sessions.models import OperatorSession
from portal.subscriptions.models import Subscription, SubscriptionState
from portal.tenancy.models import Partner
from portal.tenancy.scope import partner_scope
from portal.users.models import User

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "metrics-token-for-tests-0123456789"


def json_lines(caplog: pytest.LogCaptureFixture) -> list[dict]:
    """Every record as the JSON line the portal writes on stderr."""
    formatter = JsonFormatter()
    return [json.loads(formatter.format(record)) for record in caplog.records]


# --- Request log ---------------------------------------------------------------------------


def test_each_request_writes_one_json_line_with_request_id_and_partner(
    acme_client, acme_user: User, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    acme_client.login("alice@acme.test")
    caplog.clear()
    response = acme_client.get("/account/profile", headers={"X-Request-ID": "req-1234abcd"})
    assert response.status_code == 200
    [line] = [e for e in json_lines(caplog) if e["logger"] == "portal.request"]
    assert line["request_id"] == "req-1234abcd" == response.headers["X-Request-ID"]
    assert line["partner"] == "acme"
    assert line["user"] == f"user:{acme_user.id}"
    assert line["method"] == "GET"
    assert line["endpoint"] == "account.profile"
    assert line["route"] == "/account/profile"
    assert line["status"] == 200
    assert line["duration_ms"] >= 0
    assert "impersonator" not in line


def test_a_request_for_nothing_logs_unmatched_not_its_path(
    acme_client, acme: Partner, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    acme_client.get("/no/such/page-with-secret-abc123")
    [line] = [e for e in json_lines(caplog) if e["logger"] == "portal.request"]
    assert line["endpoint"] == "unmatched" and line["status"] == 404
    assert "secret-abc123" not in json.dumps(json_lines(caplog))


def test_no_password_token_or_cookie_is_ever_logged(
    acme_client, acme_user: User, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret_password = "Zebra-Typed-Secret-9931"
    refused = acme_client.login("alice@acme.test", secret_password)
    assert refused.status_code == 422 or refused.status_code == 200
    ok = acme_client.login("alice@acme.test")
    assert ok.status_code == 302
    acme_client.get("/account/profile")
    reset = acme_client.post_form("/password/forgot", {"email": "alice@acme.test"})
    assert reset.status_code in (200, 302)
    text = "\n".join(json.dumps(line) for line in json_lines(caplog))
    cookies = [c.value for c in acme_client._cookies.values()]
    assert cookies and all(len(value) >= 16 for value in cookies)
    csrf = acme_client.csrf_token("/account/profile")
    for secret in [secret_password, PASSWORD, csrf, *cookies]:
        assert secret not in text
    # The reset link's token is in the stored mail, never in the log.
    [mail] = [m for m in rows_outbox() if m.to_address == "alice@acme.test"]
    token = re.search(r"/password/reset/([A-Za-z0-9_-]{20,})", mail.body_text).group(1)
    assert token not in text
    assert '"endpoint": "auth.login"' in text  # the sign-ins were logged, without the secrets


def rows_outbox():
    from portal.mail.models import OutboxMessage

    return rows(OutboxMessage)


# --- /metrics -------------------------------------------------------------------------------


@pytest.fixture
def metrics_app(make_app, data: Flask) -> Flask:
    return make_app(METRICS_TOKEN=TOKEN, METRICS_PARTNER_TIERS={"acme": "enterprise"})


def scrape(client, token: str | None = TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get("/metrics", headers=headers)


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of the series of `name` with these labels in Prometheus text (0 when none)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_need_the_token_and_the_root_domain(metrics_app: Flask, acme: Partner) -> None:
    root = host_client(metrics_app, None)
    assert scrape(root, None).status_code == 401
    assert scrape(root, "wrong-token").status_code == 401
    assert scrape(root).status_code == 200
    partner = host_client(metrics_app, "acme")
    assert scrape(partner).status_code == 404  # partners never see the platform's numbers
    assert b"portal_requests" not in scrape(partner).data


def test_metrics_from_an_allowed_network_without_a_token(make_app, data: Flask) -> None:
    app = make_app(METRICS_ALLOWED_NETWORKS=["10.0.0.0/8"])
    root = host_client(app, None)
    inside = root.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    outside = root.get("/metrics", environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert inside.status_code == 200 and outside.status_code == 401


def test_counters_move_after_requests(metrics_app: Flask, acme: Partner, acme_user: User) -> None:
    root = host_client(metrics_app, None)
    before = scrape(root).get_data(as_text=True)
    client = host_client(metrics_app, "acme")
    assert client.login("alice@acme.test", "not-the-password").status_code != 302
    assert client.login("alice@acme.test").status_code == 302
    client.get("/account/profile")
    after = scrape(root).get_data(as_text=True)

    def moved(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert moved("portal_sign_ins_total", kind="user", result="failed") == 1
    assert moved("portal_sign_ins_total", kind="user", result="success") == 1
    labels = {"endpoint": "account.profile", "status": "200", "tier": "enterprise"}
    labels_of_latency = {"endpoint": "account.profile", "tier": "enterprise"}
    assert moved("portal_requests_total", method="GET", **labels) == 1
    assert moved("portal_request_duration_seconds_count", **labels_of_latency) == 1
    assert 'tier="acme"' not in after and "alice" not in after
    assert sample(after, "portal_active_sessions", kind="user") == 1
    assert "portal_db_pool_connections_in_use" in after
    assert sample(after, "portal_mail_outbox", status="failed") == 0


class Scraper:
    """The numbers of /metrics before an action, and how far one series moved since."""

    def __init__(self, app: Flask) -> None:
        self.root = host_client(app, None)
        self.before = scrape(self.root).get_data(as_text=True)

    def moved(self, name: str, **labels: str) -> float:
        after = scrape(self.root).get_data(as_text=True)
        return sample(after, name, **labels) - sample(self.before, name, **labels)


def test_a_throttled_sign_in_is_counted_once(metrics_app: Flask, acme_user: User) -> None:
    client = host_client(metrics_app, "acme")
    numbers = Scraper(metrics_app)
    for _ in range(5):
        assert client.login("alice@acme.test", "not-the-password").status_code == 422
    assert numbers.moved("portal_throttled_total", limit="sign_in") == 0
    throttled = client.login("alice@acme.test")  # the right password, too late
    assert throttled.status_code == 429 and "Too many failed sign-in attempts" in throttled.text
    assert len(rows(AuditEvent, action="auth.login_throttled")) == 1
    assert numbers.moved("portal_throttled_total", limit="sign_in") == 1
    assert numbers.moved("portal_throttled_total") == 1  # no other limit counted it
    assert numbers.moved("portal_sign_ins_total", kind="user", result="throttled") == 1
    assert numbers.moved("portal_sign_ins_total", kind="user", result="failed") == 5


def test_subscription_moves_are_counted_by_the_state_reached(
    metrics_app: Flask, acme: Partner, acme_user: User
) -> None:
    with partner_scope(acme):
        free = plan("free")
        db.session.commit()
    client = host_client(metrics_app, "acme")
    assert client.login("alice@acme.test").status_code == 302
    numbers = Scraper(metrics_app)
    assert client.post_form("/account/subscription/start", {"plan_id": free.id}).status_code == 302
    [sub] = rows(Subscription)
    client.post_form(f"/account/subscription/{sub.id}/confirm", {"accept_terms": "1"})
    client.post_form(f"/account/subscription/{sub.id}/cancel")
    assert rows(Subscription)[0].state == SubscriptionState.UNSIGNED
    history = [e.action for e in rows(AuditEvent) if e.action.startswith("subscription.")]
    assert history == [
        "subscription.signing",
        "subscription.terms_accepted",
        "subscription.signed",
        "subscription.unsigned",
    ]
    for state in ("signing", "signed", "unsigned"):
        assert numbers.moved("portal_subscription_transitions_total", to=state) == 1, state
    assert numbers.moved("portal_subscription_transitions_total") == 3  # terms are no move
    assert numbers.moved("portal_audit_events_total", area="subscription") == 4


def test_an_audited_change_is_counted_and_logged_as_its_own_line(
    metrics_app: Flask, acme_user: User, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client = host_client(metrics_app, "acme")
    assert client.login("alice@acme.test").status_code == 302
    numbers = Scraper(metrics_app)
    events_before = {e.id for e in rows(AuditEvent)}
    caplog.clear()
    saved = client.post_form(
        "/account/profile",
        {"display_name": "Alice Renamed"},
        headers={"X-Request-ID": "req-audit-1"},
    )
    assert saved.status_code == 302
    assert "Your profile is saved." in client.get(saved.headers["Location"]).text
    [event] = [e for e in rows(AuditEvent) if e.id not in events_before]
    assert event.action == "account.profile_update" and event.request_id == "req-audit-1"
    assert numbers.moved("portal_audit_events_total", area="account") == 1
    assert numbers.moved("portal_audit_events_total") == 1
    [line] = [e for e in json_lines(caplog) if e["logger"] == "portal.audit"]
    assert line["audit_action"] == "account.profile_update"
    assert line["target"] == f"users:{acme_user.id}"
    assert line["actor"] == "alice@acme.test"
    assert line["request_id"] == "req-audit-1" and line["partner"] == "acme"
    assert line["user"] == f"user:{acme_user.id}"
    assert "Alice Renamed" not in json.dumps(line)  # what was typed stays in the details


def request_lines(caplog: pytest.LogCaptureFixture, method: str) -> list[dict]:
    lines = [e for e in json_lines(caplog) if e["logger"] == "portal.request"]
    return [e for e in lines if e["method"] == method]


def test_a_refused_request_names_what_was_refused_never_what_was_typed(
    acme_client, acme_user: User, caplog: pytest.LogCaptureFixture
) -> None:
    """Failed input validation is on record (ASVS 16.3.3): the request's line names the form
    fields that failed and the services' refusals, without their values."""
    caplog.set_level(logging.INFO)
    acme_client.login("alice@acme.test")
    caplog.clear()
    typed = {"current_password": "not-her-password-xyz", "password": "Secret-2026-abc"}
    refused = acme_client.post_form("/account/password", {**typed, "confirm": "Different-1"})
    assert refused.status_code == 422
    [line] = request_lines(caplog, "POST")
    assert line["status"] == 422 and line["refused"] == ["confirm"]
    caplog.clear()
    wrong = acme_client.post_form("/account/password", {**typed, "confirm": typed["password"]})
    assert wrong.status_code == 422
    [line] = request_lines(caplog, "POST")
    assert line["refused"] == ["AccountError(current_password)"]
    assert not any(value in json.dumps(line) for value in typed.values())
    caplog.clear()
    assert acme_client.get("/account/profile").status_code == 200
    [line] = request_lines(caplog, "GET")
    assert "refused" not in line


def test_a_partner_wide_event_names_the_partner_in_its_log_line(
    app: Flask, acme: Partner, acme_admin: User, caplog: pytest.LogCaptureFixture
) -> None:
    """Ending every session is about the whole partner: the event and its log line say which
    partner, not an empty target."""
    caplog.set_level(logging.INFO)
    admin = host_client(app, "acme")
    assert admin.login("root@acme.test").status_code == 302
    caplog.clear()
    ended = admin.post_form("/admin/sessions/revoke-all")
    assert ended.status_code == 302
    assert "Everyone else must sign in again." in admin.get(ended.headers["Location"]).text
    [event] = rows(AuditEvent, action="session.revoke_partner")
    assert (event.target_type, event.target_id) == ("partners", str(acme.id))
    [line] = [e for e in json_lines(caplog) if e["logger"] == "portal.audit"]
    assert line["audit_action"] == "session.revoke_partner"
    assert line["target"] == f"partners:{acme.id}"


def test_an_event_without_target_logs_a_dash_not_none(
    app: Flask, acme: Partner, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with partner_scope(acme):
        record_audit("account.password_reset_request", details={"outcome": "test"})
        db.session.commit()
    [line] = [e for e in json_lines(caplog) if e["logger"] == "portal.audit"]
    assert line["target"] == "-"


def test_an_event_undone_with_its_refused_action_is_neither_counted_nor_logged(
    metrics_app: Flask, acme: Partner, caplog: pytest.LogCaptureFixture
) -> None:
    """Onboarding records `partner.create` before it invites the admin; a bad address undoes
    both, and the counter and the log say what the trail holds: nothing."""
    caplog.set_level(logging.INFO)

    def audit_lines() -> list[str]:
        return [e["audit_action"] for e in json_lines(caplog) if e["logger"] == "portal.audit"]

    db.session.add(Operator(email="op@portal.test", password_hash=hash_password(PASSWORD)))
    db.session.commit()
    console = host_client(metrics_app, None)
    assert console.login("op@portal.test").status_code == 302
    numbers = Scraper(metrics_app)
    form = {"slug": "initech", "name": "Initech", "admin_email": "not-an-address"}
    caplog.clear()
    refused = console.post_form("/operator/partners/new", form)
    assert refused.status_code == 422 and "valid email" in refused.text
    assert [p.slug for p in rows(Partner)] == ["acme"]
    assert rows(AuditEvent, action="partner.create") == []
    assert numbers.moved("portal_audit_events_total", area="partner") == 0
    assert audit_lines() == []
    form["admin_email"] = "boss@initech.test"
    caplog.clear()
    assert console.post_form("/operator/partners/new", form).status_code == 302
    stored = [e.action for e in rows(AuditEvent) if e.action.startswith("partner.")]
    assert stored == ["partner.create", "partner.create"]
    assert numbers.moved("portal_audit_events_total", area="partner") == 2
    assert [a for a in audit_lines() if a.startswith("partner.")] == stored


def test_mail_deliveries_are_counted_by_result(make_app, data: Flask, acme: Partner) -> None:
    class Refusing:
        """Accepts mail, except for one address refused for good and one refused for now."""

        def __init__(self) -> None:
            self.delivered: list[list[str]] = []

        async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
            if address.startswith("gone@"):
                return "550 5.1.1 No such mailbox"
            if address.startswith("later@"):
                return "451 4.3.0 Try again later"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope) -> str:
            self.delivered.append(list(envelope.rcpt_tos))
            return "250 Message accepted for delivery"

    smtp = SmtpServer()
    smtp.inbox = Refusing()
    smtp.start()
    try:
        app = make_app(METRICS_TOKEN=TOKEN, SMTP_URL=smtp.url, SMTP_TIMEOUT=2, MAIL_MAX_ATTEMPTS=3)
        for name in ("alice", "gone", "later"):
            make_user(acme, f"{name}@acme.test")
        client = host_client(app, "acme")
        for name in ("alice", "gone", "later"):
            forgot = client.post_form("/password/forgot", {"email": f"{name}@acme.test"})
            assert forgot.status_code in (200, 302)
        assert len(rows_outbox()) == 3
        numbers = Scraper(app)
        run_worker(app)
    finally:
        smtp.stop()
    assert smtp.inbox.delivered == [["alice@acme.test"]]
    status = {m.to_address: m.status for m in rows_outbox()}
    assert status == {
        "alice@acme.test": MailStatus.SENT,
        "gone@acme.test": MailStatus.FAILED,
        "later@acme.test": MailStatus.PENDING,
    }
    assert numbers.moved("portal_mail_deliveries_total", result="sent") == 1
    assert numbers.moved("portal_mail_deliveries_total", result="failed") == 1
    assert numbers.moved("portal_mail_deliveries_total", result="retry") == 1
    assert numbers.moved("portal_mail_outbox", status="failed") == 1


def test_a_request_made_by_a_support_agent_names_the_impersonator(
    app: Flask, acme: Partner, caplog: pytest.LogCaptureFixture
) -> None:
    set_feature(acme, "impersonation", True)
    agent = make_user(acme, "agent@acme.test", is_support=True)
    bob = make_user(acme, "bob@acme.test")
    client = acting_as(app, agent, bob)
    caplog.set_level(logging.INFO)
    caplog.clear()
    page = client.get("/account/profile")
    assert page.status_code == 200 and "bob@acme.test" in page.text
    [line] = [e for e in json_lines(caplog) if e["logger"] == "portal.request"]
    assert line["impersonator"] == f"user:{agent.id}"
    assert line["user"] == f"user:{bob.id} (support user:{agent.id})"
    assert line["endpoint"] == "account.profile" and line["partner"] == "acme"
    client.post_form("/support/stop")
    caplog.clear()
    client.get("/account/profile")
    [line] = [e for e in json_lines(caplog) if e["logger"] == "portal.request"]
    assert "impersonator" not in line and line["user"] == f"user:{agent.id}"


# --- flask operator ---------------------------------------------------------------------------


def test_operator_create_then_sign_in_on_the_root_domain(app: Flask, data: Flask) -> None:
    runner = app.test_cli_runner()
    created = runner.invoke(
        args=["operator", "create", "Ops@Portal.test", "--name", "Olga Ops"],
        input="a-long-operator-pass\na-long-operator-pass\n",
    )
    assert created.exit_code == 0, created.output
    assert "ops@portal.test is an operator" in created.output
    assert "a-long-operator-pass" not in created.output.split("\n")[-2]
    [operator] = rows(Operator)
    assert operator.email == "ops@portal.test" and operator.display_name == "Olga Ops"
    root = host_client(app, None)
    signed_in = root.login("ops@portal.test", "a-long-operator-pass")
    assert signed_in.status_code == 302
    assert "Partners" in root.get("/operator/").get_data(as_text=True)
    assert [e.action for e in rows(AuditEvent, action="operator.create")] == ["operator.create"]

    listed = runner.invoke(args=["operator", "list"])
    assert "ops@portal.test" in listed.output and "active" in listed.output

    again = runner.invoke(
        args=["operator", "create", "ops@portal.test"], input="another-password\nanother-password\n"
    )
    assert again.exit_code == 1 and "already an operator" in again.output
    short = runner.invoke(args=["operator", "create", "b@portal.test"], input="short\nshort\n")
    assert short.exit_code == 1 and "at least 10 characters" in short.output
    assert len(rows(Operator)) == 1

    ended = runner.invoke(args=["operator", "deactivate", "ops@portal.test"])
    assert ended.exit_code == 0 and "1 session ended" in ended.output
    assert root.get("/operator/").status_code == 302  # signed out at once
    assert all(s.revoked_at is not None for s in rows(OperatorSession))
    assert root.login("ops@portal.test", "a-long-operator-pass").status_code != 302


# --- gunicorn ---------------------------------------------------------------------------------


def _free_port() -> int:
    """A port the system has just handed out and nothing listens on (the suite's two passes
    run at once, so no fixed range)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_metrics_add_up_across_two_gunicorn_workers(
    database_url: str, data: Flask, tmp_path
) -> None:
    db.session.add(Operator(email="op@portal.test", password_hash=hash_password(PASSWORD)))
    db.session.commit()
    port = _free_port()
    env = {
        **os.environ,
        "PORTAL_ENV": "production",
        "PORTAL_SECRET_KEY": "gunicorn-test-key-kT9-x2Qa7LmPz0Rv_4WbYc8NdE5fGh1J",
        "PORTAL_SERVER_NAME": f"localhost:{port}",
        "PORTAL_DATABASE_URL": database_url,
        "PORTAL_METRICS_TOKEN": TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
        # Workers replaced every 20-21 requests: the replacements, forked from the master's
        # warmed app, must answer as the first ones did.
        "GUNICORN_MAX_REQUESTS": "20",
    }
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    host = {"Host": f"localhost:{port}"}
    try:
        for _ in range(300):  # up to 30 s for two workers to import the portal
            try:
                if requests.get(f"{base}/healthz", headers=host, timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        else:
            pytest.fail("gunicorn did not start")

        def workers_counted() -> set[str]:
            files = os.listdir(tmp_path / "metrics")
            return {f.rsplit("_", 1)[-1] for f in files if f.startswith("counter_")}

        # A new connection each time, so that both workers take some: at least 40 requests,
        # and more while the second worker is still starting (up to 30 s).
        answered, deadline = 0, time.monotonic() + 30
        while answered < 40 or (len(workers_counted()) < 2 and time.monotonic() < deadline):
            answer = requests.get(
                f"{base}/healthz", headers={**host, "Connection": "close"}, timeout=5
            )
            assert answer.status_code == 200
            answered += 1
        # Both workers reach the database. (That each does on a connection of its own, none
        # kept from the master's start-up check of row-level security, test_config checks:
        # requests one at a time would not tell.)
        for _ in range(10):
            ready = requests.get(
                f"{base}/readyz", headers={**host, "Connection": "close"}, timeout=5
            )
            assert ready.status_code == 200 and ready.json()["database"] == "ok"
        unauthorised = requests.get(f"{base}/metrics", headers=host, timeout=5)
        assert unauthorised.status_code == 401
        scraped = requests.get(
            f"{base}/metrics", headers={**host, "Authorization": f"Bearer {TOKEN}"}, timeout=5
        )
        assert scraped.status_code == 200
        text = scraped.text
        healthz = sample(text, "portal_requests_total", endpoint="health.healthz", status="200")
        # The first answers while starting also count: at least these, from both workers.
        assert healthz >= answered
        assert len(workers_counted()) >= 2
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        output = server.communicate(timeout=30)[0].decode()
    assert server.returncode == 0, output[-3000:]
    request_lines = [
        json.loads(line) for line in output.splitlines() if '"logger": "portal.request"' in line
    ]
    assert any(line["endpoint"] == "monitoring.metrics" for line in request_lines)
    assert TOKEN not in output
    # Warmed once, in the master, before the first worker was forked (gunicorn.conf.py).
    warmed = [n for n, line in enumerate(output.splitlines()) if '"portal.warmup"' in line]
    booted = [n for n, line in enumerate(output.splitlines()) if "Booting worker" in line]
    assert len(warmed) == 1 and booted and warmed[0] < booted[0], output[-3000:]
    assert len(booted) > 2 and "Autorestarting worker" in output  # replaced, and answered


# --- The append-only audit trail ---------------------------------------------------------------


def test_the_audit_trail_refuses_update_and_delete_on_postgresql(acme: Partner) -> None:
    """Only a transaction that set portal.audit_maintenance may change or remove events."""
    import sqlalchemy as sa

    from portal.audit.services import record_audit
    from portal.tenancy.scope import partner_scope, raw_sql

    if db.engine.dialect.name != "postgresql":
        pytest.skip("the trigger is PostgreSQL's; SQLite has only the app's own discipline")
    with partner_scope(acme):
        record_audit("test.event", actor=None, details={"n": 1})
        db.session.commit()
        with raw_sql():
            for statement in (
                "UPDATE audit_events SET action = 'test.forged'",
                "DELETE FROM audit_events",
            ):
                with pytest.raises(sa.exc.DBAPIError, match="append-only"):
                    db.session.execute(sa.text(statement))
                db.session.rollback()
            assert db.session.execute(
                sa.text("SELECT action FROM audit_events")
            ).scalars().all() == ["test.event"]
            # A maintenance service (retention, erasure) sets the switch for its transaction.
            db.session.execute(sa.text("SELECT set_config('portal.audit_maintenance', 'on', true)"))
            db.session.execute(sa.text("UPDATE audit_events SET details = '{}'"))
            db.session.commit()
            # ... and only for that transaction.
            with pytest.raises(sa.exc.DBAPIError, match="append-only"):
                db.session.execute(sa.text("DELETE FROM audit_events"))
            db.session.rollback()
            db.session.execute(sa.text("SELECT set_config('portal.audit_maintenance', 'on', true)"))
            db.session.execute(sa.text("DELETE FROM audit_events"))
            db.session.commit()
            assert db.session.execute(sa.text("SELECT count(*) FROM audit_events")).scalar() == 0


# --- Backups: the restore rehearsal ----------------------------------------------------------


def test_a_backup_restores_in_the_rehearsal_with_every_partners_rows(
    owner_engine: tuple[Any, str], acme: Partner, globex: Partner, tmp_path: Path
) -> None:
    """`deploy/restore-rehearsal.sh` as docs/deployment.md runs it: a custom-format pg_dump
    of the live database (by the server's superuser, whom row-level security does not hold)
    restored into a scratch database as the owner, the migration revision and each partner's
    counts printed, the scratch database dropped, the live one untouched."""
    import sqlalchemy as sa

    superuser, app_url = owner_engine
    if superuser.dialect.name != "postgresql":
        pytest.skip("pg_dump and pg_restore are PostgreSQL's")
    make_user(acme, "ann@acme.test")
    make_user(acme, "bob@acme.test")
    make_user(globex, "gus@globex.test")
    with partner_scope(acme):
        record_audit("test.event", actor=None)
        db.session.commit()
    url = superuser.url
    env = {
        **os.environ,
        "PGHOST": url.host or "127.0.0.1",
        "PGPORT": str(url.port or 5432),
        "PGUSER": url.username or "postgres",
    }
    dump = tmp_path / "portal.dump"
    subprocess.run(
        ["pg_dump", "--format=custom", f"--file={dump}", url.database],
        env=env,
        check=True,
        timeout=120,
    )
    owner = f"{sa.engine.make_url(app_url).username}_owner"
    script = Path(__file__).parent.parent / "deploy" / "restore-rehearsal.sh"
    rehearsal = subprocess.run(
        ["sh", str(script), str(dump), owner],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rehearsal.returncode == 0, rehearsal.stdout + rehearsal.stderr
    out = rehearsal.stdout
    scratch = re.search(r"into (portal_rehearsal_\d+)", out)
    assert scratch is not None, out
    with superuser.connect() as conn:
        live_head = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        live = conn.execute(
            sa.text(
                "SELECT p.slug, (SELECT count(*) FROM users u WHERE u.partner_id = p.id),"
                " (SELECT count(*) FROM audit_events a WHERE a.partner_id = p.id)"
                " FROM partners p ORDER BY p.slug"
            )
        ).all()
        left = conn.execute(
            sa.text("SELECT count(*) FROM pg_database WHERE datname = :n"),
            {"n": scratch.group(1)},
        ).scalar()
    assert live_head in out
    assert [(slug, users) for slug, users, _events in live] == [("acme", 2), ("globex", 1)]
    for slug, users, events in live:  # each partner's row as psql aligns it: the same counts
        row = rf"\n\s*{slug}\s*\|\s*active\s*\|\s*{users}\s*\|\s*0\s*\|\s*{events}\s*\|"
        assert re.search(row, out), out
    assert "The rehearsal passed" in out
    assert left == 0  # dropped
