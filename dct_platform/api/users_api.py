from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from dct_platform import policy
from dct_platform.api.schemas import UserAccessSchema, UserCreateSchema, UserSchema
from dct_platform.auth import api_actor
from dct_platform.errors import ValidationFailed
from dct_platform.extensions import db
from dct_platform.models import Site, Trial, User
from dct_platform.models.users import with_access
from dct_platform.roles import Role
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


def _all(model: type, ids: list[int], field: str) -> list[Any]:
    found = list(db.session.scalars(select(model).where(model.id.in_(ids)))) if ids else []
    if len(found) != len(set(ids)):
        missing = sorted(set(ids) - {o.id for o in found})
        raise ValidationFailed("Unknown ids.", {"fields": {field: [f"unknown: {missing}"]}})
    return found


@blp.route("/users")
class Users(MethodView):
    @blp.response(200, UserSchema(many=True))
    def get(self) -> list[User]:
        """All accounts (administrators only)."""
        actor = api_actor()
        policy.require_role(actor, Role.ADMIN)
        return list(
            db.session.scalars(
                select(User)
                .where(policy.visible(actor, User))
                .order_by(User.username)
                .options(*with_access())
            ).unique()
        )

    @blp.arguments(UserCreateSchema)
    @blp.response(201, UserSchema)
    def post(self, body: dict[str, Any]) -> User:
        """Create an account (administrators only). The password given is temporary: its
        owner must change it (POST /api/v1/auth/password) before getting a token."""
        actor = api_actor()
        policy.require_role(actor, Role.ADMIN)
        return create_user(
            db.session,
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
        user = policy.get_visible(db.session, actor, User, user_id)
        set_access(
            db.session,
            actor,
            utcnow(),
            user,
            sites=_all(Site, body["site_ids"], "site_ids"),
            trials=_all(Trial, body["trial_ids"], "trial_ids"),
            reason=body["reason"],
        )
        return user
