"""An example feature package, kept with the tests: everything a capability adds to the
platform, added from outside `dct_platform/` through its extension points.

It follows the package layout every capability uses (README, "A feature package"):
`models.py` its tables, `migrations/` its own Alembic branch, `policy.py` its actions, its
role, scopes and rules, `views.py` its role's home page and navigation, `services.py` its
domain rules, its event with an after-commit receiver and its remote-activity type. Its
story: a mobile nurse sees the patients of the home visits assigned to her, and their
personal data only on the visit day; a coordinator of the package's own role sees every
patient with a home visit.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    # Importing registers the tables on the metadata and the rules with the policy.
    from tests.example_package import models, policy, services, views  # noqa: F401

    views.init_app(app)
