"""A feature package extends the platform without editing `dct_platform/`.

`tests/example_package` adds a table with its own migration branch, an action, a scope and
a rule that needs the session and the time, a role with its own page, an event with an after-commit receiver, and a
remote-activity type. It runs in its own process, so that its
tables and rules stay out of every other test's platform.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.processes import ROOT, process_env


def test_a_package_extends_the_platform_without_editing_the_core(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.example_package.scenario",
            f"sqlite:///{tmp_path / 'example.sqlite3'}",
            str(tmp_path / "instance"),
        ],
        cwd=ROOT,
        env=process_env(None, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["heads_applied"] and "ex01" in found["branches"]
    assert found["models_match_migrations"]
    assert found["nurse_sees"] == ["B1-anna"]  # the patient of her visit, nobody else
    assert found["address_visible"] == {
        "the day before": False,
        "the visit day": True,
        "the day after": False,
    }
    assert {"patient_id", "nurse_id", "visit_date"} <= set(found["audited"])
    assert found["unaudited_delete"] == "refused"
    # Its event: nothing after a rollback, delivered after the commit to its receiver, which
    # puts the visit on the remote-activity timeline at the site responsible.
    assert found["deliveries_after_rollback"] == 0
    assert found["timeline_before_commit"] == 0
    assert found["activities"] == [["example-home-visit", True, "booked"]]
    assert found["forbidden_message"] == (
        "You are not allowed to see the home address of this record."
    )
    # Its own role: documented in the OpenAPI document, given by an administrator, with
    # the package's scope, home page and navigation; an undeclared role is refused.
    assert found["role_documented"]
    assert found["unknown_role"][0] == 422
    assert "example.visit_coordinator" in found["unknown_role"][1][0]
    assert found["created"] == [201, "example.visit_coordinator"]
    assert found["role_label"] == "Home-visit coordinator"
    assert found["sites_refused"] == [
        "Accounts with the role Home-visit coordinator do not belong to sites."
    ]
    assert found["coordinator_sees"] == ["B1-anna"]
    assert found["home"] == ["/example/visits", 200]
    assert found["home_shows"]
    assert found["staff_page"] == 403
