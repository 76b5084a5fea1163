"""An example feature package, kept with the tests: everything a capability adds to the
platform, added from outside `dct_platform/` through its extension points.

It follows the package layout every capability uses (README, "A feature package"):
`models.py` its tables, `migrations/` its own Alembic branch, `policy.py` its actions,
scopes and rules, `services.py` its domain rules, its event with an after-commit receiver
and its remote-activity type. Its story: a mobile nurse sees the patients of the home visits assigned
to her, and their personal data only on the visit day.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    # Importing registers the tables on the metadata and the rules with the policy.
    from tests.example_package import models, policy, services  # noqa: F401
