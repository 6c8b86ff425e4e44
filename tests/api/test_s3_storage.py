"""The service over HTTP with its blobs on real S3 (SeaweedFS): originals, previews
and site photos go to the bucket, downloads stream from it, start-up reconcile lists
it; the store stopped answers 503 and stores nothing, and works again without a
restart when the store is back."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from photocheck.store import Photo
from tests.conftest import data_file
from tests.s3 import S3Bucket, SeaweedFS, free_ports

from .conftest import ADMIN, LiveServer, loopback_client, make_settings, seed_admin
from .test_session import GOOD, GOOD_2, setup_campaign, upload

DRONE = "drone/openmvg_palm_desert_dji_mini2/DJI_0042.JPG"
SITE = {"site_id": "S1", "name": "幸福家园", "kind": "移民搬迁点", "town": "龙驹寨镇",
        "lat": 33.6275, "lon": -116.4052}  # fmt: skip


def _cookie(client: httpx.Client) -> dict[str, str]:
    r = client.post("/auth/token", data={"username": ADMIN[0], "password": ADMIN[1]})
    return {"photocheck_token": r.json()["access_token"]}


def _local_blob_files(data_dir: Path) -> list[Path]:
    return [p for p in data_dir.rglob("*") if p.is_file() and len(p.name) == 64]


def _photo_count(server: LiveServer) -> int:
    with server.app_state.db.session() as session:
        return int(session.scalar(select(func.count(Photo.id))) or 0)


@pytest.fixture
def s3_server(tmp_path: Path, database_url: str, s3_bucket: S3Bucket) -> Iterator[LiveServer]:
    settings = make_settings(tmp_path, database_url, **s3_bucket.settings())
    seed_admin(settings)
    live = LiveServer(settings)
    live.start()
    yield live
    live.stop()


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_session_with_blobs_on_s3(s3_server: LiveServer, s3_bucket: S3Bucket) -> None:
    server = s3_server
    with loopback_client(server.url + "/api/v1", timeout=120) as client:
        admin, villages = setup_campaign(client)
        east = villages["东村"]
        r = upload(client, east, "A1", GOOD, key="a1")
        assert r.status_code == 201, r.text
        photo_id = r.json()["photo_id"]
        original = data_file(GOOD).read_bytes()

        # the original is in the bucket, byte for byte, and nowhere on the local disk
        blobs = s3_bucket.keys("blobs/")
        assert (
            len(blobs) == 1
            and s3_bucket.client.get_object(Bucket=s3_bucket.name, Key=blobs[0])["Body"].read()
            == original
        )
        assert _local_blob_files(server.settings.DATA_DIR) == []

        # downloads stream from S3: the original (whole and a range), the preview
        cookies = _cookie(client)
        full = httpx.get(f"{server.url}/audit/photos/{photo_id}/full", cookies=cookies)
        assert full.status_code == 200 and full.content == original
        part = httpx.get(
            f"{server.url}/audit/photos/{photo_id}/full",
            cookies=cookies,
            headers={"Range": "bytes=100-199"},
        )
        assert part.status_code == 206 and part.content == original[100:200]
        preview = httpx.get(f"{server.url}/audit/photos/{photo_id}/preview", cookies=cookies)
        assert preview.status_code == 200 and preview.content[:3] == b"\xff\xd8\xff"
        assert len(s3_bucket.keys("audit_previews/")) == 1

        # a site's drone photo in its own namespace, packaged for the village from S3
        assert client.post("/sites", json=SITE, headers=admin).status_code == 201
        drone = data_file(DRONE).read_bytes()
        r = client.post(
            "/sites/S1/photos", files={"file": ("DJI_0042.JPG", drone, "image/jpeg")},
            headers=admin,
        )  # fmt: skip
        assert r.status_code == 201 and r.json()["stored"], r.text
        assert len(s3_bucket.keys("drone/")) == 1
        r = client.get(f"/sites/S1/photos/{r.json()['photo_id']}/file", headers=admin)
        assert r.status_code == 200 and r.content == drone
        site = client.get("/sites/S1", headers=admin).json()
        village_id = site["villages"][0]["village_id"]  # A3 of 东村 is linked to S1
        url = f"/villages/{village_id}/drone-package"
        whole = client.get(url, headers=east)
        assert whole.status_code == 200, whole.text
        with zipfile.ZipFile(io.BytesIO(whole.content)) as zf:
            assert zf.read(zf.namelist()[0]) == drone
        half = len(whole.content) // 2
        rest = client.get(url, headers={**east, "Range": f"bytes={half}-"})
        assert rest.status_code == 206 and whole.content[:half] + rest.content == whole.content

    # a restart reconciles against the bucket: every row has its object
    server.restart()
    health = httpx.get(server.url + "/health").json()
    assert health["reconcile"]["missing_blobs"] == [] and health["reconcile"]["error"] is None
    with loopback_client(server.url, cookies=_cookie_of(server), timeout=60) as page:
        assert page.get(f"/audit/photos/{photo_id}/full").content == original


def _cookie_of(server: LiveServer) -> dict[str, str]:
    with loopback_client(server.url + "/api/v1", timeout=60) as client:
        return _cookie(client)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_server_starts_while_the_store_is_down(tmp_path: Path, database_url: str) -> None:
    """No S3 listening: the service still starts, says so in /health, answers 503."""
    (port,) = free_ports(1)
    overrides = {"BLOB_URL": "s3://down/p", "S3_ENDPOINT": f"http://127.0.0.1:{port}"}
    settings = make_settings(tmp_path, database_url, S3_ACCESS_KEY="k", S3_SECRET_KEY="s",
                             **overrides)  # fmt: skip
    seed_admin(settings)
    server = LiveServer(settings)
    server.start()
    try:
        assert httpx.get(server.url + "/health").json()["reconcile"]["error"]
        with loopback_client(server.url + "/api/v1", timeout=120) as client:
            _, villages = setup_campaign(client)
            r = upload(client, villages["东村"], "A1", GOOD)
        assert r.status_code == 503 and r.json()["error"]["code"] == "STORAGE_UNAVAILABLE"
        assert _photo_count(server) == 0
    finally:
        server.stop()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_store_stopped_answers_503_and_stores_nothing(tmp_path: Path, database_url: str) -> None:
    """SeaweedFS killed under a running server: uploads get a bilingual 503 and leave
    no row, no staging file; started again, the same upload (same Idempotency-Key)
    succeeds with no restart of the server."""
    weed = SeaweedFS(tmp_path / "weed")  # its own: stopping the shared one would hurt
    weed.start()
    try:
        bucket = weed.new_bucket()
        settings = make_settings(tmp_path, database_url, **bucket.settings())
        seed_admin(settings)
        server = LiveServer(settings)
        server.start()
        try:
            _outage(server, weed)
        finally:
            server.stop()
    finally:
        weed.stop()


def _outage(server: LiveServer, weed: SeaweedFS) -> None:
    with loopback_client(server.url + "/api/v1", timeout=120) as client:
        admin, villages = setup_campaign(client)
        east = villages["东村"]
        assert upload(client, east, "A1", GOOD).status_code == 201
        assert client.post("/sites", json=SITE, headers=admin).status_code == 201

        weed.stop()
        r = upload(client, east, "A2", GOOD_2, key="a2-during-outage")
        assert r.status_code == 503, r.text
        error = r.json()["error"]
        assert error["code"] == "STORAGE_UNAVAILABLE"
        assert error["message"] and error["message_zh"] and "Traceback" not in r.text
        assert r.headers["retry-after"]
        drone = {"file": ("d.jpg", data_file(DRONE).read_bytes(), "image/jpeg")}
        r = client.post("/sites/S1/photos", files=drone, headers=admin)
        assert r.status_code == 503 and r.json()["error"]["code"] == "STORAGE_UNAVAILABLE"
        # nothing half-way: one photo row (A1's), no staging file, A2 still to do
        assert _photo_count(server) == 1
        assert list((server.settings.DATA_DIR / "staging").iterdir()) == []
        assert client.get("/households/A2", headers=east).json()["history"] == []
        assert client.get("/sites/S1", headers=admin).json()["photos"] == []

        weed.start()  # same ports, same data; the server was not restarted
        r = upload(client, east, "A2", GOOD_2, key="a2-during-outage")  # the first try
        assert r.status_code == 201, r.text  # the key was released by the failed try
        assert _photo_count(server) == 2
        assert client.post("/sites/S1/photos", files=drone, headers=admin).status_code == 201
        photo_id = r.json()["photo_id"]
        full = httpx.get(
            f"{server.url}/audit/photos/{photo_id}/full", cookies=_cookie(client), timeout=60
        )
        assert full.content == data_file(GOOD_2).read_bytes()
