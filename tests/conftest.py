from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

# Argon2 is slow on purpose, and its cost is read once when dct_platform.security is
# imported, so it is lowered here, before anything imports the app. Processes the tests start
# inherit the environment, so `dct seed-demo`, `dct demo` and the rest hash cheaply too.
# setdefault: whoever wants the suite at production cost sets the variables themselves.
os.environ.setdefault("PASSWORD_HASH_TIME_COST", "1")
os.environ.setdefault("PASSWORD_HASH_MEMORY_KIB", "8")
os.environ.setdefault("PASSWORD_HASH_PARALLELISM", "1")

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from dct_platform import create_app
from dct_platform.audit import seal_all
from dct_platform.extensions import db
from dct_platform.migrate import upgrade
from dct_platform.timeutil import set_clock
from tests.support.clock import TestClock
from tests.support.database import (
    create_postgres_test_database,
    empty_postgres,
    fresh_sqlite_copy,
    is_postgres,
)
from tests.support.live_server import LiveServer
from tests.support.loopback_http import LoopbackHTTPServer
from tests.support.smtp import LoopbackSMTPServer
from tests.support.world import World, build_world

TEST_SECRET = "test-secret-key-not-for-production"


def make_app(database_url: str, instance: Path, **overrides: object) -> Flask:
    config = {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "TESTING": True,
        "SECRET_KEY": TEST_SECRET,
        **overrides,
    }
    return create_app(config, instance_path=str(instance))


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Migrate from empty to head once: every test runs on the schema the migrations make."""
    instance = tmp_path_factory.mktemp("instance")
    if is_postgres():
        url = create_postgres_test_database()
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'template.sqlite3'}"
    app = make_app(url, instance)
    upgrade(app)
    with app.app_context():
        db.engine.dispose()
    yield url


@pytest.fixture
def database_url(migrated_database: str, tmp_path: Path) -> Iterator[str]:
    if is_postgres():
        yield migrated_database
        empty_postgres(migrated_database)
    else:
        yield fresh_sqlite_copy(
            Path(migrated_database.removeprefix("sqlite:///")), tmp_path / "test.sqlite3"
        )


@pytest.fixture
def clock() -> TestClock:
    """The `app`'s clock: the system clock until a test calls `.freeze()` or `.advance()`."""
    return TestClock()


@pytest.fixture
def app(database_url: str, tmp_path: Path, clock: TestClock) -> Iterator[Flask]:
    app = make_app(database_url, tmp_path / "instance")
    set_clock(app, clock)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def session(app: Flask) -> Iterator[Session]:
    with app.app_context():
        yield db.session
        db.session.rollback()


@pytest.fixture
def now() -> datetime:
    return datetime(2026, 3, 10, 9, 30, tzinfo=UTC)


@pytest.fixture
def world(app: Flask, clock: TestClock) -> World:
    """A committed trial; ids only, re-read objects through `session` when needed."""
    with app.app_context():
        w = build_world(db.session, clock())
        seal_all(db.session)  # as the scheduler's sealer would have by now
        # Keep plain attribute access working after the app context closes.
        for obj in [w.trial, w.berlin, w.tokyo, *w.users.values(), *w.patients.values()]:
            db.session.refresh(obj)
            db.session.expunge(obj)
        db.session.remove()
    return w


@pytest.fixture
def live_server(app: Flask) -> Iterator[LiveServer]:
    """The app served over real HTTP on loopback by a threaded server."""
    with LiveServer(app) as server:
        yield server


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="session")
def scratch_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


@pytest.fixture
def smtp_server() -> Iterator[LoopbackSMTPServer]:
    """A real SMTP server on loopback; point the app's SMTP_HOST/SMTP_PORT at it."""
    with LoopbackSMTPServer() as server:
        yield server


@pytest.fixture
def outside_service() -> Iterator[LoopbackHTTPServer]:
    """A real HTTP server on loopback standing in for a courier, video provider or other
    outside service: script its answers with `.respond(...)`, read `.requests` afterwards."""
    with LoopbackHTTPServer() as server:
        yield server
