from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from dct_platform import policy
from dct_platform.api.schemas import SiteSchema, TrialSchema
from dct_platform.auth import api_actor
from dct_platform.extensions import db
from dct_platform.models import Site, Trial

blp = Blueprint("trials_api", __name__, url_prefix="/api/v1", description="Trials and sites")


@blp.route("/trials")
class Trials(MethodView):
    @blp.response(200, TrialSchema(many=True))
    def get(self) -> list[Trial]:
        """Trials the caller works on."""
        actor = api_actor()
        return list(
            db.session.scalars(select(Trial).where(policy.visible(actor, Trial)).order_by(Trial.id))
        )


@blp.route("/trials/<int:trial_id>/sites")
class TrialSites(MethodView):
    @blp.response(200, SiteSchema(many=True))
    @blp.alt_response(404, description="No such trial for the caller")
    def get(self, trial_id: int) -> list[Site]:
        """The sites of a trial that the caller may see."""
        actor = api_actor()
        trial = policy.get_visible(db.session, actor, Trial, trial_id)
        return list(
            db.session.scalars(
                select(Site)
                .where(Site.trial_id == trial.id, policy.visible(actor, Site))
                .order_by(Site.site_number)
            )
        )


@blp.route("/sites/<int:site_id>")
class SiteDetail(MethodView):
    @blp.response(200, SiteSchema)
    @blp.alt_response(404, description="No such site for the caller")
    def get(self, site_id: int) -> Site:
        return policy.get_visible(db.session, api_actor(), Site, site_id)
