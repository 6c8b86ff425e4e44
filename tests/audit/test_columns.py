"""The vectorised audit: columns equal the records' own properties, array components
equal union-find, and the grid pair search equals the definition in dense spots."""

from __future__ import annotations

import datetime as dt
import random

import numpy as np
import pytest

from photocheck.audit import (
    AppCapture,
    BatchThresholds,
    PhotoRecord,
    find_desk_batches,
    find_fast_movers,
)
from photocheck.audit.columns import EPOCH, photo_columns
from photocheck.audit.unionfind import UnionFind, connected_components
from tests.audit.test_batches import T0, brute_force_batches, offset, photo

CST = dt.timezone(dt.timedelta(hours=8))


def test_columns_equal_record_properties() -> None:
    rng = random.Random(5)
    photos = []
    for i in range(300):
        cam_t = T0 + dt.timedelta(seconds=rng.uniform(0, 86400), microseconds=rng.randrange(10**6))
        app = AppCapture(
            in_app=rng.random() < 0.5,
            lat=rng.choice([None, 33.7 + rng.random()]),
            lon=rng.choice([None, 110.3 + rng.random()]),
            captured_at=rng.choice([None, cam_t.replace(tzinfo=CST)]),
        )
        photos.append(
            PhotoRecord(
                photo_id=f"p{i}",
                household_id=f"h{i % 50}",
                village_id=f"V{i % 7}",
                town="T",
                verifier=f"v{i % 3}",
                lat=rng.choice([None, 33.7 + rng.random()]),
                lon=rng.choice([None, 110.3 + rng.random()]),
                captured_at=rng.choice([None, cam_t, cam_t.replace(tzinfo=CST)]),
                app=rng.choice([None, app]),
                has_camera_metadata=rng.random() < 0.7,
            )
        )
    cols = photo_columns(iter(photos))
    for k, p in enumerate(photos):
        assert cols.located[k] == (p.position is not None)
        if p.position is not None:
            assert (cols.lat[k], cols.lon[k]) == p.position
        assert cols.timed[k] == (p.taken_at is not None)
        if p.taken_at is not None:
            assert cols.t[k] == (p.taken_at - EPOCH).total_seconds()
        assert cols.village_ids[cols.village[k]] == p.village_id
        no_camera = not p.has_camera_metadata and p.app is not None and p.app.in_app
        assert cols.in_app_without_camera[k] == no_camera
    codes = cols.household_codes(np.arange(len(photos)))
    for a in range(0, 300, 7):
        for b in range(0, 300, 11):
            same = photos[a].household_id == photos[b].household_id
            assert (codes[a] == codes[b]) == same


@pytest.mark.parametrize("seed", range(6))
def test_connected_components_equal_union_find(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(1, 400)
    edges = [(rng.randrange(n), rng.randrange(n)) for _ in range(rng.randint(0, 2 * n))]
    uf = UnionFind()
    for a, b in edges:
        uf.union(a, b)
    expected = {frozenset(g) for g in uf.groups()}
    src = np.array([e[0] for e in edges], dtype=np.int64)
    dst = np.array([e[1] for e in edges], dtype=np.int64)
    label = connected_components(n, src, dst)
    found: dict[int, set[int]] = {}
    for node in {x for e in edges for x in e}:
        found.setdefault(int(label[node]), set()).add(node)
    assert {frozenset(g) for g in found.values()} == expected
    assert all(key == min(group) for key, group in found.items())  # smallest node labels


@pytest.mark.parametrize("seed", range(4))
def test_dense_spot_equals_brute_force(seed: int) -> None:
    """Hundreds of photos in a few cells: a village office, and a dense row of houses."""
    rng = random.Random(100 + seed)
    photos = []
    for i in range(rng.randint(200, 400)):
        spread = rng.choice([3.0, 20.0, 60.0])
        lat, lon = offset(33.7, 110.3, rng.gauss(0, spread), rng.gauss(0, spread))
        t = T0 + dt.timedelta(seconds=rng.choice([rng.uniform(0, 1800), 600.0]))
        photos.append(photo(i, lat, lon, t, hh=f"h{rng.randint(0, 80)}"))
    th = BatchThresholds(min_households=rng.choice([3, 5, 8]))
    found = {frozenset(f.photo_ids) for f in find_desk_batches(photos, th)}
    assert found and found == brute_force_batches(photos, th)


def test_fast_mover_ties_in_time_are_ordered_by_photo_id() -> None:
    far = offset(33.7, 110.3, 5000, 0)
    b = photo(2, *far, T0)
    a = photo(1, 33.7, 110.3, T0)
    for order in ([a, b], [b, a]):
        (f,) = find_fast_movers(order)
        assert f.evidence["from"]["photo_id"] == "p00001"
        assert f.evidence["seconds"] == 0.0
