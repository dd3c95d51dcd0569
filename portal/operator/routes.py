"""The operator console on the root domain."""

from __future__ import annotations

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from portal.account.forms import ResetPasswordForm
from portal.auth.guards import public
from portal.auth.pages import end_login, password_login_page
from portal.auth.passwords import MIN_PASSWORD_LENGTH
from portal.auth.services import login_operator, logout_operator
from portal.branding.services import current_logo, reset_partner_branding
from portal.exceptions import PortalError
from portal.extensions import db
from portal.features.catalogue import CATALOGUE
from portal.features.evaluation import evaluate
from portal.features.models import Lock
from portal.features.services import FeatureError, lock_feature
from portal.mail.services import failed_messages, retry_message
from portal.operator.models import Operator
from portal.operator.services import (
    OperatorLinkInvalid,
    grant_admin,
    onboard_partner,
    operator_for_link,
    partner_counts,
    reactivate_partner,
    set_password_by_link,
    suspend_partner,
)
from portal.roles.models import Role
from portal.tenancy.models import BASE_THEMES, Partner
from portal.tenancy.scope import partner_scope
from portal.text import counted
from portal.theming import THEMES, contrast_notes
from portal.unit_of_work import attempt
from portal.users.models import User
from portal.web import perform

bp = Blueprint("operator", __name__)


@bp.route("/login", methods=["GET", "POST"])
@public
def login() -> tuple[str, int] | Response:
    return password_login_page(
        kind="operator", home="operator.index", template="operator/login.html", login=login_operator
    )


@bp.post("/logout")
def logout() -> Response:
    operator = current_user._get_current_object()
    return end_login(lambda: logout_operator(g.operator_session, operator), "operator.login")


@bp.route("/operator/password/<token>", methods=["GET", "POST"])
@public
def set_password(token: str) -> tuple[str, int] | Response:
    """Where a new operator (or one who forgot theirs) chooses a password, from a CLI link."""
    try:
        operator = operator_for_link(token)
    except OperatorLinkInvalid:
        return render_template("operator/link_invalid.html"), 404
    form = ResetPasswordForm()
    if form.validate_on_submit():
        try:
            with attempt():
                operator = set_password_by_link(token, form.password.data)
        except OperatorLinkInvalid:
            return render_template("operator/link_invalid.html"), 404
        except PortalError as exc:
            form.password.errors = [*form.password.errors, str(exc)]
        else:
            flash("Your password is set. Sign in with it.", "info")
            session["sign_in_as"] = operator.email
            return redirect(url_for("operator.login"))
    status = 422 if form.errors else 200
    page = render_template(
        "operator/set_password.html",
        form=form,
        operator=operator,
        min_password_length=MIN_PASSWORD_LENGTH,
    )
    return page, status


@bp.get("/operator/")
def index() -> str:
    partners = db.session.execute(select(Partner).order_by(Partner.name)).scalars().all()
    return render_template("operator/index.html", partners=partners, counts=partner_counts())


@bp.route("/operator/partners/new", methods=["GET", "POST"])
def new_partner() -> tuple[str, int] | Response:
    error = None
    values = request.form
    if request.method == "POST":
        try:
            with attempt("That address name was just taken by someone else."):
                partner = onboard_partner(
                    _operator(),
                    slug=values.get("slug", "")[:60],
                    name=values.get("name", "")[:200],
                    admin_email=values.get("admin_email", "")[:300],
                    base_theme=values.get("base_theme", "default"),
                    primary_color=values.get("primary_color", "#2563eb"),
                    accent_color=values.get("accent_color", "#0f172a"),
                )
        except PortalError as exc:
            error = str(exc)
        else:
            flash(
                f"{partner.name} is live at {partner.slug}.{current_app.config['SERVER_NAME']}; "
                f"its first admin has been invited.",
                "info",
            )
            return redirect(url_for("operator.index"))
    return render_template(
        "operator/new_partner.html", values=values, error=error, themes=BASE_THEMES
    ), 422 if error else 200


@bp.post("/operator/partners/<int:partner_id>/suspend")
def suspend(partner_id: int) -> Response:
    partner = db.get_or_404(Partner, partner_id)

    def act() -> str:
        ended = suspend_partner(_operator(), partner, request.form.get("reason", ""))
        return f"{partner.name} is suspended; {counted(ended, 'session')} ended."

    return perform(act, back=url_for("operator.index"))


@bp.post("/operator/partners/<int:partner_id>/reactivate")
def reactivate(partner_id: int) -> Response:
    partner = db.get_or_404(Partner, partner_id)

    def act() -> str:
        reactivate_partner(_operator(), partner)
        return f"{partner.name} is active again."

    return perform(act, back=url_for("operator.index"))


def _operator() -> Operator:
    return current_user._get_current_object()


@bp.route("/operator/partners/<int:partner_id>/features", methods=["GET", "POST"])
def features(partner_id: int) -> str | Response:
    partner = db.get_or_404(Partner, partner_id)
    if request.method == "POST":
        key, value = request.form.get("key", ""), request.form.get("lock", "")

        def act() -> str:
            if key not in CATALOGUE or value not in Lock._value2member_map_:
                raise FeatureError("Choose a feature and a lock.", status=422)
            lock_feature(_operator(), partner, key, Lock(value))
            return f"{CATALOGUE[key].label} for {partner.name}: lock set to {value}."

        return perform(act, back=url_for("operator.features", partner_id=partner.id))
    with partner_scope(partner):
        items = [evaluate(key) for key in CATALOGUE]
    return render_template("operator/features.html", partner=partner, items=items, locks=list(Lock))


@bp.route("/operator/partners/<int:partner_id>/admins", methods=["GET", "POST"])
def admins(partner_id: int) -> str | Response:
    """A partner's admins, and the way to give it one again when it has none left."""
    partner = db.get_or_404(Partner, partner_id)
    if request.method == "POST":
        email = request.form.get("email", "")[:300]
        return perform(
            lambda: grant_admin(_operator(), partner, email),
            back=url_for("operator.admins", partner_id=partner.id),
        )
    with partner_scope(partner):
        users = db.session.execute(
            select(User).where(User.role == Role.ADMIN).order_by(User.email)
        ).scalars()
        return render_template("operator/admins.html", partner=partner, admins=list(users))


@bp.route("/operator/partners/<int:partner_id>/branding", methods=["GET", "POST"])
def branding(partner_id: int) -> str | Response:
    """A partner's branding as its admins set it, and the way to put it back to the default."""
    partner = db.get_or_404(Partner, partner_id)
    if request.method == "POST":

        def act() -> str:
            if reset_partner_branding(_operator(), partner):
                return f"The branding of {partner.name} is back to the portal's default."
            return f"The branding of {partner.name} already was the portal's default."

        return perform(act, back=url_for("operator.branding", partner_id=partner.id))
    with partner_scope(partner):
        logo = current_logo()
    # Drawn outside the partner's scope: the console keeps its own look, not the partner's.
    return render_template(
        "operator/branding.html",
        partner=partner,
        branding=partner.theme,
        themes=THEMES,
        notes=contrast_notes(partner.theme),
        logo=logo,
    )


@bp.get("/operator/mail")
def mail() -> str:
    """Messages every delivery attempt failed for, with their last error, and Retry."""
    return render_template(
        "operator/mail.html",
        messages=failed_messages(),
        smtp=bool(current_app.config.get("SMTP_URL")),
    )


@bp.post("/operator/mail/<int:message_id>/retry")
def retry_mail(message_id: int) -> Response:
    def act() -> str:
        message = retry_message(_operator(), message_id)
        return (
            f"The message to {message.to_address} is queued again; the mail worker sends it next."
        )

    return perform(act, back=url_for("operator.mail"))
