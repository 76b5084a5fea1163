"""Languages of the person-facing pages.

Patients see the portal in their preferred language; the sign-in page follows the
browser's language. Staff pages are written in English only and stay English, so that no
page mixes two languages.
"""

from __future__ import annotations

from flask import Flask, g, has_request_context, request
from flask_babel import Babel, get_locale
from flask_login import current_user
from sqlalchemy import select

from dct_platform.extensions import db
from dct_platform.models import Patient
from dct_platform.roles import Role, role_label

# Languages with a complete catalogue in dct_platform/translations.
SUPPORTED_LANGUAGES = {"en": "English", "de": "Deutsch", "ja": "日本語"}
DEFAULT_LANGUAGE = "en"


def patient_language(user_id: int) -> str | None:
    return db.session.scalar(select(Patient.preferred_language).where(Patient.user_id == user_id))


def select_locale() -> str:
    if not has_request_context():  # CLI commands and jobs: messages in the default language
        return DEFAULT_LANGUAGE
    if "dct_locale" in g:
        return g.dct_locale
    locale = DEFAULT_LANGUAGE
    if current_user and current_user.is_authenticated:
        if current_user.role == Role.PATIENT:
            preferred = (patient_language(current_user.id) or "").split("-")[0]
            locale = preferred if preferred in SUPPORTED_LANGUAGES else DEFAULT_LANGUAGE
    else:
        locale = request.accept_languages.best_match(SUPPORTED_LANGUAGES) or DEFAULT_LANGUAGE
    g.dct_locale = locale
    return locale


def init_app(app: Flask) -> None:
    Babel(app, locale_selector=select_locale)
    app.jinja_env.globals["role_name"] = role_label
    app.jinja_env.globals["get_locale"] = get_locale
