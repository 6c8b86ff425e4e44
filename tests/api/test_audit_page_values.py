"""A value the audit page shows is never Python's ``None`` (「差异 None」 on a same-scene
pair): the evidence lines and the templates both show an unknown as a dash."""

from __future__ import annotations

from api.routes.audit_pages import _evidence_lines, templates


def test_same_scene_pair_without_a_distance() -> None:
    evidence = {
        "pairs": [
            {"a": "1", "b": "2", "relation": "same_scene", "distance": None},
            {"a": "1", "b": "3", "relation": "same_photo", "distance": 4},
        ],
        "from": {"photo_id": "1", "taken_at": None},
        "correlation": None,
    }
    for lang in ("zh", "en"):
        lines = _evidence_lines(evidence, lang, {1: "A1", 2: "B1", 3: "C1"})
        text = " ".join(f"{k} {v}" for k, v in lines)
        assert "None" not in text, lines
        assert ("差异 4" if lang == "zh" else "distance 4") in text
        assert lines[0][0] == "A1 ↔ B1"


def test_templates_never_print_none() -> None:
    page = templates.env.from_string("<p>{{ a }}|{{ b.c }}</p>").render(a=None, b={"c": None})
    assert "None" not in page and page == "<p>—|—</p>"


def test_pair_made_by_the_audit_says_how() -> None:
    """A pair through another county's photo says so in the reader's language, without
    a distance (the two copies were never compared with each other)."""
    pair = {"a": "5", "b": "6", "relation": "same_photo", "distance": None}
    evidence = {"pairs": [{**pair, "evidence": {"via": "another_county"}}]}
    zh = dict(_evidence_lines(evidence, "zh", {5: "X3", 6: "X4"}))
    en = dict(_evidence_lines(evidence, "en", {5: "X3", 6: "X4"}))
    assert zh == {"X3 ↔ X4": "同一张照片（复制、缩放或旋转） (都是另一县同一张照片的副本)"}
    assert en["X3 ↔ X4"].endswith("(both copies of one photo of another county)")
