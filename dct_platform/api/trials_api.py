from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from dct_platform import policy
from dct_platform.api.schemas import (
    InvestigatorAppointmentSchema,
    SiteCreateSchema,
    SiteSchema,
    TrialCreateSchema,
    TrialSchema,
)
from dct_platform.auth import api_actor
from dct_platform.errors import NotFound
from dct_platform.extensions import db
from dct_platform.models import Site, Trial, User
from dct_platform.services import trials as service
from dct_platform.timeutil import utcnow

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

    @blp.arguments(TrialCreateSchema)
    @blp.response(201, TrialSchema)
    @blp.alt_response(403, description="Administrators only (`forbidden`)")
    @blp.alt_response(409, description="The protocol number is taken (`conflict`)")
    def post(self, body: dict[str, Any]) -> Trial:
        """Register a trial (administrators); the sponsor is created if new."""
        actor, now = api_actor(), utcnow()
        sponsor = service.get_or_create_sponsor(db.session(), actor, now, body.pop("sponsor"))
        return service.create_trial(db.session(), actor, now, sponsor=sponsor, **body)


@blp.route("/trials/<int:trial_id>/sites")
class TrialSites(MethodView):
    @blp.response(200, SiteSchema(many=True))
    @blp.alt_response(404, description="No such trial for the caller")
    def get(self, trial_id: int) -> list[Site]:
        """The sites of a trial that the caller may see."""
        actor = api_actor()
        trial = policy.get_visible(db.session(), actor, Trial, trial_id)
        return list(
            db.session.scalars(
                select(Site)
                .where(Site.trial_id == trial.id, policy.visible(actor, Site))
                .order_by(Site.site_number)
            )
        )

    @blp.arguments(SiteCreateSchema)
    @blp.response(201, SiteSchema)
    @blp.alt_response(403, description="Administrators only (`forbidden`)")
    @blp.alt_response(404, description="No such trial for the caller")
    @blp.alt_response(409, description="The site number is taken in this trial (`conflict`)")
    def post(self, body: dict[str, Any], trial_id: int) -> Site:
        """Open a site in a trial (administrators)."""
        actor = api_actor()
        trial = policy.get_visible(db.session(), actor, Trial, trial_id)
        return service.create_site(db.session(), actor, utcnow(), trial=trial, **body)


@blp.route("/sites/<int:site_id>")
class SiteDetail(MethodView):
    @blp.response(200, SiteSchema)
    @blp.alt_response(404, description="No such site for the caller")
    def get(self, site_id: int) -> Site:
        return policy.get_visible(db.session(), api_actor(), Site, site_id)


@blp.route("/sites/<int:site_id>/principal-investigator")
class SitePrincipalInvestigator(MethodView):
    @blp.arguments(InvestigatorAppointmentSchema)
    @blp.response(200, SiteSchema)
    @blp.alt_response(403, description="Administrators only (`forbidden`)")
    @blp.alt_response(404, description="No such site for the caller, or no such user")
    def put(self, body: dict[str, Any], site_id: int) -> Site:
        """Appoint the site's principal investigator from now on; earlier work stays
        attributed to the investigator responsible at its time."""
        actor = api_actor()
        site = policy.get_visible(db.session(), actor, Site, site_id)
        investigator = db.session.get(User, body["investigator_id"])
        if investigator is None:
            raise NotFound(f"User {body['investigator_id']} was not found.")
        service.appoint_principal_investigator(
            db.session(), actor, utcnow(), site, investigator, reason=body["reason"]
        )
        return site
