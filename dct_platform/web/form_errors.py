from __future__ import annotations

from flask_wtf import FlaskForm

from dct_platform.errors import DomainError


def show_domain_error(form: FlaskForm, exc: DomainError) -> None:
    """Put a service's refusal on the form: per-field messages inline, the rest on top."""
    placed = False
    for field, messages in exc.details.get("fields", {}).items():
        if field in form:
            form[field].errors = list(messages)
            placed = True
    if not placed or exc.status != 422:
        form.form_errors.append(exc.message)
