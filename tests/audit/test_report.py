"""The offline HTML report: self-contained, thumbnails embedded, from the CLI too."""

from __future__ import annotations

import base64
import datetime as dt
import io
import re
from pathlib import Path

from PIL import Image

from api.cli import main
from photocheck.audit import CHINA_TZ, compute_findings, compute_progress
from photocheck.audit.report import build_report
from photocheck.audit.sketch import SketchPoint, position_sketch
from photocheck.audit.synthetic import synthetic_county
from tests.conftest import data_file

PHOTO = "buildings/camera_corpus/panasonic_fx7_apartment_facade.jpg"
ROTATED = "exif/phones_gps/apple_iphone5_gps_orient3.jpg"
SAME_SCENE_B = "buildings/strecha_herz_jesu/herz_jesu_0004.jpg"


def test_report_embeds_upright_previews_and_no_external_links() -> None:
    county = synthetic_county(2500, seed=4)
    findings = [f for f in compute_findings(county.photos, county.villages, county.matches)
                if f.kind == "desk_batch"]  # fmt: skip
    assert findings
    files = [data_file(PHOTO).read_bytes(), data_file(ROTATED).read_bytes()]
    now = dt.datetime(2020, 8, 4, 12, tzinfo=CHINA_TZ)
    html = build_report(
        findings,
        compute_progress(county.households, county.villages, now),
        {p.photo_id: p for p in county.photos},
        {v.village_id: v for v in county.villages},
        lambda pid: files[int(pid[1:]) % 2],
        show_progress=False,
    )
    uris = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', html)
    assert len(uris) >= sum(min(len(f.photo_ids), 6) for f in findings)
    with Image.open(io.BytesIO(base64.b64decode(uris[0]))) as im:
        assert im.format == "JPEG" and max(im.size) == 320
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing fetched from outside
    assert "疑似集中代拍" in html and "<svg" in html


def test_cli_report_on_a_synthetic_county(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert main(["audit", "report", "--synthetic", "2000", "--out", str(out)]) == 0
    html = out.read_text("utf-8")
    assert html.startswith("<!doctype html>") and "核验审计报告" in html


def test_sketch_draws_every_point_and_the_centre() -> None:
    svg = position_sketch(
        [SketchPoint(33.7001, 110.3, "h1"), SketchPoint(33.71, 110.3, "h2")], (33.7, 110.3)
    )
    assert svg.count("<circle") == 2 and "村中心" in svg and ">500 m<" in svg


def test_report_draws_the_match_picture_of_a_same_scene_pair() -> None:
    """The offline report shows the same picture as /audit: both photos, the verified
    points joined, the count and the threshold in words."""
    from photocheck.audit.records import MatchRecord
    from photocheck.decode import decode
    from photocheck.policy import default_policy
    from photocheck.store.scenes import OrbSceneMatcher

    policy = default_policy()
    names = ["buildings/strecha_herz_jesu/herz_jesu_0000.jpg", SAME_SCENE_B]
    files = [data_file(n).read_bytes() for n in names]
    matcher = OrbSceneMatcher(policy, None)  # type: ignore[arg-type]  # no blobs needed
    grey = [
        decode(f, max_pixels=policy.quality.max_pixels, working_size=policy.quality.working_size)
        for f in files
    ]
    evidence = matcher.verify(matcher.features(grey[0].grey), matcher.features(grey[1].grey))
    assert evidence is not None and len(evidence["inlier_pairs"]) >= 27
    evidence["thresholds"] = {"scene_min_inliers": policy.similarity.scene_min_inliers}
    county = synthetic_county(300, seed=5)
    a, b = next(
        (p, q)
        for p in county.photos
        for q in county.photos
        if p.household_id != q.household_id and p.village_id == q.village_id
    )
    match = MatchRecord(b.photo_id, a.photo_id, "same_scene", None, evidence)
    findings = [f for f in compute_findings(county.photos, county.villages, [match])
                if f.kind == "duplicate_cluster"]  # fmt: skip
    assert len(findings) == 1
    by_id = {a.photo_id: files[0], b.photo_id: files[1]}
    html = build_report(
        findings,
        compute_progress(county.households, county.villages, dt.datetime.now(CHINA_TZ)),
        {p.photo_id: p for p in county.photos},
        {v.village_id: v for v in county.villages},
        lambda pid: by_id.get(pid),
        show_progress=False,
    )
    (uri,) = re.findall(r'<figure class="match"><img src="data:image/jpeg;base64,([^"]+)"', html)
    with Image.open(io.BytesIO(base64.b64decode(uri))) as im:
        assert im.format == "JPEG" and im.size[1] == 360 and im.size[0] > 600
    assert f"{evidence['inliers']} 个相同的细节点" in html and "at least 27 such points" in html
