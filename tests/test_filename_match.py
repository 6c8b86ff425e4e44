"""The file-name -> household rule of the village page's folder upload."""

from __future__ import annotations

from photocheck.filename_match import HouseholdName, MatchStatus, match_files

VILLAGE = [
    HouseholdName("A1", "张三"),
    HouseholdName("A2", "李四"),
    HouseholdName("A12", "王建国"),
    HouseholdName("A13", "王建国"),  # two heads with one name
    HouseholdName("A14", "张三丰"),
    HouseholdName("6101230001", "赵六"),
    HouseholdName("DF-007", "孙八"),  # an ID with a hyphen
]


def one(name: str) -> tuple[MatchStatus, tuple[str, ...]]:
    (m,) = match_files([name], VILLAGE)
    return m.status, m.candidates


def test_by_name_or_id_with_anything_around() -> None:
    assert one("张三.jpg") == (MatchStatus.MATCHED, ("A1",))
    assert one("李四 正面.JPG") == (MatchStatus.MATCHED, ("A2",))
    assert one("A2.jpeg") == (MatchStatus.MATCHED, ("A2",))
    assert one("photos/东村/a2_李四.jpg") == (MatchStatus.MATCHED, ("A2",))
    assert one("ＩＭＧ_6101230001.jpg") == (MatchStatus.MATCHED, ("6101230001",))  # full width


def test_ids_are_whole_tokens() -> None:
    assert one("A12 王建国.jpg") == (MatchStatus.MATCHED, ("A12",))  # not A1
    assert one("BA1.jpg") == (MatchStatus.UNKNOWN, ())
    assert one("IMG_0001.jpg") == (MatchStatus.UNKNOWN, ())
    assert one("df-007.jpg") == (MatchStatus.MATCHED, ("DF-007",))
    assert one("DF-0077.jpg") == (MatchStatus.UNKNOWN, ())


def test_the_longer_name_wins_where_one_contains_the_other() -> None:
    assert one("张三丰.jpg") == (MatchStatus.MATCHED, ("A14",))
    assert one("张三.jpg") == (MatchStatus.MATCHED, ("A1",))


def test_never_guessed() -> None:
    assert one("王建国.jpg") == (MatchStatus.AMBIGUOUS, ("A12", "A13"))
    assert one("A1 李四.jpg") == (MatchStatus.AMBIGUOUS, ("A1", "A2"))  # ID and name disagree
    assert one("张三 李四.jpg") == (MatchStatus.AMBIGUOUS, ("A1", "A2"))
    assert one("孙七.jpg") == (MatchStatus.UNKNOWN, ())
    assert one("DSC_1234.jpg") == (MatchStatus.UNKNOWN, ())


def test_two_files_for_one_household_are_both_flagged() -> None:
    out = match_files(["张三.jpg", "A1 (2).jpg", "李四.jpg"], VILLAGE)
    assert [m.status for m in out] == [
        MatchStatus.SEVERAL_FILES,
        MatchStatus.SEVERAL_FILES,
        MatchStatus.MATCHED,
    ]
    assert out[0].household_id is None and out[2].household_id == "A2"
