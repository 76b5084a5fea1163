"""The roles an account can have: the core's, and those feature packages declare.

A role is a name stored on the account (`users.role`), a label people read, and what an
account of that role is given to work on:
- `sites`: the sites it belongs to (site staff, investigators),
- `trials`: whole trials (trial and supply managers),
- `none`: nothing the core assigns; the role's package keeps its own assignment (a
  home-health provider's coordinator belongs to a provider, kept by the dispatch package)
  or the role needs none (patients, administrators).

A package declares its roles from its `init_app` with `declare_role`, registers their
scopes and rules with the policy, and their home page and navigation with
`dct_platform.navigation`. Accounts, forms, the API schema, the CLI and the OpenAPI
document all read this registry, so a declared role can be given at once.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l

_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?$")
MAX_NAME_LENGTH = 64


class Role(enum.StrEnum):
    """The core's roles, as constants; stored and compared as their plain names."""

    PATIENT = "patient"
    NURSE = "nurse"
    SITE_STAFF = "site_staff"
    INVESTIGATOR = "investigator"
    SUPPLY_MANAGER = "supply_manager"
    TRIAL_MANAGER = "trial_manager"
    ADMIN = "admin"


class Assignment(enum.StrEnum):
    SITES = "sites"
    TRIALS = "trials"
    NONE = "none"


@dataclass(frozen=True)
class RoleSpec:
    name: str
    label: str
    assignment: Assignment


_roles: dict[str, RoleSpec] = {}


def declare_role(name: str, label: str, assignment: Assignment = Assignment.NONE) -> str:
    """Declare a role; a package prefixes its own ("logistics.provider_coordinator")."""
    name = str(name)
    if not _NAME.match(name) or len(name) > MAX_NAME_LENGTH:
        raise ValueError(
            f"role name {name!r}: lower-case words joined by '_', with at most one "
            f"'package.' prefix, up to {MAX_NAME_LENGTH} characters"
        )
    spec = RoleSpec(name, label, Assignment(assignment))
    known = _roles.get(name)
    if known is not None and known.assignment is not spec.assignment:
        raise ValueError(f"role {name!r} is already declared with another assignment")
    _roles[name] = spec
    return name


def is_role(name: object) -> bool:
    return isinstance(name, str) and name in _roles


def role_names() -> list[str]:
    return list(_roles)


def roles() -> list[RoleSpec]:
    return list(_roles.values())


def role_label(name: str) -> str:
    # An account may outlive the package that declared its role: it keeps its name.
    spec = _roles.get(str(name))
    return str(spec.label) if spec else str(name)


def assigned_to(name: str) -> Assignment:
    spec = _roles.get(str(name))
    return spec.assignment if spec else Assignment.NONE


def roles_assigned(assignment: Assignment) -> frozenset[str]:
    return frozenset(n for n, spec in _roles.items() if spec.assignment is assignment)


for _role, _label, _assignment in (
    (Role.PATIENT, _l("Patient"), Assignment.NONE),
    (Role.NURSE, _l("Mobile nurse"), Assignment.NONE),
    (Role.SITE_STAFF, _l("Site staff"), Assignment.SITES),
    (Role.INVESTIGATOR, _l("Investigator"), Assignment.SITES),
    (Role.SUPPLY_MANAGER, _l("Supply manager"), Assignment.TRIALS),
    (Role.TRIAL_MANAGER, _l("Trial manager"), Assignment.TRIALS),
    (Role.ADMIN, _l("Administrator"), Assignment.NONE),
):
    declare_role(_role.value, _label, _assignment)
