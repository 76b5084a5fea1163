"""The `dct` command (also `flask --app wsgi dct ...`)."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, cast

import click
from flask import Flask, current_app
from flask.cli import AppGroup, FlaskGroup, ScriptInfo

if TYPE_CHECKING:
    from werkzeug.local import LocalProxy

dct_group = AppGroup("dct", help="DCT platform administration.")
db_group = AppGroup("db", help="Database schema migrations.")
audit_group = AppGroup("audit", help="The audit trail.")
dct_group.add_command(db_group)
dct_group.add_command(audit_group)


def _app() -> Flask:
    """The app behind `current_app`, for code that is handed the app itself.

    Flask types `current_app` as the app it stands for rather than as the LocalProxy it is,
    hence the cast to reach the proxy's accessor."""
    return cast("LocalProxy[Flask]", current_app)._get_current_object()


@db_group.command("upgrade")
@click.argument("revision", default="heads")
def db_upgrade(revision: str) -> None:
    """Migrate the database to REVISION (default: the newest of the core and every package)."""
    from dct_platform.migrate import upgrade

    upgrade(_app(), revision)
    click.echo(f"database at {revision}: {_safe_url()}")


@db_group.command("revision")
@click.option("-m", "--message", required=True)
@click.option(
    "--package", default=None, help="A feature package: the migration goes into its own branch."
)
def db_revision(message: str, package: str | None) -> None:
    """Write a new migration from the difference between the models and the database."""
    from dct_platform.migrate import revision

    revision(_app(), message, package)


def _safe_url() -> str:
    from sqlalchemy.engine import make_url

    return make_url(current_app.config["SQLALCHEMY_DATABASE_URI"]).render_as_string(
        hide_password=True
    )


@audit_group.command("verify")
@click.option(
    "--full", is_flag=True, help="Recompute from the first entry, not the newest checkpoint."
)
def audit_verify(full: bool) -> None:
    """Verify the hash chain against the signed checkpoints; exit 1 and name the first broken
    entry if it does not hold."""
    from dct_platform.audit import verify_chain
    from dct_platform.audit_anchor import CheckpointStore
    from dct_platform.extensions import db

    store = CheckpointStore.from_config(current_app.config)
    result = verify_chain(db.session(), store, full=full)
    if result.ok:
        click.echo(f"audit chain intact: {result.checked} entries verified")
        return
    click.echo(
        f"audit chain BROKEN at entry {result.broken_seq}: {result.problem} "
        f"({result.checked} entries verified before it)",
        err=True,
    )
    sys.exit(1)


@audit_group.command("seal")
def audit_seal() -> None:
    """Chain the entries written since the last seal now (the scheduler does it every 15 s)."""
    from dct_platform.audit import seal_all
    from dct_platform.extensions import db

    click.echo(f"sealed {seal_all(db.session())} entries")


@audit_group.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign the chain's current position into the checkpoint file now (the scheduler does it
    every 15 minutes)."""
    from dct_platform.audit import seal_all
    from dct_platform.audit_anchor import CheckpointStore
    from dct_platform.extensions import db
    from dct_platform.timeutil import utcnow

    store = CheckpointStore.from_config(current_app.config)
    seal_all(db.session())
    checkpoint = store.append(db.session(), utcnow())
    if checkpoint is None:
        click.echo(f"no new entries since the last checkpoint ({store.path})")
    else:
        click.echo(f"checkpoint of entry {checkpoint.seq} appended to {store.path}")
    db.session.rollback()


@audit_group.command("export-checkpoints")
def audit_export_checkpoints() -> None:
    """Print the signed checkpoints, one JSON line each, to keep a copy elsewhere."""
    from dct_platform.audit_anchor import CheckpointStore

    checkpoints, problems = CheckpointStore.from_config(current_app.config).read()
    for checkpoint in checkpoints:
        click.echo(checkpoint.line())
    for problem in problems:
        click.echo(f"warning: {problem.problem}", err=True)


@dct_group.command("roles")
def roles_command() -> None:
    """List the roles an account can have: the core's and the loaded packages'."""
    from dct_platform.roles import roles

    for spec in roles():
        click.echo(f"{spec.name}\t{spec.label}\t{spec.assignment.value}")


@dct_group.command("create-user")
@click.option("--username", required=True)
@click.option(
    "--role",
    required=True,
    help="A declared role: patient, nurse, site_staff, investigator, supply_manager, "
    "trial_manager, admin, or one a feature package declares (see `dct roles`).",
)
@click.option("--display-name", required=True)
@click.option("--email", default=None)
@click.option("--timezone", default="UTC")
@click.option(
    "--site-id", "site_ids", multiple=True, type=int, help="For site staff and investigators."
)
@click.option(
    "--trial-id", "trial_ids", multiple=True, type=int, help="For trial and supply managers."
)
@click.password_option(help="Prompted for (twice) when not given.")
def create_user_command(
    username: str,
    role: str,
    display_name: str,
    email: str | None,
    timezone: str,
    site_ids: tuple[int, ...],
    trial_ids: tuple[int, ...],
    password: str,
) -> None:
    """Create an account."""
    from sqlalchemy import select

    from dct_platform.errors import DomainError
    from dct_platform.extensions import db
    from dct_platform.models import Site, Trial
    from dct_platform.services.accounts import create_user
    from dct_platform.timeutil import utcnow

    sites = list(db.session.scalars(select(Site).where(Site.id.in_(site_ids)))) if site_ids else []
    trials = (
        list(db.session.scalars(select(Trial).where(Trial.id.in_(trial_ids)))) if trial_ids else []
    )
    if len(sites) != len(set(site_ids)) or len(trials) != len(set(trial_ids)):
        raise click.ClickException("an unknown --site-id or --trial-id was given")
    try:
        user = create_user(
            db.session(),
            None,
            utcnow(),
            username=username,
            password=password,
            role=role,
            display_name=display_name,
            email=email,
            timezone=timezone,
            sites=sites,
            trials=trials,
            system="cli",
        )
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        details = exc.details.get("fields", {})
        raise click.ClickException(
            f"{exc.message} {json.dumps(details, default=str)}" if details else exc.message
        ) from exc
    click.echo(f"created {user.role} {user.username} (id {user.id})")


@dct_group.command("seed-demo")
def seed_demo_command() -> None:
    """Load the demo trial, sites, patients and accounts (safe to run twice)."""
    from dct_platform.demo import seed_and_report

    seed_and_report(_app())


def _serve_gunicorn(app: Flask, host: str, port: int, workers: int) -> None:
    from gunicorn.app.base import BaseApplication

    class _Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("accesslog", "-")

        def load(self) -> Flask:
            return app

    _Server().run()


@dct_group.command("serve", with_appcontext=False)
@click.option(
    "--host", default=lambda: os.environ.get("HOST", "127.0.0.1"), show_default="127.0.0.1"
)
@click.option(
    "--port", default=lambda: int(os.environ.get("PORT", "5000")), type=int, show_default="5000"
)
@click.option("--workers", default=lambda: int(os.environ.get("WEB_CONCURRENCY", "2")), type=int)
def serve(host: str, port: int, workers: int) -> None:
    """Serve the app with gunicorn (run `dct scheduler` separately for periodic jobs)."""
    # Loaded without pushing an application context: gunicorn's workers would inherit it.
    app = click.get_current_context().ensure_object(ScriptInfo).load_app()
    _serve_gunicorn(app, host, port, workers)


@dct_group.command("scheduler")
def scheduler_command() -> None:
    """Run the periodic jobs in this process (one per deployment; a second one does no harm)."""
    from dct_platform.scheduler import build_scheduler, registered_jobs

    app = _app()
    click.echo(
        f"scheduler running {len(registered_jobs(app))} jobs: {', '.join(registered_jobs(app))}"
    )
    build_scheduler(app, blocking=True).start()


@dct_group.command("demo")
@click.option(
    "--host", default=lambda: os.environ.get("HOST", "127.0.0.1"), show_default="127.0.0.1"
)
@click.option(
    "--port", default=lambda: int(os.environ.get("PORT", "5000")), type=int, show_default="5000"
)
def demo(host: str, port: int) -> None:
    """Migrate, seed the demo data, run the scheduler in-process and serve."""
    from dct_platform.demo import seed_and_report
    from dct_platform.migrate import upgrade
    from dct_platform.scheduler import build_scheduler

    app = _app()
    upgrade(app)
    seed_and_report(app)
    scheduler = build_scheduler(app, blocking=False)
    scheduler.start()
    click.echo(f"serving on http://{host}:{port}  (Ctrl+C to stop)")
    try:
        from werkzeug.serving import run_simple

        run_simple(host, port, app, threaded=True, use_reloader=False)
    finally:
        scheduler.shutdown(wait=False)


def main() -> None:
    """Console entry point: the dct commands at the top level, plus Flask's own."""
    from dct_platform import create_app

    cli = FlaskGroup(create_app=lambda: create_app(), help="DCT platform command line.")
    for name, command in dct_group.commands.items():
        cli.add_command(command, name)
    cli.main(prog_name="dct")
