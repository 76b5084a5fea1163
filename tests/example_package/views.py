"""The package's page: the home of its own role, with its own navigation entry."""

from __future__ import annotations

from flask import Blueprint, Flask, render_template_string
from flask_login import current_user
from sqlalchemy import select

from dct_platform import policy
from dct_platform.extensions import db
from dct_platform.models import Patient
from dct_platform.navigation import add_nav_item, set_home
from dct_platform.web.guards import roles_required
from tests.example_package.models import ExampleHomeVisit
from tests.example_package.policy import COORDINATOR

bp = Blueprint("example", __name__)

PAGE = """{% extends "base.html" %}
{% block title %}Home visits{% endblock %}
{% block content %}<h1>Home visits</h1>
<ul>{% for number, day in visits %}<li>{{ number }}: {{ day }}</li>{% endfor %}</ul>
{% endblock %}"""


@bp.get("/example/visits")
@roles_required(COORDINATOR)
def visits() -> str:
    rows = db.session.execute(
        select(Patient.subject_number, ExampleHomeVisit.visit_date)
        .join(ExampleHomeVisit, ExampleHomeVisit.patient_id == Patient.id)
        .where(policy.visible(current_user, Patient))
        .order_by(ExampleHomeVisit.visit_date)
    )
    return render_template_string(PAGE, visits=list(rows))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    set_home(app, COORDINATOR, "example.visits")
    add_nav_item(app, [COORDINATOR], "Home visits", "example.visits", order=10)
