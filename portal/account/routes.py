"""Account pages on partner hosts: password reset, sign-up, profile, email and password."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user
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
    VerifySignupForm,
    attach_error,
)
from portal.auth.guards import principal_kind, public
from portal.auth.passwords import MIN_PASSWORD_LENGTH
from portal.clock import utcnow
from portal.exceptions import Conflict, PortalError
from portal.features.evaluation import feature, feature_on
from portal.roles.permissions import Permission
from portal.roles.policy import requires
from portal.support.guards import impersonating, owner_only
from portal.support.queries import account_activity
from portal.text import counted
from portal.tokens.models import TokenPurpose
from portal.tokens.services import TokenInvalid
from portal.unit_of_work import attempt
from portal.users.models import User
from portal.web import answer_no_sooner_than_the_floor, perform

bp = Blueprint("account", __name__, subdomain="<partner>")

Page = str | tuple[str, int] | Response


@bp.context_processor
def password_rules() -> dict[str, int]:
    return {"min_password_length": MIN_PASSWORD_LENGTH}


def link_invalid(purpose: TokenPurpose) -> tuple[str, int]:
    """The one answer for an unknown, expired, used, revoked, tampered or foreign link."""
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
        answer_no_sooner_than_the_floor()
        try:
            with attempt():
                services.request_password_reset(form.email.data, client_ip=request.remote_addr)
        except PortalError as exc:
            attach_error(form, exc)
        else:
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
            with attempt():
                user = services.reset_password(token, form.password.data)
        except TokenInvalid:
            return link_invalid(TokenPurpose.PASSWORD_RESET)
        except PortalError as exc:
            attach_error(form, exc)
        else:
            flash("Your password has been changed. Sign in with your new password.", "info")
            session["sign_in_as"] = user.email
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
        answer_no_sooner_than_the_floor()
        try:
            with attempt():
                services.sign_up(
                    form.email.data, form.display_name.data, client_ip=request.remote_addr
                )
        except Conflict:
            # A concurrent sign-up with the same address won; answer as for a known address.
            return redirect(url_for("account.signup", sent=1))
        except PortalError as exc:
            attach_error(form, exc)
        else:
            return redirect(url_for("account.signup", sent=1))
    return page("account/signup.html", form, sent="sent" in request.args)


@bp.route("/signup/verify/<token>", methods=["GET", "POST"])
@public
def verify_signup(token: str) -> Page:
    # No sign-up switch here: the pending account exists already, this only completes it.
    try:
        record = services.open_link(token, TokenPurpose.VERIFY_EMAIL)
    except TokenInvalid:
        return link_invalid(TokenPurpose.VERIFY_EMAIL)
    form = VerifySignupForm()
    if request.method == "GET":
        form.display_name.data = record.user.display_name
    if form.validate_on_submit():
        try:
            with attempt():
                services.verify_signup(token, form.display_name.data, form.password.data)
        except (TokenInvalid, Conflict):
            return link_invalid(TokenPurpose.VERIFY_EMAIL)
        except PortalError as exc:
            attach_error(form, exc)
        else:
            flash("Your account is ready. Sign in with the password you chose.", "info")
            session["sign_in_as"] = record.user.email
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
        acting=impersonating(),
    ), (422 if failed else 200)


@bp.route("/account/profile", methods=["GET", "POST"])
@requires("profile.edit")
def profile() -> Page:
    form = ProfileForm()
    if request.method == "GET":
        form.display_name.data = me().display_name
    if form.validate_on_submit():
        try:
            with attempt():
                changed = services.update_profile(me(), form.display_name.data)
        except PortalError as exc:
            attach_error(form, exc)
        else:
            flash("Your profile is saved." if changed else "Nothing to change.", "info")
            return redirect(url_for("account.profile"))
    return profile_page(profile_form=form)


@bp.post("/account/email")
@requires("profile.edit")
@owner_only("change the email address")
def request_email_change() -> Page:
    form = EmailChangeForm()
    if form.validate_on_submit():
        answer_no_sooner_than_the_floor()
        try:
            with attempt():
                address = services.request_email_change(
                    me(), form.new_email.data, form.password.data, client_ip=request.remote_addr
                )
        except PortalError as exc:
            attach_error(form, exc)
        else:
            flash(
                f"We sent a confirmation link to {address}. "
                "Your email address changes once you open it, signed in to this account.",
                "info",
            )
            return redirect(url_for("account.profile"))
    return profile_page(email_form=form)


@bp.post("/account/email/cancel")
@requires("profile.edit")
@owner_only("change the email address")
def cancel_email_change() -> Response:
    form = ConfirmForm()
    back = url_for("account.profile")
    if not form.validate_on_submit():
        return redirect(back)

    def act() -> str:
        services.cancel_email_change(me())
        return "The email change is cancelled; the link sent for it no longer works."

    return perform(act, back=back)


@bp.route("/account/email/confirm/<token>", methods=["GET", "POST"])
@public
@owner_only("change the email address")
def confirm_email(token: str) -> Page:
    try:
        record = services.open_link(token, TokenPurpose.CHANGE_EMAIL)
    except TokenInvalid:
        return link_invalid(TokenPurpose.CHANGE_EMAIL)
    if not (principal_kind() == "user" and me().id == record.user_id):
        # Only the account's owner may take an address for it: someone who merely received
        # the mail (and never asked for it) cannot tie their address to a stranger's account.
        return render_template(
            "account/confirm_email.html",
            form=None,
            sign_in_url=url_for("auth.login", next=request.path),
            new_email=record.payload.get("email", ""),
        ), 401
    form = ConfirmForm()
    error = None
    if form.validate_on_submit():
        try:
            with attempt("Another account uses this email address, so it cannot become yours."):
                user = services.confirm_email_change(token)
        except TokenInvalid:
            return link_invalid(TokenPurpose.CHANGE_EMAIL)
        except PortalError as exc:
            error = exc.message
        else:
            flash(f"Your email address is now {user.email}.", "info")
            return redirect(url_for("account.profile"))
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
@owner_only("change the password")
def password() -> Page:
    form = PasswordChangeForm()
    if form.validate_on_submit():
        try:
            with attempt():
                ended = services.change_password(
                    me(),
                    form.current_password.data,
                    form.password.data,
                    keep=g.user_session,
                    client_ip=request.remote_addr,
                )
        except PortalError as exc:
            attach_error(form, exc)
        else:
            others = (
                f" {counted(ended, 'other session')} {'was' if ended == 1 else 'were'} signed out."
                if ended
                else ""
            )
            flash(f"Your password has been changed.{others}", "info")
            return redirect(url_for("account.password"))
    return page("account/password.html", form)


# --- Activity -----------------------------------------------------------------------------


@bp.get("/account/activity")
@requires(Permission.PORTAL_VIEW)
def activity() -> str:
    """When support accessed the account, and why; the account's recent sign-ins."""
    activity = account_activity(me())
    return render_template(
        "account/activity.html",
        accesses=activity.accesses,
        sign_ins=activity.sign_ins,
        now=utcnow(),
    )
