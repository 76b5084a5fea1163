"""Argon2's cost comes from the environment, once; production gets argon2-cffi's defaults."""

from __future__ import annotations

import os

import pytest
from argon2 import PasswordHasher, extract_parameters

from dct_platform import security


def test_without_settings_the_cost_is_argon2s_default() -> None:
    hasher = security.hasher_from_env({})
    default = PasswordHasher()
    assert (hasher.time_cost, hasher.memory_cost, hasher.parallelism) == (
        default.time_cost,
        default.memory_cost,
        default.parallelism,
    )


def test_the_settings_choose_the_cost() -> None:
    hasher = security.hasher_from_env(
        {
            "PASSWORD_HASH_TIME_COST": "2",
            "PASSWORD_HASH_MEMORY_KIB": "64",
            "PASSWORD_HASH_PARALLELISM": "2",
        }
    )
    params = extract_parameters(hasher.hash("a long passphrase"))
    assert (params.time_cost, params.memory_cost, params.parallelism) == (2, 64, 2)


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"PASSWORD_HASH_TIME_COST": "fast"}, "PASSWORD_HASH_TIME_COST must be a whole number"),
        ({"PASSWORD_HASH_TIME_COST": "0"}, "PASSWORD_HASH_TIME_COST must be at least 1"),
        ({"PASSWORD_HASH_PARALLELISM": "0"}, "PASSWORD_HASH_PARALLELISM must be at least 1"),
        (
            {"PASSWORD_HASH_MEMORY_KIB": "16", "PASSWORD_HASH_PARALLELISM": "4"},
            "PASSWORD_HASH_MEMORY_KIB must be at least 32",
        ),
    ],
)
def test_a_wrong_setting_stops_the_start(env: dict[str, str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        security.hasher_from_env(env)


def test_the_test_run_hashes_at_the_cost_it_set_before_the_app_was_imported() -> None:
    # tests/conftest.py lowers the cost before dct_platform is imported; had something
    # imported it earlier, every hash (and `_DUMMY_HASH`) would cost production's time.
    params = extract_parameters(security.hash_password("a long passphrase"))
    assert params.time_cost == int(os.environ["PASSWORD_HASH_TIME_COST"])
    assert params.memory_cost == int(os.environ["PASSWORD_HASH_MEMORY_KIB"])
    assert params.parallelism == int(os.environ["PASSWORD_HASH_PARALLELISM"])
    assert extract_parameters(security._DUMMY_HASH) == params
