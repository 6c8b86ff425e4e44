"""Control characters in names, IDs and other text from outside: one rule for every door.

PostgreSQL refuses NUL in text (SQLite stores it), and a tab or line break inside a
household ID or a village name makes records that look equal but are not. So the
service refuses them where text comes in (HTTP paths, queries, forms, JSON, CSV cells)
instead of letting a database decide.
"""

from __future__ import annotations

import re

__all__ = ["FREE_TEXT_ALLOWED", "describe", "find_control_char"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_NOT_WHITESPACE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
FREE_TEXT_ALLOWED = "\t\n\r"  # a note may have line breaks; a name or an ID may not


def find_control_char(text: str, *, free_text: bool = False) -> str | None:
    """The first forbidden control character in ``text`` (NUL, C0, DEL), if any.

    ``free_text`` (notes, passwords) allows tab, line feed and carriage return.
    """
    match = (_CONTROL_NOT_WHITESPACE if free_text else _CONTROL).search(text)
    return match.group() if match else None


def describe(char: str) -> str:
    """``U+0000`` for the error message (the character itself would not show)."""
    return f"U+{ord(char):04X}"
