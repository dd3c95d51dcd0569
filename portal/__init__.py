"""Partner Portal: a multi-tenant, server-rendered self-service portal."""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter, Map

from portal import (
    body_limit,
    cli,
    database,
    errors,
    models,  # noqa: F401  - registers every model before the first query
    observability,
    security_headers,
    static_files,
    template_urls,
    theming,
    unit_of_work,
    warmup,
    web,
)
from portal.account.routes import bp as account_bp
from portal.api import oauth
from portal.api.admin_routes import bp as api_clients_bp
from portal.api.admin_routes import oauth_bp
from portal.api.routes import bp as api_bp
from portal.audit.routes import bp as audit_bp
from portal.auth import guards, loader, throttle
from portal.auth.routes import bp as auth_bp
from portal.branding.routes import bp as branding_admin_bp
from portal.branding.routes import logo_bp as branding_logo_bp
from portal.config import ROOT, load_config
from portal.extensions import csrf, db, migrate
from portal.features import evaluation as features
from portal.features.routes import bp as features_bp
from portal.health import routes as health
from portal.home import navigation
from portal.home.routes import bp as home_bp
from portal.home.routes import landing_bp
from portal.mail import cli as mail_cli
from portal.mail import routes as mail_routes
from portal.monitoring import routes as monitoring
from portal.operator.routes import bp as operator_bp
from portal.privacy import cli as privacy_cli
from portal.privacy.routes import account_data_bp, privacy_admin_bp, privacy_operator_bp
from portal.reports.routes import bp as reports_bp
from portal.roles import policy
from portal.roles.routes import bp as roles_bp
from portal.sessions import routes as sessions_routes
from portal.settings.routes import bp as settings_bp
from portal.sso import cli as sso_cli
from portal.sso import client as sso_client
from portal.sso import crypto as sso_crypto
from portal.sso.admin_routes import bp as sso_admin_bp
from portal.sso.demo_provider import mount_demo_provider
from portal.sso.routes import bp as sso_bp
from portal.sso.routes import identities_bp
from portal.subscriptions.admin_routes import plans_bp, subs_bp
from portal.subscriptions.routes import bp as subscription_bp
from portal.support.routes import bp as support_bp
from portal.tenancy import context as tenancy
from portal.tenancy import rls
from portal.tenancy.context import MAX_ID
from portal.theming import ThemedEnvironment
from portal.users.routes import bp as users_bp
from portal.users.routes import invitations_bp


class RowIdConverter(IntegerConverter):
    """`<int:…>` in every route: at most MAX_ID, so a huge id is a 404, not a database error."""

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


class PortalFlask(Flask):
    jinja_environment = ThemedEnvironment

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.url_map.converters["int"] = RowIdConverter

    def dispatch_request(self) -> Any:
        """Run the view, then commit its unit of work: the one place a request commits.

        An exception from the view or the commit reaches the error handlers, which roll back.
        """
        response = super().dispatch_request()
        unit_of_work.commit(last=True)
        return response

    def warm(self) -> None:
        """Before the first request, in gunicorn's master (gunicorn.conf.py): portal/warmup.py."""
        warmup.warm(self)

    def log_exception(self, exc_info: Any) -> None:
        """Nothing here: the 500 handler writes the one log line, with the request id."""


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the application; `config` overrides what the environment says (tests)."""
    app = PortalFlask(
        __name__,
        subdomain_matching=True,
        static_folder=str(ROOT / "static"),
        template_folder=None,
        instance_path=str(ROOT / "instance"),
    )
    app.config.update(load_config(config))
    if proxies := app.config["PROXY_FIX"]:
        # Each X-Forwarded-* header is read at the value the outermost of the trusted
        # proxies wrote; without PORTAL_PROXY_FIX none of them is believed.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies
        )

    db.init_app(app)
    database.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    csrf.init_app(app)
    observability.init_app(app)
    body_limit.init_app(app)
    tenancy.init_app(app)
    rls.init_app(app)
    loader.init_app(app)
    throttle.init_app(app)
    guards.init_app(app)
    policy.init_app(app)
    features.init_app(app)
    navigation.init_app(app)
    theming.init_app(app, ROOT / "templates")
    template_urls.init_app(app)
    errors.init_app(app)
    security_headers.init_app(app)
    web.init_app(app)
    cli.init_app(app)
    mail_cli.init_app(app)
    privacy_cli.init_app(app)
    sso_crypto.init_app(app)
    sso_client.init_app(app)
    oauth.init_app(app)
    app.cli.add_command(sso_cli.sso_cli)
    _register_blueprints(app)
    if app.config["DEMO_IDP"] and app.config["PORTAL_ENV"] == "development":
        mount_demo_provider(app)  # /dev/idp: never in production or tests
    return app


def _register_blueprints(app: Flask) -> None:
    app.register_blueprint(landing_bp)
    app.register_blueprint(operator_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(account_bp)
    app.register_blueprint(home_bp)
    app.register_blueprint(users_bp)
    app.register_blueprint(invitations_bp)
    app.register_blueprint(roles_bp)
    app.register_blueprint(settings_bp)
    app.register_blueprint(branding_admin_bp)
    app.register_blueprint(branding_logo_bp)
    app.register_blueprint(sso_admin_bp)
    app.register_blueprint(sso_bp)
    app.register_blueprint(identities_bp)
    sessions_routes.init_app(app)
    app.register_blueprint(subscription_bp)
    app.register_blueprint(plans_bp)
    app.register_blueprint(subs_bp)
    app.register_blueprint(features_bp)
    app.register_blueprint(reports_bp)
    app.register_blueprint(audit_bp)
    app.register_blueprint(support_bp)
    app.register_blueprint(api_clients_bp)
    app.register_blueprint(oauth_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(account_data_bp)
    app.register_blueprint(privacy_admin_bp)
    app.register_blueprint(privacy_operator_bp)
    health.register(app)
    monitoring.register(app)
    mail_routes.register(app)
    static_files.register(app)
