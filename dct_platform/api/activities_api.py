from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from dct_platform import policy
from dct_platform.api.schemas import Id, InputDateTime, UtcDateTime, doc
from dct_platform.auth import api_actor
from dct_platform.extensions import db
from dct_platform.models import RemoteActivity
from dct_platform.services.activities import ActivityFilter, activity_query

blp = Blueprint(
    "activities_api",
    __name__,
    url_prefix="/api/v1/activities",
    description="Remote activities, attributed to the site responsible when they happened",
)


class ActivityQuerySchema(Schema):
    patient_id = Id(from_text=True)
    site_id = Id(from_text=True, metadata={"description": "Responsible or related site"})
    type = fields.String(metadata={"description": "Activity type, e.g. enrolment"})
    since = InputDateTime(metadata={"description": "Occurred at or after (with offset)"})
    until = InputDateTime(metadata={"description": "Occurred before (with offset)"})


class ActivitySchema(Schema):
    id = fields.Integer()
    activity_type = fields.String(metadata=doc("The registered activity type", "enrolment"))
    trial_id = fields.Integer()
    patient_id = fields.Integer()
    site_id = fields.Integer(metadata={"description": "Responsible when it happened"})
    investigator_id = fields.Integer(allow_none=True)
    related_site_id = fields.Integer(allow_none=True)
    originator_kind = fields.String(
        metadata=doc("Who produced the data: patient, nurse, staff, device or system", "staff")
    )
    originator_user_id = fields.Integer(allow_none=True)
    originator_ref = fields.String(allow_none=True)
    modality = fields.String(allow_none=True)
    location_type = fields.String(allow_none=True)
    status = fields.String(metadata=doc("The activity's status", "completed"))
    occurred_at = UtcDateTime()
    ends_at = UtcDateTime(allow_none=True)
    recorded_at = UtcDateTime()
    package = fields.String(metadata=doc("The package that recorded it", "core"))
    record_table = fields.String()
    record_id = fields.String()
    summary = fields.String(metadata=doc("What happened, pseudonymous"))


@blp.route("")
class Activities(MethodView):
    @blp.arguments(ActivityQuerySchema, location="query")
    @blp.response(200, ActivitySchema(many=True))
    @blp.paginate()
    def get(self, args: dict[str, Any], pagination_parameters: Any) -> list[RemoteActivity]:
        """Remote activities the caller may see, newest first."""
        actor = api_actor()
        query = activity_query(
            policy.visible(actor, RemoteActivity, session=db.session()),
            ActivityFilter(
                patient_id=args.get("patient_id"),
                site_id=args.get("site_id"),
                activity_type=args.get("type"),
                since=args.get("since"),
                until=args.get("until"),
            ),
        )
        pagination_parameters.item_count = (
            db.session.scalar(db.select(db.func.count()).select_from(query.subquery())) or 0
        )
        page, size = pagination_parameters.page, pagination_parameters.page_size
        return list(db.session.scalars(query.offset((page - 1) * size).limit(size)))
