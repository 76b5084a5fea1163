from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from dct_platform import policy
from dct_platform.api.schemas import AuditEntrySchema, AuditQuerySchema, AuditVerificationSchema
from dct_platform.audit import VerificationResult, masked_for_oversight, verify_chain
from dct_platform.audit_anchor import CheckpointStore
from dct_platform.audit_reading import TrailQuery, trail_conditions
from dct_platform.auth import api_actor
from dct_platform.extensions import db
from dct_platform.models import AuditEntry
from dct_platform.roles import Role

blp = Blueprint("audit_api", __name__, url_prefix="/api/v1/audit", description="The audit trail")


@blp.route("/entries")
class AuditEntries(MethodView):
    @blp.arguments(AuditQuerySchema, location="query")
    @blp.response(200, AuditEntrySchema(many=True))
    @blp.alt_response(403, description="Administrators only (`forbidden`)")
    @blp.paginate()
    def get(self, args: dict[str, Any], pagination_parameters: Any) -> list[dict[str, Any]]:
        """Audit entries, newest first (administrators only; personal data values hidden)."""
        policy.require_role(api_actor(), Role.ADMIN)
        wanted = TrailQuery(
            table=args.get("table", ""),
            record=args.get("record_id", ""),
            who=args.get("actor", ""),
            subject=args.get("subject", ""),
            since=args.get("since"),
            until=args.get("until"),
        )
        # The same conditions as the administrator's audit page.
        query = select(AuditEntry).where(*trail_conditions(db.session(), wanted))
        pagination_parameters.item_count = (
            db.session.scalar(select(db.func.count()).select_from(query.subquery())) or 0
        )
        page, size = pagination_parameters.page, pagination_parameters.page_size
        return masked_for_oversight(
            db.session(),
            list(
                db.session.scalars(
                    query.order_by(AuditEntry.id.desc()).offset((page - 1) * size).limit(size)
                )
            ),
        )


@blp.route("/verify")
class AuditVerify(MethodView):
    @blp.response(200, AuditVerificationSchema)
    @blp.alt_response(403, description="Administrators only (`forbidden`)")
    def get(self) -> VerificationResult:
        """Recompute the hash chain and report the first broken link (administrators only)."""
        policy.require_role(api_actor(), Role.ADMIN)
        return verify_chain(db.session(), CheckpointStore.from_config(current_app.config))
