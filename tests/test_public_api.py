"""photocheck's public surface is exactly its sorted __all__ (httpx's habit)."""

from __future__ import annotations
import __future__

import types

import photocheck


def test_all_public_names_are_exported() -> None:
    public = {
        name
        for name, value in vars(photocheck).items()
        if not name.startswith("_")
        and not isinstance(value, (types.ModuleType, __future__._Feature))
    }
    assert set(photocheck.__all__) == public
    assert photocheck.__all__ == sorted(photocheck.__all__)
