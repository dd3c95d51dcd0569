"""The bare stack the portal is measured against: what any page of it cannot do without.

Flask, Flask-Login (a request loader), Flask-SQLAlchemy with one indexed lookup of the session
the cookie names joined to its user, and a Jinja page of the same size as the portal's home
page. It reads the scale dataset's own `user_sessions` and `users` tables.

    BASELINE_DATABASE_URL=sqlite:///… BASELINE_PAGE_BYTES=6000 gunicorn benchmarks.baseline_app:app
"""

from __future__ import annotations

import hashlib
import os
from datetime import datetime

import sqlalchemy as sa
from flask import Flask, render_template_string, request
from flask_login import LoginManager, current_user, login_required
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
login = LoginManager()


class User(db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int]
    email: Mapped[str]
    display_name: Mapped[str]
    status: Mapped[str]

    is_active = True
    is_authenticated = True
    is_anonymous = False

    def get_id(self) -> str:
        return str(self.id)


class Session(db.Model):
    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int]
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    token_hash: Mapped[str]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(lazy="joined", innerjoin=True)


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Home</title></head>
<body><header><nav><a href="/">Home</a> <span>{{ current_user.email }}</span></nav></header>
<main><h1>Welcome, {{ current_user.display_name }}</h1>
<p>{{ filler }}</p></main></body></html>
"""


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["BASELINE_DATABASE_URL"]
    app.config["SECRET_KEY"] = "baseline"
    filler = "x" * max(0, int(os.environ.get("BASELINE_PAGE_BYTES", "6000")) - 400)
    cookie = os.environ.get("BASELINE_COOKIE", "__Host-portal_auth")
    db.init_app(app)
    login.init_app(app)

    @login.request_loader
    def load(_request: object) -> User | None:
        token = request.cookies.get(cookie)
        if not token:
            return None
        digest = hashlib.sha256(token.encode()).hexdigest()
        found = db.session.execute(
            sa.select(Session).where(
                Session.token_hash == digest,
                Session.revoked_at.is_(None),
                Session.expires_at > datetime.utcnow(),
            )
        ).scalar_one_or_none()
        return found.user if found is not None else None

    @app.get("/")
    @login_required
    def home() -> str:
        return render_template_string(PAGE, current_user=current_user, filler=filler)

    return app


app = create_app()
