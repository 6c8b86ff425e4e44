"""Which household a photo file is for, from its file name.

The pilots name each photo after the household ("逐户编写户主姓名"): the household ID,
the head of household's name, or both, with anything else around them
(``张三.jpg``, ``A1_张三.jpg``, ``IMG_0001 A1.jpg``). A file is *matched* only when its
name points at exactly one household; a name that points at none (*unknown*) or at
several (*ambiguous*: two heads named 王建国, or an ID and a name that disagree) is
left for the verifier to assign: the rule never guesses. Several files that point at
the same household are all flagged (*several_files*): one photo per household.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["FileMatch", "HouseholdName", "MatchStatus", "match_files"]


class MatchStatus(StrEnum):
    MATCHED = "matched"
    UNKNOWN = "unknown"
    AMBIGUOUS = "ambiguous"
    SEVERAL_FILES = "several_files"


@dataclass(frozen=True)
class HouseholdName:
    household_id: str
    head_name: str


@dataclass(frozen=True)
class FileMatch:
    filename: str
    status: MatchStatus
    candidates: tuple[str, ...] = field(default=())  # household IDs the name points at

    @property
    def household_id(self) -> str | None:
        """The household, when the name says which without doubt."""
        return self.candidates[0] if self.status == MatchStatus.MATCHED else None


def _normalise(text: str) -> str:
    """Full-width letters and digits as ASCII, case folded: ``Ａ１`` is ``a1``."""
    return unicodedata.normalize("NFKC", text).casefold().strip()


def _stem(filename: str) -> str:
    base = re.split(r"[\\/]", filename)[-1]
    stem, dot, _ = base.rpartition(".")
    return _normalise(stem if dot and stem else base)


_TOKEN = re.compile(r"[0-9a-z]+")


class _Ids:
    """Household IDs found as whole tokens: ``A1`` is in ``A1_张三`` but not in ``A12``
    or ``BA1``. Plain IDs are looked up by token (a dict, not a regex per household:
    a folder of 500 files against 600 households stays well under a second)."""

    def __init__(self, ids: dict[str, str]) -> None:
        self.plain = {code: hid for code, hid in ids.items() if _TOKEN.fullmatch(code)}
        self.other = [
            (re.compile(rf"(?<![0-9a-z]){re.escape(code)}(?![0-9a-z])"), hid)
            for code, hid in ids.items()
            if code not in self.plain
        ]

    def find(self, stem: str) -> set[str]:
        found = {self.plain[t] for t in _TOKEN.findall(stem) if t in self.plain}
        return found | {hid for pattern, hid in self.other if pattern.search(stem)}


def _names_in(stem: str, names: dict[str, list[str]]) -> set[str]:
    """Households whose head's name is in the stem; a name that is only part of a longer
    matching name at the same place (张三 inside 张三丰) does not count."""
    spans: list[tuple[int, int, str]] = []
    for name in names:
        start = stem.find(name)
        while start >= 0:
            spans.append((start, start + len(name), name))
            start = stem.find(name, start + 1)
    kept = {
        name
        for s, e, name in spans
        if not any(s2 <= s and e <= e2 and (e2 - s2) > (e - s) for s2, e2, _ in spans)
    }
    return {hid for name in kept for hid in names[name]}


def _candidates(stem: str, ids: _Ids, names: dict[str, list[str]]) -> set[str]:
    by_id = ids.find(stem)
    by_name = _names_in(stem, names)
    if by_id and by_name:
        both = by_id & by_name
        return both if len(both) == 1 else by_id | by_name  # disagreeing: several
    return by_id or by_name


def match_files(filenames: Iterable[str], households: Sequence[HouseholdName]) -> list[FileMatch]:
    """Match each file name to the village's households (see the module docstring)."""
    ids = _Ids({_normalise(h.household_id): h.household_id for h in households if h.household_id})
    names: dict[str, list[str]] = {}
    for h in households:
        name = _normalise(h.head_name)
        if len(name) >= 2:  # a one-character name would match far too much
            names.setdefault(name, []).append(h.household_id)
    found = [(f, sorted(_candidates(_stem(f), ids, names))) for f in filenames]
    per_household = Counter(c[0] for _, c in found if len(c) == 1)
    out = []
    for filename, cands in found:
        if not cands:
            status = MatchStatus.UNKNOWN
        elif len(cands) > 1:
            status = MatchStatus.AMBIGUOUS
        elif per_household[cands[0]] > 1:
            status = MatchStatus.SEVERAL_FILES
        else:
            status = MatchStatus.MATCHED
        out.append(FileMatch(filename, status, tuple(cands)))
    return out
