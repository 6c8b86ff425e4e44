"""Every firm expectation of ../shared/data/EXPECTED.tsv holds under the default policy."""

from __future__ import annotations

import pytest

from .conftest import Expectation, load_expectations

# Rows that do not hold yet, with the reason; listed in the README too.
KNOWN_EXCEPTIONS: dict[str, str] = {}

EXPECTATIONS = load_expectations()


@pytest.mark.parametrize("exp", EXPECTATIONS, ids=[e.relpath for e in EXPECTATIONS])
def test_expectation(exp: Expectation, reports) -> None:
    if exp.relpath in KNOWN_EXCEPTIONS:
        pytest.xfail(KNOWN_EXCEPTIONS[exp.relpath])
    report = reports[exp.relpath]
    codes = {c.value for c in report.codes}
    if exp.verdict == "reject":
        assert report.verdict.value == "reject", codes
    elif exp.verdict == "not_reject":
        assert report.verdict.value != "reject", codes
    assert exp.all_of <= codes, f"missing {sorted(exp.all_of - codes)}; got {sorted(codes)}"
    assert not (exp.none_of & codes), f"unexpected {sorted(exp.none_of & codes)}"
    if exp.any_of:
        assert exp.any_of & codes, f"none of {sorted(exp.any_of)}; got {sorted(codes)}"


def test_developer_set_present() -> None:
    assert len(EXPECTATIONS) > 100, "EXPECTED.tsv not found: is ../shared/data beside the repo?"
