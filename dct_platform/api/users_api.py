from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from dct_platform import policy
from dct_platform.api.schemas import (
    ReasonSchema,
    TemporaryPasswordSchema,
    UserAccessSchema,
    UserCreateSchema,
    UserDetailSchema,
    UserQuerySchema,
    UserSchema,
)
from dct_platform.auth import api_actor, throttle_policy
from dct_platform.errors import ValidationFailed
from dct_platform.extensions import db
from dct_platform.models import Site, Trial, User
from dct_platform.roles import Role
from dct_platform.services import accounts
from dct_platform.services.account_lists import AccountCriteria, find_accounts
from dct_platform.services.accounts import create_user, set_access
from dct_platform.timeutil import utcnow

blp = Blueprint(
    "users_api", __name__, url_prefix="/api/v1", description="The caller and user accounts"
)


@blp.route("/me")
class Me(MethodView):
    @blp.response(200, UserSchema)
    def get(self) -> User:
        """The account behind the bearer token."""
        return api_actor()


_Assigned = TypeVar("_Assigned", Site, Trial)


def _all(model: type[_Assigned], ids: list[int], field: str) -> list[_Assigned]:
    found = list(db.session.scalars(select(model).where(model.id.in_(ids)))) if ids else []
    if len(found) != len(set(ids)):
        missing = sorted(set(ids) - {o.id for o in found})
        raise ValidationFailed("Unknown ids.", {"fields": {field: [f"unknown: {missing}"]}})
    return found


@blp.route("/users")
class Users(MethodView):
    @blp.arguments(UserQuerySchema, location="query")
    @blp.response(200, UserSchema(many=True))
    @blp.alt_response(403, description="Administrators only (`forbidden`)")
    @blp.paginate()
    def get(self, args: dict[str, Any], pagination_parameters: Any) -> list[User]:
        """Accounts, found as on the administrator's account page (administrators only)."""
        actor = api_actor()
        policy.require_role(actor, Role.ADMIN)
        found = find_accounts(
            db.session(),
            actor,
            AccountCriteria(
                q=args.get("q", ""),
                role=args.get("role"),
                site_id=args.get("site_id"),
                page=pagination_parameters.page,
                page_size=pagination_parameters.page_size,
            ),
        )
        pagination_parameters.item_count = found.total
        return found.users

    @blp.arguments(UserCreateSchema)
    @blp.response(201, UserSchema)
    @blp.alt_response(403, description="Administrators only (`forbidden`)")
    @blp.alt_response(409, description="The username is taken (`conflict`)")
    def post(self, body: dict[str, Any]) -> User:
        """Create an account (administrators only). The password given is temporary: its
        owner must change it (POST /api/v1/auth/password) before getting a token."""
        actor = api_actor()
        policy.require_role(actor, Role.ADMIN)
        return create_user(
            db.session(),
            actor,
            utcnow(),
            username=body["username"],
            password=body["password"],
            role=body["role"],
            display_name=body["display_name"],
            email=body["email"],
            timezone=body["timezone"],
            sites=_all(Site, body["site_ids"], "site_ids"),
            trials=_all(Trial, body["trial_ids"], "trial_ids"),
            # The administrator chose this password, so it is known to someone else.
            must_change_password=True,
        )


@blp.route("/users/<int:user_id>/access")
class UserAccess(MethodView):
    @blp.arguments(UserAccessSchema)
    @blp.response(200, UserSchema)
    @blp.alt_response(403, description="Administrators only")
    @blp.alt_response(409, description="The user is principal investigator of a site removed")
    def put(self, body: dict[str, Any], user_id: int) -> User:
        """Replace the sites or trials an account works on (administrators only)."""
        actor = api_actor()
        policy.require_role(actor, Role.ADMIN)
        user = policy.get_visible(db.session(), actor, User, user_id)
        set_access(
            db.session(),
            actor,
            utcnow(),
            user,
            sites=_all(Site, body["site_ids"], "site_ids"),
            trials=_all(Trial, body["trial_ids"], "trial_ids"),
            reason=body["reason"],
        )
        return user


def _admin_and_user(user_id: int) -> tuple[User, User]:
    actor = api_actor()
    policy.require_role(actor, Role.ADMIN)
    return actor, policy.get_visible(db.session(), actor, User, user_id)


@dataclass(frozen=True)
class _Detail:
    user: User
    lockout: accounts.Lockout | None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.user, name)


def _detail(user: User) -> _Detail:
    lockouts = accounts.lockouts(db.session(), [user], utcnow(), throttle_policy())
    return _Detail(user, lockouts.get(user.id))


ADMINS_ONLY = "Administrators only (`forbidden`)"


@blp.route("/users/<int:user_id>")
class UserDetail(MethodView):
    @blp.response(200, UserDetailSchema)
    @blp.alt_response(403, description=ADMINS_ONLY)
    @blp.alt_response(404, description="No such account")
    def get(self, user_id: int) -> _Detail:
        """One account, with its sign-in lockout (administrators only)."""
        return _detail(_admin_and_user(user_id)[1])


@blp.route("/users/<int:user_id>/<any(disable, enable):action>")
class UserEnabled(MethodView):
    @blp.arguments(ReasonSchema)
    @blp.response(200, UserDetailSchema)
    @blp.alt_response(403, description=ADMINS_ONLY)
    @blp.alt_response(404, description="No such account")
    @blp.alt_response(409, description="Administrators cannot disable themselves (`conflict`)")
    def post(self, body: dict[str, Any], user_id: int, action: str) -> _Detail:
        """Disable an account (its sessions and tokens end at once) or enable it again."""
        actor, user = _admin_and_user(user_id)
        accounts.set_enabled(
            db.session(), actor, utcnow(), user, action == "enable", body["reason"]
        )
        return _detail(user)


@blp.route("/users/<int:user_id>/unlock")
class UserUnlock(MethodView):
    @blp.arguments(ReasonSchema)
    @blp.response(200, UserDetailSchema)
    @blp.alt_response(403, description=ADMINS_ONLY)
    @blp.alt_response(404, description="No such account")
    def post(self, body: dict[str, Any], user_id: int) -> _Detail:
        """Lift the account's sign-in lockout, from every address."""
        actor, user = _admin_and_user(user_id)
        accounts.unlock(db.session(), actor, utcnow(), user, body["reason"])
        return _detail(user)


@blp.route("/users/<int:user_id>/password-reset")
class UserPasswordReset(MethodView):
    @blp.arguments(ReasonSchema)
    @blp.response(201, TemporaryPasswordSchema)
    @blp.alt_response(403, description=ADMINS_ONLY)
    @blp.alt_response(404, description="No such account")
    @blp.alt_response(409, description="Administrators change their own password (`conflict`)")
    def post(self, body: dict[str, Any], user_id: int) -> dict[str, str]:
        """Issue a temporary password (answered once); every session of the account ends
        and its owner must choose a new password at the next sign-in."""
        actor, user = _admin_and_user(user_id)
        password = accounts.reset_password(db.session(), actor, utcnow(), user, body["reason"])
        return {"username": user.username, "temporary_password": password}
