"""The argon2 cost setting (PHOTOCHECK_PASSWORD_HASH_*): the service's default is
RFC 9106's profile, and a hash is verified with the cost it was made with, so the
suite's cheap hashes and the service's dear ones are the same code path."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher, extract_parameters
from pydantic import ValidationError

from api.security import PasswordHashing
from api.settings import Settings

from .conftest import TEST_HASHING


def test_the_service_hashes_at_rfc_9106_cost_by_default() -> None:
    hashing = Settings().password_hashing()
    reference = PasswordHasher()  # argon2-cffi's RFC 9106 low-memory profile
    made = extract_parameters(hashing.hash("a-password-1"))
    assert (made.time_cost, made.memory_cost, made.parallelism) == (
        reference.time_cost,
        reference.memory_cost,
        reference.parallelism,
    )


def test_a_hash_is_verified_with_its_own_cost() -> None:
    cheap = Settings(**TEST_HASHING).password_hashing()  # type: ignore[arg-type]
    dear = PasswordHashing()
    made = cheap.hash("a-password-1")
    params = extract_parameters(made)
    assert (params.time_cost, params.memory_cost, params.parallelism) == (1, 1024, 1)
    # a change of the setting locks nobody out, in either direction
    assert dear.verify("a-password-1", made) and not dear.verify("a-password-2", made)
    assert cheap.verify("a-password-1", dear.hash("a-password-1"))
    # an unknown account is checked against a dummy at the configured cost: refused
    assert not cheap.verify("a-password-1", None)
    assert not cheap.verify("a-password-1", "not a hash")


def test_the_memory_must_hold_every_lane() -> None:
    with pytest.raises(ValidationError, match="PASSWORD_HASH_MEMORY_KIB"):
        Settings(PASSWORD_HASH_MEMORY_KIB=16, PASSWORD_HASH_PARALLELISM=4)
