"""Account pages on partner hosts: password reset, sign-up, profile, email and password."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from portal.account import services
from portal.account.forms import (
    ConfirmForm,
    EmailChangeForm,
    ForgotPasswordForm,
    PasswordChangeForm,
    ProfileForm,
    ResetPasswordForm,
    SignupForm,
    attach_error,
)
from portal.account.services import AccountError
from portal.auth.guards import principal_kind, public
from portal.auth.passwords import MIN_PASSWORD_LENGTH
from portal.extensions import db
from portal.features.evaluation import feature, feature_on
from portal.roles.policy import requires
from portal.tokens.models import TokenPurpose
from portal.tokens.services import TokenInvalid
from portal.users.models import User

bp = Blueprint("account", __name__, subdomain="<partner>")

Page = str | tuple[str, int] | Response


@bp.context_processor
def password_rules() -> dict[str, int]:
    return {"min_password_length": MIN_PASSWORD_LENGTH}


def link_invalid(purpose: TokenPurpose) -> tuple[str, int]:
    """The one answer for an unknown, expired, used, revoked, tampered or foreign link."""
    db.session.rollback()
    endpoint, label = {
        TokenPurpose.PASSWORD_RESET: ("account.forgot_password", "Request a new link"),
        TokenPurpose.CHANGE_EMAIL: ("account.profile", "Go to your profile"),
        # Signing up again with the same address sends a fresh confirmation link.
        TokenPurpose.VERIFY_EMAIL: ("account.signup", "Sign up again")
        if feature_on("self_signup")
        else ("auth.login", "Go to sign in"),
    }[purpose]
    return render_template(
        "account/link_invalid.html", again_url=url_for(endpoint), again_label=label
    ), 404


def page(template: str, form: Any, **context: Any) -> tuple[str, int]:
    """Render a form page: 422 when the submitted form has errors, 200 otherwise."""
    status = 422 if request.method == "POST" and form.errors else 200
    return render_template(template, form=form, **context), status


def me() -> User:
    return current_user._get_current_object()


# --- Password reset ---------------------------------------------------------------------------


@bp.route("/password/forgot", methods=["GET", "POST"])
@public
def forgot_password() -> Page:
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        try:
            services.request_password_reset(form.email.data)
        except AccountError as exc:
            db.session.rollback()
            attach_error(form, exc)
        else:
            db.session.commit()
            # The same answer whether or not the address belongs to anybody.
            return redirect(url_for("account.forgot_password", sent=1))
    return page("account/forgot_password.html", form, sent="sent" in request.args)


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
@public
def reset_password(token: str) -> Page:
    try:
        services.open_link(token, TokenPurpose.PASSWORD_RESET)
    except TokenInvalid:
        return link_invalid(TokenPurpose.PASSWORD_RESET)
    form = ResetPasswordForm()
    if form.validate_on_submit():
        try:
            services.reset_password(token, form.password.data)
        except TokenInvalid:
            return link_invalid(TokenPurpose.PASSWORD_RESET)
        except AccountError as exc:
            db.session.rollback()
            attach_error(form, exc)
        else:
            db.session.commit()
            flash("Your password has been changed. Sign in with your new password.", "info")
            return redirect(url_for("auth.login"))
    return page("account/reset_password.html", form)


# --- Self sign-up -----------------------------------------------------------------------------


@bp.route("/signup", methods=["GET", "POST"])
@public
@feature("self_signup")
def signup() -> Page:
    if principal_kind() == "user":
        return redirect(url_for("home.index"))
    form = SignupForm()
    if form.validate_on_submit():
        try:
            services.sign_up(form.email.data, form.display_name.data, form.password.data)
            db.session.commit()
        except AccountError as exc:
            db.session.rollback()
            attach_error(form, exc)
        except IntegrityError:
            # A concurrent sign-up with the same address won; answer as for a known address.
            db.session.rollback()
            return redirect(url_for("account.signup", sent=1))
        else:
            return redirect(url_for("account.signup", sent=1))
    return page("account/signup.html", form, sent="sent" in request.args)


@bp.route("/signup/verify/<token>", methods=["GET", "POST"])
@public
def verify_signup(token: str) -> Page:
    # No sign-up switch here: the account exists already, this only confirms its address.
    try:
        record = services.open_link(token, TokenPurpose.VERIFY_EMAIL)
    except TokenInvalid:
        return link_invalid(TokenPurpose.VERIFY_EMAIL)
    form = ConfirmForm()
    if form.validate_on_submit():
        try:
            services.verify_signup(token)
        except TokenInvalid:
            return link_invalid(TokenPurpose.VERIFY_EMAIL)
        db.session.commit()
        flash("Your email is confirmed. Sign in.", "info")
        return redirect(url_for("auth.login"))
    return page("account/verify_signup.html", form, email=record.user.email)


# --- Profile and email change -----------------------------------------------------------------


def profile_page(
    profile_form: ProfileForm | None = None, email_form: EmailChangeForm | None = None
) -> tuple[str, int]:
    """The profile page; the form that was just submitted (if any) keeps its input and errors."""
    user = me()
    if profile_form is None:
        profile_form = ProfileForm(formdata=None, display_name=user.display_name)
    if email_form is None:
        email_form = EmailChangeForm(formdata=None)
    failed = request.method == "POST" and (profile_form.errors or email_form.errors)
    return render_template(
        "account/profile.html",
        form=profile_form,
        email_form=email_form,
        pending=services.pending_email_change(user),
    ), (422 if failed else 200)


@bp.route("/account/profile", methods=["GET", "POST"])
@requires("profile.edit")
def profile() -> Page:
    form = ProfileForm()
    if request.method == "GET":
        form.display_name.data = me().display_name
    if form.validate_on_submit():
        try:
            changed = services.update_profile(me(), form.display_name.data)
        except AccountError as exc:
            db.session.rollback()
            attach_error(form, exc)
        else:
            db.session.commit()
            flash("Your profile is saved." if changed else "Nothing to change.", "info")
            return redirect(url_for("account.profile"))
    return profile_page(profile_form=form)


@bp.post("/account/email")
@requires("profile.edit")
def request_email_change() -> Page:
    form = EmailChangeForm()
    if form.validate_on_submit():
        try:
            address = services.request_email_change(me(), form.new_email.data, form.password.data)
        except AccountError as exc:
            db.session.rollback()
            attach_error(form, exc)
        else:
            db.session.commit()
            flash(
                f"We sent a confirmation link to {address}. "
                "Your email address changes once you open it.",
                "info",
            )
            return redirect(url_for("account.profile"))
    return profile_page(email_form=form)


@bp.post("/account/email/cancel")
@requires("profile.edit")
def cancel_email_change() -> Response:
    form = ConfirmForm()
    if form.validate_on_submit():
        try:
            services.cancel_email_change(me())
        except AccountError as exc:
            db.session.rollback()
            flash(str(exc), "error")
        else:
            db.session.commit()
            flash("The email change is cancelled; the link sent for it no longer works.", "info")
    return redirect(url_for("account.profile"))


@bp.route("/account/email/confirm/<token>", methods=["GET", "POST"])
@public
def confirm_email(token: str) -> Page:
    try:
        record = services.open_link(token, TokenPurpose.CHANGE_EMAIL)
    except TokenInvalid:
        return link_invalid(TokenPurpose.CHANGE_EMAIL)
    form = ConfirmForm()
    error = None
    if form.validate_on_submit():
        try:
            user = services.confirm_email_change(token)
            db.session.commit()
        except TokenInvalid:
            return link_invalid(TokenPurpose.CHANGE_EMAIL)
        except (AccountError, IntegrityError) as exc:
            db.session.rollback()
            error = (
                str(exc)
                if isinstance(exc, AccountError)
                else "Another account uses this email address, so it cannot become yours."
            )
        else:
            flash(f"Your email address is now {user.email}.", "info")
            signed_in = principal_kind() == "user" and me().id == user.id
            return redirect(url_for("account.profile" if signed_in else "auth.login"))
    return render_template(
        "account/confirm_email.html",
        form=form,
        error=error,
        old_email=record.user.email,
        new_email=record.payload.get("email", ""),
    ), (409 if error else 200)


# --- Password change --------------------------------------------------------------------------


@bp.route("/account/password", methods=["GET", "POST"])
@requires("profile.edit")
def password() -> Page:
    form = PasswordChangeForm()
    if form.validate_on_submit():
        try:
            ended = services.change_password(
                me(), form.current_password.data, form.password.data, keep=g.user_session
            )
        except AccountError as exc:
            db.session.rollback()
            attach_error(form, exc)
        else:
            db.session.commit()
            others = f" {ended} other session(s) were signed out." if ended else ""
            flash(f"Your password has been changed.{others}", "info")
            return redirect(url_for("account.password"))
    return page("account/password.html", form)
