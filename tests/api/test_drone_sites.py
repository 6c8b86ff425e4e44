"""Issue 4 over real HTTP: register two sites, upload the real drone photos, link
households, download a village package (whole and resumed with Range) and find the
canonical names, the manifest and byte-identical photos inside."""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from urllib.parse import unquote

import httpx

from tests.conftest import data_file

from .conftest import ADMIN, LiveServer, activate, login

MINI2 = [f"drone/openmvg_palm_desert_dji_mini2/DJI_00{n}.JPG" for n in (42, 45, 46)]
THERMAL = "drone/exifr_dji_small/dji_flir_thermal.jpg"
TINY = "drone/exifr_dji_small/hasselblad_L1D-20c_mavic2pro_tiny.jpg"
NO_GPS = "buildings/strecha_herz_jesu/herz_jesu_0000.jpg"
FAR_GPS = "exif/phones_gps/htc_desire_gps.jpg"

HOUSEHOLDS = """\ufeffhousehold_id,head_name,town,village,category,site_id,lat,lon
R1,张三,龙驹寨镇,东村,保障安全,S1,,
R2,李四,龙驹寨镇,东村,保障安全,,,
R3,王五,龙驹寨镇,西村,保障安全,,,
N1,赵六,龙驹寨镇,西村,保障安全,,,
A1,孙七,龙驹寨镇,西村,鉴定安全,,,
C1,周八,棣花镇,南村,鉴定安全,,,
"""


def _file(relpath: str) -> dict[str, tuple[str, bytes, str]]:
    path = data_file(relpath)
    return {"file": (path.name, path.read_bytes(), "image/jpeg")}


def _codes(body: dict) -> set[str]:
    return {r["code"] for r in body["reasons"]}


def _village_login(client: httpx.Client, account: dict) -> dict[str, str]:
    return activate(client, account["username"], account["password"])


def test_drone_sites_session(server: LiveServer, client: httpx.Client) -> None:
    admin = login(client, *ADMIN)
    r = client.post(
        "/households/import",
        content=HOUSEHOLDS.encode(),
        headers={**admin, "content-type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    accounts = r.json()["accounts"]
    villages = {a["village"]: _village_login(client, a) for a in accounts}
    # village accounts are v{county}-{village id}: the south village links no site
    south_id = int(next(a for a in accounts if a["village"] == "南村")["username"].split("-")[1])

    # -- the registry: two sites, bad input refused -------------------------------------
    s1 = {"site_id": "S1", "name": "幸福家园", "kind": "移民搬迁点", "town": "龙驹寨镇",
          "lat": 33.6275, "lon": -116.4052, "households": ["R2"]}  # fmt: skip
    r = client.post("/sites", json=s1, headers=admin)
    assert r.status_code == 201, r.text
    assert sorted(r.json()["households"]) == ["R1", "R2"]  # R1 came with the import
    assert r.json()["kind_zh"] == "移民搬迁点"
    s2 = {"site_id": "S2", "name": "福寿园", "kind": "nursing_home", "town": "龙驹寨镇",
          "lat": 40.3775, "lon": -74.4899}  # fmt: skip
    assert client.post("/sites", json=s2, headers=admin).status_code == 201
    assert client.post("/sites", json=s2, headers=admin).json()["error"]["code"] == "SITE_EXISTS"
    for bad_name in ("../x", "a/b", "C:\\", "幸" * 60):
        r = client.post("/sites", json={**s2, "site_id": "S9", "name": bad_name}, headers=admin)
        assert r.status_code == 422 and r.json()["error"]["code"] == "INVALID_SITE", r.text
    r = client.post("/sites", json={**s2, "site_id": "S9", "kind": "school"}, headers=admin)
    assert r.status_code == 422
    r = client.post("/sites", json={**s2, "site_id": "S9", "households": ["NOPE"]}, headers=admin)
    assert r.status_code == 422 and r.json()["error"]["details"]["households"] == ["NOPE"]
    assert client.get("/sites/S9", headers=admin).status_code == 404
    east = villages["东村"]
    assert client.post("/sites", json={**s2, "site_id": "S8"}, headers=east).status_code == 403

    # -- drone photos: checked without framing, named, stored ---------------------------
    r = client.post("/sites/S404/photos", files=_file(MINI2[0]), headers=admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "SITE_NOT_FOUND"
    names = []
    for relpath in MINI2:
        r = client.post("/sites/S1/photos", files=_file(relpath), headers=admin)
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["verdict"] == "accept", body  # within 1 km of the site, sharp, lit
        assert 100 < body["relative_altitude_m"] < 150 and body["distance_m"] < 1000
        names.append(body["name"])
    assert names == [
        f"丹凤县_龙驹寨镇_幸福家园_移民搬迁点_航拍_20210820_{n:02d}.jpg" for n in (1, 2, 3)
    ]
    again = client.post("/sites/S1/photos", files=_file(MINI2[0]), headers=admin)
    assert again.status_code == 200 and again.json()["name"] == names[0]
    assert client.post("/sites/S2/photos", files=_file(MINI2[0]), headers=admin).status_code == 409

    r = client.post("/sites/S2/photos", files=_file(THERMAL), headers=admin)
    thermal = r.json()
    if thermal["stored"]:  # a soft 640x512 thermal frame: the blur threshold decides
        assert r.status_code == 201
        assert thermal["name"] == "丹凤县_龙驹寨镇_福寿园_敬老院_航拍_20190430_01.jpg"
        assert thermal["relative_altitude_m"] == 62.5
    else:
        assert r.status_code == 200 and _codes(thermal) <= {"BLURRY", "TOO_DARK", "TOO_BRIGHT"}
    r = client.post("/sites/S2/photos", files=_file(FAR_GPS), headers=admin)
    assert r.status_code == 201 and "GPS_OUTSIDE_AREA" in _codes(r.json()), r.text
    r = client.post("/sites/S2/photos", files=_file(NO_GPS), headers=admin)
    assert r.status_code == 201 and r.json()["verdict"] == "review", r.text
    assert "NO_GPS" in _codes(r.json())  # no location: kept, for the county to review
    r = client.post("/sites/S2/photos", files=_file(TINY), headers=admin)
    assert r.status_code == 200 and r.json()["stored"] is False  # TOO_SMALL: not kept
    assert "TOO_SMALL" in _codes(r.json())
    bad = {"file": ("x.jpg", b"not an image at all", "image/jpeg")}
    assert client.post("/sites/S2/photos", files=bad, headers=admin).status_code == 415

    # -- households linked to sites (import column above, and PUT here) -----------------
    r = client.put("/sites/S2/households", json={"households": ["R3"]}, headers=admin)
    assert r.status_code == 200 and r.json()["households"] == ["R3"]
    sites = {s["site_id"]: s for s in client.get("/sites", headers=admin).json()}
    east_id = next(v["village_id"] for v in sites["S1"]["villages"] if v["name"] == "东村")
    west_id = next(v["village_id"] for v in sites["S2"]["villages"] if v["name"] == "西村")
    assert len(sites["S2"]["photos"]) == 2 + thermal["stored"]

    # -- the east village's package: S1's three photos + manifest ------------------------
    url = f"/villages/{east_id}/drone-package"
    r = client.get(url, headers=east)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    disposition = r.headers["content-disposition"]
    assert "filename*=UTF-8''" in disposition
    assert unquote(disposition.split("UTF-8''")[1]) == "丹凤县_龙驹寨镇_东村_航拍照片.zip"
    fallback = disposition.split('filename="')[1].split('"')[0]  # what old clients read
    assert fallback.endswith(f"-village-{east_id}-drone-photos.zip") and "__" not in fallback
    etag, whole = r.headers["etag"], r.content
    assert int(r.headers["content-length"]) == len(whole)
    with zipfile.ZipFile(io.BytesIO(whole)) as zf:
        assert zf.testzip() is None
        assert zf.namelist()[:3] == names and len(zf.namelist()) == 4
        for name, relpath in zip(names, MINI2, strict=True):
            info = zf.getinfo(name)
            assert info.flag_bits & 0x800 and info.compress_type == zipfile.ZIP_STORED
            assert zf.read(name) == data_file(relpath).read_bytes()
        manifest = zf.read(zf.namelist()[3])
    assert manifest.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(manifest.decode("utf-8-sig"))))
    assert [row[0] for row in rows[1:]] == names
    assert rows[1][2] == "幸福家园" and rows[1][-1] == "R1 张三; R2 李四"
    assert rows[1][8] == hashlib.sha256(data_file(MINI2[0]).read_bytes()).hexdigest()

    # resumed half-way with Range; a stable ETag; HEAD; conditional requests
    half = len(whole) // 2
    r = client.get(url, headers={**east, "Range": f"bytes={half}-", "If-Range": etag})
    assert r.status_code == 206 and r.headers["etag"] == etag
    assert r.headers["content-range"] == f"bytes {half}-{len(whole) - 1}/{len(whole)}"
    assert whole[:half] + r.content == whole
    r = client.get(url, headers={**east, "Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == whole[10:20]
    r = client.get(url, headers={**east, "Range": f"bytes={half}-", "If-Range": '"stale"'})
    assert r.status_code == 200 and r.content == whole
    r = client.get(url, headers={**east, "Range": f"bytes={len(whole)}-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{len(whole)}"
    assert client.get(url, headers={**east, "If-None-Match": etag}).status_code == 304
    head = client.head(url, headers=east)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(whole))
    assert client.get(url, headers=admin).headers["etag"] == etag  # the county sees it too

    # other villages: the west one gets S2 (linked R3), the south one has no site
    west = villages["西村"]
    assert client.get(url, headers=west).status_code == 403
    r = client.get(f"/villages/{west_id}/drone-package", headers=west)
    assert r.status_code == 200
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert sum(n.endswith(".jpg") for n in zf.namelist()) == 2 + thermal["stored"]
    r = client.get(f"/villages/{south_id}/drone-package", headers=villages["南村"])
    assert r.status_code == 404 and r.json()["error"]["code"] == "NO_DRONE_PHOTOS"
    assert client.get("/villages/99999/drone-package", headers=admin).status_code == 404

    # linking changes the manifest, so the ETag changes
    client.put("/sites/S1/households", json={"households": ["R1"], "replace": True}, headers=admin)
    assert client.head(url, headers=east).headers["etag"] != etag

    # -- households using the site's drone photo ------------------------------------------
    # R1 (保障安全, linked to S1) may use S1's photo; A1 and N1 (not linked) may not.
    r = client.post("/households/R1/photos", files=_file(MINI2[1]), headers=east)
    assert r.status_code == 201 and "DUPLICATE_PHOTO" not in _codes(r.json()), r.text
    r = client.post("/households/N1/photos", files=_file(MINI2[1]), headers=west)
    assert "DUPLICATE_PHOTO" in _codes(r.json()), r.text
    r = client.post("/households/A1/photos", files=_file(MINI2[2]), headers=west)
    reason = next(x for x in r.json()["reasons"] if x["code"] == "DUPLICATE_PHOTO")
    assert reason["evidence"]["site_id"] == "S1" and reason["evidence"]["site_photo"] == names[2]
