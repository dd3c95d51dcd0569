"""The partner home page and the public landing page on the root domain."""

from __future__ import annotations

from flask import Blueprint, render_template

from portal.auth.guards import public

bp = Blueprint("home", __name__, subdomain="<partner>")
landing_bp = Blueprint("landing", __name__)


@bp.get("/")
def index() -> str:
    return render_template("home/index.html")


@landing_bp.get("/", endpoint="index")
@public
def landing() -> str:
    return render_template("landing/index.html")
