"""`photocheck check` over real files: JSON Lines, never a crash, exit 0."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

from .conftest import DATA

REQUIRED = {"file", "verdict", "reasons", "metrics", "exif", "hashes"}


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "photocheck.cli", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=300,
        check=False,
    )


def test_check_folder_of_bad_files_never_crashes(tmp_path: Path) -> None:
    (tmp_path / "notes.jpg").write_text("this is not a photo", encoding="utf-8")
    (tmp_path / "empty.png").write_bytes(b"")
    proc = run_cli("check", str(DATA / "bad_input" / "corrupt"), str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    files = {Path(r["file"]).name: r for r in lines}
    assert len(lines) == len(list((DATA / "bad_input" / "corrupt").iterdir())) + 2
    for record in lines:
        assert record.keys() >= REQUIRED
        for reason in record["reasons"]:
            assert {"code", "severity", "message_zh", "message_en", "evidence"} <= reason.keys()
    for name in ("notes.jpg", "empty.png", "truncated_sony_e5823.jpg"):
        assert files[name]["verdict"] == "reject"
        assert [r["code"] for r in files[name]["reasons"]] == ["UNREADABLE"]


def test_check_folder_without_photos_says_so(tmp_path: Path) -> None:
    empty, notes = tmp_path / "empty", tmp_path / "notes"
    empty.mkdir()
    notes.mkdir()
    (notes / "readme.txt").write_text("no photos here", encoding="utf-8")
    proc = run_cli("check", str(empty), str(notes))
    assert proc.returncode == 0 and proc.stdout == ""
    assert f"no photos in {empty}" in proc.stderr and f"no photos in {notes}" in proc.stderr


def test_check_missing_file_is_reported_not_raised(tmp_path: Path) -> None:
    proc = run_cli("check", str(tmp_path / "nope.jpg"))
    assert proc.returncode == 0
    record = json.loads(proc.stdout)
    assert record["verdict"] == "reject" and "cannot read file" in record["error"]


def test_check_good_photo_reports_metrics_and_hashes() -> None:
    path = DATA / "buildings" / "strecha_herz_jesu" / "herz_jesu_0000.jpg"
    record = json.loads(run_cli("check", str(path)).stdout)
    assert record["verdict"] != "reject", record["reasons"]
    assert record["metrics"]["width"] == 3072 and record["metrics"]["height"] == 2048
    assert len(record["hashes"]["sha256"]) == 64


def test_bad_policy_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "p.toml"
    bad.write_text("[quality]\n", encoding="utf-8")
    proc = run_cli("--policy", str(bad), "check", str(tmp_path))
    assert proc.returncode == 2
    assert "version" in proc.stderr and "Traceback" not in proc.stderr


def test_check_deeply_nested_xmp_is_a_json_line(tmp_path: Path) -> None:
    """XMP nesting <a> 1,200 deep once raised RecursionError (exit 1, a traceback)."""
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">' + b"<a>" * 1200 + b"</a>" * 1200
    xmp += b"</x:xmpmeta>"
    photo = Image.new("RGB", (800, 600), (100, 120, 90))
    photo.save(tmp_path / "deep.jpg", "JPEG", xmp=xmp)
    proc = run_cli("check", str(tmp_path / "deep.jpg"))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    (record,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert "UNREADABLE" not in {r["code"] for r in record["reasons"]}
    assert "XMP: nested deeper than 64 levels, ignored" in proc.stdout
