"""Correct across processes: two ``photocheck serve`` processes on one PostgreSQL.

Each request is sent to a chosen worker (its own port). The duplicate decision is
serialised by PostgreSQL's advisory lock and each worker's index catches up with the
others' photos inside it, so what one worker stored is seen by the other at once.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.api.conftest import ADMIN, login
from tests.conftest import data_file

from .conftest import Cluster, import_households

pytestmark = pytest.mark.postgres

# 20 different photos (no two of them are the same photo): one per trial
TRIAL_PHOTOS = [
    *(
        f"buildings/camera_corpus/{n}.jpg"
        for n in (
            "canon_s30_house_street",
            "fujifilm_ds7_2_japanese_house",
            "fujifilm_s2pro_5_building_bus",
            "kodak_z1012_facade_person",
            "kyocera_fcs3_modern_building",
            "nokia_3110c_church_street",
            "olympus_c40z_garages_burnt_car",
            "panasonic_fx7_apartment_facade",
            "sony_cybershot6_house_trees",
        )
    ),
    *(f"buildings/opensfm_lund/{i:02d}.jpg" for i in range(1, 12)),
]
TRIALS = len(TRIAL_PHOTOS)


def households_csv(n: int) -> str:
    rows = ["household_id,head_name,town,village,category,site_id,lat,lon"]
    for i in range(n):
        rows.append(f"E{i},户主E{i},龙驹寨镇,东村,鉴定安全,,,")
        rows.append(f"W{i},户主W{i},龙驹寨镇,西村,改造安全,,,")
    return "\n".join(rows) + "\n"


def upload(
    client: httpx.Client, headers: dict, household: str, relpath: str, key: str | None = None
) -> httpx.Response:
    path = data_file(relpath)
    if key is not None:
        headers = {**headers, "Idempotency-Key": key}
    return client.post(
        f"/households/{household}/photos",
        files={"file": (path.name, path.read_bytes(), "image/jpeg")},
        headers=headers,
    )


def codes(r: httpx.Response) -> set[str]:
    return {x["code"] for x in r.json()["reasons"]}


def test_same_photo_at_once_through_two_workers(cluster: Cluster) -> None:
    w1, w2 = cluster.workers
    with w1.client() as c1, w2.client() as c2:
        v = import_households(c1, households_csv(TRIALS))
        east, west = v["东村"], v["西村"]
        outcomes = []
        for i, relpath in enumerate(TRIAL_PHOTOS):
            barrier = threading.Barrier(2)

            def send(
                args: tuple[httpx.Client, dict, str],
                relpath: str = relpath,
                barrier: threading.Barrier = barrier,
            ) -> httpx.Response:
                client, headers, household = args
                barrier.wait()
                return upload(client, headers, household, relpath)

            with ThreadPoolExecutor(2) as pool:
                a, b = pool.map(send, [(c1, east, f"E{i}"), (c2, west, f"W{i}")])
            assert (a.status_code, b.status_code) == (201, 201), (a.text, b.text)
            flags = sorted(["DUPLICATE_PHOTO" in codes(r) for r in (a, b)])
            outcomes.append(flags)
        # exactly one of the two passes in every trial
        assert outcomes == [[False, True]] * TRIALS, outcomes


def test_reupload_through_the_other_worker_and_idempotency(cluster: Cluster) -> None:
    w1, w2 = cluster.workers
    with w1.client() as c1, w2.client() as c2:
        v = import_households(c1, households_csv(2))
        east, west = v["东村"], v["西村"]
        photo = TRIAL_PHOTOS[0]

        first = upload(c1, east, "E0", photo)
        assert first.status_code == 201, first.text
        assert "DUPLICATE_PHOTO" not in codes(first)
        again = upload(c2, west, "W0", photo)  # right after the first answer
        assert again.status_code == 201, again.text
        assert "DUPLICATE_PHOTO" in codes(again), again.json()
        assert again.json()["matches"][0]["photo_id"] == first.json()["photo_id"]

        # an Idempotency-Key retried through the other worker: same answer, stored once
        r1 = upload(c1, east, "E1", TRIAL_PHOTOS[1], key="retry-across-workers")
        r2 = upload(c2, east, "E1", TRIAL_PHOTOS[1], key="retry-across-workers")
        assert (r1.status_code, r2.status_code) == (201, 200), (r1.text, r2.text)
        assert r1.json() == r2.json()
        history = c2.get("/households/E1", headers=east).json()["history"]
        assert len(history) == 1

        # the audit and the progress of either worker see both workers' uploads
        admin = login(c2, *ADMIN)
        total = c2.get("/progress", headers=admin).json()["total"]
        assert total["total"] - total["no_photo"] == 3, total
        r = c1.post("/audit/refresh", params={"wait": "true"}, headers=admin)
        assert r.status_code == 200, r.text
        assert r.json()["pending_photos"] == 0, r.json()
        after = c2.get("/audit/status", headers=admin).json()
        assert after["pending_photos"] == 0 and after["computed_at"], after
        findings = c2.get("/audit/findings", headers=admin).json()["findings"]
        pairs = [set(f["household_ids"]) for f in findings]
        assert {"E0", "W0"} in pairs, findings  # worker 1's photo and worker 2's copy
