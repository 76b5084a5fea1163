"""Keep the catalogues in step with the code: extract, update and compile.

    python scripts/translations.py          # extract messages.pot, update every .po, compile .mo
    python scripts/translations.py --check  # exit 1 if a .po lacks a translation or a .mo is stale

New strings appear untranslated in each `dct_platform/translations/<lang>/LC_MESSAGES/messages.po`;
translate them there and run the script again.
"""

from __future__ import annotations

import subprocess
import sys
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[1]
TRANSLATIONS = ROOT / "dct_platform" / "translations"
PYBABEL = str(Path(sys.executable).parent / "pybabel")


def catalogues() -> list[Path]:
    return sorted(TRANSLATIONS.glob("*/LC_MESSAGES/messages.po"))


def _forms(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    # A plural message has a list (or tuple) of forms; a plain one a string.
    return (value,) if isinstance(value, str) else tuple(value)


def problems() -> list[str]:
    found = []
    for po_path in catalogues():
        with po_path.open("rb") as f:
            catalog = read_po(f)
        missing = [
            m.id for m in catalog if m.id and (not m.string or m.fuzzy or not all(_forms(m.string)))
        ]
        if missing:
            found.append(f"{po_path.relative_to(ROOT)}: untranslated {missing}")
        mo_path = po_path.with_suffix(".mo")
        if not mo_path.exists():
            found.append(f"{mo_path.relative_to(ROOT)} is missing")
            continue
        with mo_path.open("rb") as f:
            compiled = {_forms(m.id): _forms(m.string) for m in read_mo(f) if m.id}
        wanted = {
            _forms(m.id): _forms(m.string) for m in catalog if m.id and m.string and not m.fuzzy
        }
        if compiled != wanted:
            found.append(f"{mo_path.relative_to(ROOT)} is stale: run scripts/translations.py")
    return found


def update() -> None:
    pot = TRANSLATIONS / "messages.pot"
    subprocess.run(
        [
            PYBABEL,
            "extract",
            "-F",
            "babel.cfg",
            "-k",
            "_l",
            "-o",
            str(pot),
            "--no-location",
            "--sort-output",
            "--project",
            "dct-platform",
            ".",
        ],
        cwd=ROOT,
        check=True,
    )
    subprocess.run(
        [PYBABEL, "update", "-i", str(pot), "-d", str(TRANSLATIONS), "--no-fuzzy-matching"],
        cwd=ROOT,
        check=True,
    )
    for po_path in catalogues():
        with po_path.open("rb") as f:
            catalog = read_po(f)
        buffer = BytesIO()
        write_mo(buffer, catalog)
        po_path.with_suffix(".mo").write_bytes(buffer.getvalue())


if __name__ == "__main__":
    if "--check" in sys.argv:
        issues = problems()
        print("\n".join(issues) or "catalogues complete and compiled")
        sys.exit(1 if issues else 0)
    update()
