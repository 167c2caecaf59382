"""Console routes for account administration (admin only): list, create, change role, (de)activate."""

from __future__ import annotations

from typing import cast

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import select

from app.console import useradmin
from app.console.accounts import AccountError, create_user
from app.console.blueprint import bp
from app.console.forms import UserActiveForm, UserCreateForm, UserRoleForm
from app.console.permissions import require_role
from app.console.routes import _actor, _locked, _run_action
from app.extensions import db
from app.models import User, utcnow


@bp.route("/users", methods=["GET", "POST"])
@require_role("admin")
def users() -> ResponseReturnValue:
    form = UserCreateForm()
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                create_user(
                    cast(str, form.email.data), cast(str, form.password.data), form.role.data, actor=_actor()
                )
                db.session.commit()
                flash(_("Account created."), "success")
                return redirect(url_for("console.users"), 303)
            except AccountError as exc:
                db.session.rollback()
                flash(str(exc), "error")
                status = 409
        else:
            status = 400
    accounts = db.session.scalars(select(User).order_by(User.email)).all()
    return render_template(
        "console/users.html",
        form=form,
        accounts=accounts,
        role_form=UserRoleForm(),
        active_form=UserActiveForm(),
    ), status


@bp.post("/users/<int:user_id>/role")
@require_role("admin")
def user_role(user_id: int) -> ResponseReturnValue:
    form = UserRoleForm()
    user = _locked(User, user_id)
    back = url_for("console.users")
    return _run_action(
        form,
        lambda: useradmin.change_role(user, form.role.data, utcnow(), _actor()),
        back,
        _("Role changed."),
    )


@bp.post("/users/<int:user_id>/active")
@require_role("admin")
def user_active(user_id: int) -> ResponseReturnValue:
    form = UserActiveForm()
    user = _locked(User, user_id)
    back = url_for("console.users")
    return _run_action(
        form,
        lambda: useradmin.set_active(user, form.active.data == "1", utcnow(), _actor()),
        back,
        _("Account updated."),
    )
