"""`/metrics` on the root domain: Prometheus text, for a bearer token or an allowed network.

Counters and histograms come from every worker (multiprocess mode when
`PROMETHEUS_MULTIPROC_DIR` is set); a few gauges are read from the database at scrape time,
so every worker answers the same: live sessions, messages waiting and failed.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Iterator

from flask import Flask, Response, abort, current_app, request
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import event, func, select
from sqlalchemy.pool import Pool

from portal.auth.guards import public
from portal.clock import utcnow
from portal.extensions import db
from portal.mail.models import MailStatus, OutboxMessage
from portal.monitoring.metrics import DB_POOL_IN_USE
from portal.sessions.models import OperatorSession, UserSession
from portal.tenancy.context import exempt_from_tenancy
from portal.tenancy.scope import unscoped

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class DatabaseGauges(Collector):
    """What the database knows, read once per scrape (a few indexed counts)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = utcnow()
        with unscoped():
            users = db.session.execute(
                select(func.count())
                .select_from(UserSession)
                .where(UserSession.revoked_at.is_(None), UserSession.expires_at > now)
            ).scalar_one()
            operators = db.session.execute(
                select(func.count())
                .select_from(OperatorSession)
                .where(OperatorSession.revoked_at.is_(None), OperatorSession.expires_at > now)
            ).scalar_one()
            mail = dict(
                db.session.execute(
                    select(OutboxMessage.status, func.count())
                    .where(OutboxMessage.status.in_([MailStatus.PENDING, MailStatus.FAILED]))
                    .group_by(OutboxMessage.status)
                ).all()
            )
            oldest = db.session.execute(
                select(func.min(OutboxMessage.created_at)).where(
                    OutboxMessage.status == MailStatus.PENDING
                )
            ).scalar_one()
        sessions = GaugeMetricFamily(
            "portal_active_sessions",
            "Live sign-in sessions (not revoked, not expired).",
            labels=["kind"],
        )
        sessions.add_metric(["user"], users)
        sessions.add_metric(["operator"], operators)
        yield sessions
        outbox = GaugeMetricFamily(
            "portal_mail_outbox",
            "Messages waiting for the mail worker, and failed ones.",
            labels=["status"],
        )
        for status in (MailStatus.PENDING, MailStatus.FAILED):
            outbox.add_metric([status.value], mail.get(status, 0))
        yield outbox
        yield GaugeMetricFamily(
            "portal_mail_oldest_pending_seconds",
            "Age of the oldest message still waiting for delivery (0 when none waits).",
            value=(now - oldest).total_seconds() if oldest else 0,
        )


def _allowed() -> bool:
    token = current_app.config.get("METRICS_TOKEN")
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header[len("Bearer ") :].encode(), token.encode())
    networks = current_app.config.get("METRICS_ALLOWED_NETWORKS") or []
    try:
        client = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return any(client in ipaddress.ip_network(network) for network in networks)


@public  # not a person's page: a bearer token or an allowed network instead (below)
@exempt_from_tenancy
def metrics() -> Response:
    if not _allowed():
        abort(
            Response(
                "A bearer token (PORTAL_METRICS_TOKEN) or an allowed network is needed.\n",
                401,
                {"WWW-Authenticate": 'Bearer realm="metrics"', "Content-Type": "text/plain"},
            )
        )
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    scraped = CollectorRegistry()
    scraped.register(DatabaseGauges())
    body = generate_latest(registry) + generate_latest(scraped)
    return Response(body, 200, {"Content-Type": CONTENT_TYPE})


def _checked_out(*_args: object) -> None:
    DB_POOL_IN_USE.inc()


def _checked_in(*_args: object) -> None:
    DB_POOL_IN_USE.dec()


def register(app: Flask) -> None:
    app.add_url_rule("/metrics", "monitoring.metrics", metrics, subdomain="")
    if not event.contains(Pool, "checkout", _checked_out):
        event.listen(Pool, "checkout", _checked_out)
        event.listen(Pool, "checkin", _checked_in)
