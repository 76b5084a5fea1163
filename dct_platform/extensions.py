"""Extensions created unbound and bound to the app in the factory."""

from __future__ import annotations

from typing import Any

from flask_login import LoginManager
from flask_smorest import Api, Blueprint
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from marshmallow import fields as ma_fields
from marshmallow import validate as ma_validate
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from dct_platform.errors import ErrorSchema

# Named constraints keep Alembic migrations identical on PostgreSQL and SQLite.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# The largest row offset a list may reach: SQLAlchemy binds OFFSET cast to a 32-bit
# integer on PostgreSQL, so a larger `(page - 1) * page_size` is a database error.
MAX_OFFSET = 2**31 - 1


def bound_pagination(blp: Blueprint) -> None:
    """Cap `?page=` on every paginated endpoint of `blp` so that no offset passes MAX_OFFSET.

    flask-smorest 0.47 builds each endpoint's pagination schema inside `paginate()` (a
    module-level factory with no hook for a maximum page), and a Blueprint subclass could
    only change it by re-implementing `paginate`. The class it built is kept in the
    blueprint's documentation info and is the very one that parses each request, so its
    `page` field is replaced there, before the documentation is generated. Done at
    registration, it covers every API blueprint, core or feature, whatever its class."""
    for endpoint_doc in blp._docs.values():
        for operation in endpoint_doc.values():
            pagination = operation.get("pagination") if isinstance(operation, dict) else None
            if not pagination:
                continue
            declared = pagination["parameters"]["schema"]._declared_fields
            max_size = max(
                v.max for v in declared["page_size"].validators if isinstance(v, ma_validate.Range)
            )
            declared["page"] = ma_fields.Integer(
                load_default=declared["page"].load_default,
                validate=ma_validate.Range(min=1, max=MAX_OFFSET // max_size + 1),
            )


# flask-smorest documents X-Pagination with its metadata schema, as if the header were an
# object; it is one JSON text, which a client must parse.
PAGINATION_HEADER_DOC = {
    "description": "The list's totals, as a JSON object in a string: `total` (items), "
    "`total_pages`, and where they exist `first_page`, `last_page`, `page`, "
    "`previous_page` and `next_page`",
    "schema": {
        "type": "string",
        "example": '{"total": 42, "total_pages": 5, "first_page": 1, "last_page": 5, '
        '"page": 2, "previous_page": 1, "next_page": 3}',
    },
}


class PlatformApi(Api):
    """flask-smorest Api whose error handlers we replace with the platform's single format,
    and whose document shows that format (`ErrorSchema`) for every error it lists."""

    # A class attribute: the Api registers its error responses while it is constructed.
    ERROR_SCHEMA = ErrorSchema
    # No catch-all `default` response: each operation lists the statuses it answers, so a
    # client, and the schemathesis run, can hold the API to that list.
    DEFAULT_ERROR_RESPONSE_NAME = None

    def _register_pagination_header(self) -> None:
        self.spec.components.header("PAGINATION", PAGINATION_HEADER_DOC, lazy=True)

    def _register_error_handlers(self) -> None:  # pragma: no cover - deliberately empty
        return None

    def register_blueprint(self, blp: Blueprint, **options: Any) -> None:
        bound_pagination(blp)
        super().register_blueprint(blp, **options)


db = SQLAlchemy(model_class=Base)
login_manager = LoginManager()
csrf = CSRFProtect()
