"""Liveness and readiness probes, answered on the root domain and on every partner host.

`/healthz` touches no dependency (tenancy, the login guard and the principal loader all leave
it alone), so it answers while the database or Redis hangs. `/readyz` asks the database,
bounded by its timeouts, and reports the throttle: a throttle counting per process while
Redis is away is `degraded` but still ready, since sign-in works and stays limited.
"""

from __future__ import annotations

from flask import Flask, jsonify
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response

from portal.auth.guards import public
from portal.auth.throttle import throttle
from portal.extensions import db
from portal.tenancy.context import exempt_from_tenancy


@public
@exempt_from_tenancy
def healthz() -> Response:
    return jsonify(status="ok")


@public
@exempt_from_tenancy
def readyz() -> tuple[Response, int]:
    ratelimit = throttle().status()
    try:
        db.session.execute(select(1))
    except SQLAlchemyError:
        db.session.rollback()
        return jsonify(status="unavailable", database="unreachable", ratelimit=ratelimit), 503
    status = "degraded" if ratelimit == "degraded" else "ok"
    return jsonify(status=status, database="ok", ratelimit=ratelimit), 200


def register(app: Flask) -> None:
    for subdomain, suffix in (("", ""), ("<partner>", "_partner")):
        app.add_url_rule("/healthz", f"health.healthz{suffix}", healthz, subdomain=subdomain)
        app.add_url_rule("/readyz", f"health.readyz{suffix}", readyz, subdomain=subdomain)
