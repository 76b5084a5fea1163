"""Alembic, driven from the app so that the database URL has one source: the app config.

The core's migrations live in `dct_platform/migrations/versions` (branch `core`). Each
loaded feature package may own a `migrations/` folder of its own beside its `__init__.py`:
its first revision starts a branch labelled with the package's name and depends on the
core revision it needs (`depends_on`). `upgrade` applies every branch (`heads`), so adding
a package never means editing the core's migrations.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from flask import Flask

from dct_platform.extensions import db

MIGRATIONS = Path(__file__).parent / "migrations"
CORE_BRANCH = "core"


# A partition of a partitioned table: `<table>_2026_03` (a month) or `<table>_default`.
_PARTITION = re.compile(r"^(?P<parent>.+)_(\d{4}_\d{2}|default)$")


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Leave the partitions of a partitioned table (one whose model says
    `info={"partitioned": True}`) out of the comparison of models and database: they are
    made by the migration and a job, not by a model each."""
    if type_ != "table" or name is None:
        return True
    match = _PARTITION.match(name)
    if match is None:
        return True
    parent = db.metadata.tables.get(match.group("parent"))
    return parent is None or not parent.info.get("partitioned")


def package_migration_folders(packages: tuple[str, ...] | list[str]) -> dict[str, Path]:
    """The `migrations/` folder of each feature package that has one."""
    folders = {}
    for name in packages:
        module = importlib.import_module(name)
        folder = Path(module.__file__ or "").parent / "migrations"
        if folder.is_dir():
            folders[name] = folder
    return folders


def alembic_config(packages: tuple[str, ...] | list[str] = ()) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    locations = [MIGRATIONS / "versions", *package_migration_folders(packages).values()]
    # A path separator that cannot occur in a path: alembic splits the option on it.
    cfg.set_main_option("path_separator", "newline")
    cfg.set_main_option("version_locations", "\n".join(str(p) for p in locations))
    return cfg


def _config_for(app: Flask) -> Config:
    return alembic_config(app.config["FEATURE_PACKAGES"])


def script_heads(app: Flask) -> set[str]:
    """The newest revision of every branch: what a fully migrated database is at."""
    script = ScriptDirectory.from_config(_config_for(app))
    heads = set(script.get_heads())
    # A branch head that another branch depends on (a package on the core's newest
    # revision) is applied with it: the database records only the dependent head.
    below = {
        rev.revision
        for head in heads
        for rev in script.revision_map.iterate_revisions(head, "base")
        if rev is not None and rev.revision != head
    }
    return heads - below


def upgrade(app: Flask, revision: str = "heads") -> None:
    with app.app_context(), db.engine.begin() as connection:
        cfg = _config_for(app)
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def revision(
    app: Flask, message: str, package: str | None = None, autogenerate: bool = True
) -> None:
    """Write a migration into the core's folder, or into `package`'s own branch."""
    with app.app_context(), db.engine.begin() as connection:
        cfg = _config_for(app)
        cfg.attributes["connection"] = connection
        if package is None:
            command.revision(
                cfg, message=message, autogenerate=autogenerate, head=f"{CORE_BRANCH}@head"
            )
            return
        if package_migration_folders([package]):
            command.revision(
                cfg, message=message, autogenerate=autogenerate, head=f"{package}@head"
            )
            return
        # The package's first migration starts its own branch, after the core it builds on.
        folder = Path(importlib.import_module(package).__file__ or "").parent / "migrations"
        folder.mkdir()
        command.revision(
            cfg,
            message=message,
            autogenerate=autogenerate,
            head="base",
            branch_label=package,
            version_path=str(folder),
            depends_on=f"{CORE_BRANCH}@head",
        )


def current_heads(app: Flask) -> set[str]:
    from alembic.runtime.migration import MigrationContext

    with app.app_context(), db.engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads())
