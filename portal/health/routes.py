"""Liveness and readiness probes, answered on the root domain and on every partner host."""

from __future__ import annotations

from flask import Flask, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response

from portal.auth.guards import public
from portal.extensions import db
from portal.tenancy.context import exempt_from_tenancy


@public
@exempt_from_tenancy
def healthz() -> Response:
    return jsonify(status="ok")


@public
@exempt_from_tenancy
def readyz() -> tuple[Response, int]:
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        db.session.rollback()
        return jsonify(status="unavailable", database="unreachable"), 503
    return jsonify(status="ok", database="ok"), 200


def register(app: Flask) -> None:
    for subdomain, suffix in (("", ""), ("<partner>", "_partner")):
        app.add_url_rule("/healthz", f"health.healthz{suffix}", healthz, subdomain=subdomain)
        app.add_url_rule("/readyz", f"health.readyz{suffix}", readyz, subdomain=subdomain)
