"""Configuration read from the environment, with safe defaults for a first run."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

DEFAULT_FEATURE_PACKAGES = ("patient_portal", "logistics", "devices")


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _secret_key(instance_path: Path) -> str:
    """Use SECRET_KEY when set; otherwise keep one generated key in the instance folder.

    A key regenerated at every start would log every user out on restart, and a
    hard-coded one would let anyone forge sessions.
    """
    if key := os.environ.get("SECRET_KEY"):
        return key
    key_file = instance_path / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


def normalise_database_url(url: str) -> str:
    """Point plain postgres URLs at psycopg 3, the only PostgreSQL driver we install."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def load_config(instance_path: Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    env = os.environ
    sqlite_default = f"sqlite:///{instance_path / 'dct.sqlite3'}"
    database_url = normalise_database_url(env.get("DATABASE_URL") or sqlite_default)
    config: dict[str, Any] = {
        "SECRET_KEY": None,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "FEATURE_PACKAGES": tuple(
            p.strip()
            for p in env.get("DCT_FEATURE_PACKAGES", ",".join(DEFAULT_FEATURE_PACKAGES)).split(",")
            if p.strip()
        ),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": _bool(env.get("SESSION_COOKIE_SECURE"), False),
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "PERMANENT_SESSION_LIFETIME": int(env.get("SESSION_LIFETIME_SECONDS", "3600")),
        "WTF_CSRF_TIME_LIMIT": None,
        "MAX_CONTENT_LENGTH": int(env.get("MAX_CONTENT_LENGTH", str(8 * 1024 * 1024))),
        "AUDIT_PAGE_SIZE": int(env.get("AUDIT_PAGE_SIZE", "200")),
        # Signs the audit checkpoints; kept out of the database on purpose (audit_anchor.py).
        "AUDIT_SIGNING_KEY": env.get("AUDIT_SIGNING_KEY") or None,
        "AUDIT_SIGNING_KEY_FILE": str(instance_path / "audit_signing_key"),
        "AUDIT_CHECKPOINT_FILE": env.get("AUDIT_CHECKPOINT_FILE")
        or str(instance_path / "audit-checkpoints.jsonl"),
        "API_TOKEN_TTL_SECONDS": int(env.get("API_TOKEN_TTL_SECONDS", str(12 * 3600))),
        "LOGIN_MAX_FAILURES": int(env.get("LOGIN_MAX_FAILURES", "5")),
        "LOGIN_FAILURE_WINDOW_SECONDS": int(env.get("LOGIN_FAILURE_WINDOW_SECONDS", "900")),
        "LOGIN_MAX_FAILURES_PER_IP": int(env.get("LOGIN_MAX_FAILURES_PER_IP", "50")),
        # Past this many failures for one username from any address, attempts are slowed
        # down rather than refused, so that nobody can lock an account's owner out.
        "LOGIN_MAX_FAILURES_PER_USERNAME": int(env.get("LOGIN_MAX_FAILURES_PER_USERNAME", "20")),
        # Reverse proxies in front of the app; their X-Forwarded-* headers are trusted only
        # when set, so that sign-in throttling sees the real client address.
        "TRUSTED_PROXY_COUNT": int(env.get("TRUSTED_PROXY_COUNT", "0")),
        "SMTP_HOST": env.get("SMTP_HOST", "127.0.0.1"),
        "SMTP_PORT": int(env.get("SMTP_PORT", "25")),
        "MAIL_FROM": env.get("MAIL_FROM", "no-reply@dct.invalid"),
        "SMTP_TIMEOUT": float(env.get("SMTP_TIMEOUT", "10")),
        "SMTP_USERNAME": env.get("SMTP_USERNAME") or None,
        "SMTP_PASSWORD": env.get("SMTP_PASSWORD") or None,
        "SMTP_STARTTLS": _bool(env.get("SMTP_STARTTLS"), False),
        # flask-smorest: the OpenAPI document is generated from the marshmallow schemas.
        "API_TITLE": "DCT Platform API",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api/v1",
        "OPENAPI_JSON_PATH": "openapi.json",
    }
    if overrides:
        config.update(overrides)
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = _secret_key(instance_path)
    config["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(config["SQLALCHEMY_DATABASE_URI"])
    if config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # SQLite serialises writers; waiting beats failing when the scheduler and a request collide.
        config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"timeout": 30}}
    return config
