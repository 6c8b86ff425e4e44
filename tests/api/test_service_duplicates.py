"""The service's duplicate path scored on the developer set, and compared with the CLI's.

Every photo of the labelled pairs of ``DUPLICATES.tsv`` and ``scenes/DUPLICATES.tsv``
(the developer set: 133 photos, ``developer_files``) is uploaded over real HTTP to a
household of its own (so every pair spans two households), the scene checks after the
answers are waited for, and the stored matches are read back. Issue 11's target, by
the service and by `photocheck dedup` alike: every same_photo pair, at least 97 % of
the same_scene pairs, no different pair; and both paths say the same of every
labelled pair.

One server for both files, photos uploaded once; the service reuses the features the
CLI made and the matching it did (``tests/feature_memo.py``: the same inputs, computed
once; the service asks (new photo, earlier one) where the CLI asked (earlier, later),
so the memo holds the parts both compute in one fixed order: ~74 LighterGlue runs, not
~125), and each photo is decoded once (``tests/decode_memo.py``: `photocheck dedup`,
the upload's checks and the scene checks decode the same bytes).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from photocheck.similarity.dedup import Pair
from photocheck.store.repo import household_pair_relations

from ..conftest import DATA, DEVELOPER_SETS, developer_files
from ..decode_memo import DecodeMemo
from .conftest import ADMIN, LiveServer, activate, login, make_settings, seed_admin

ALLOWED = {"same_photo": {"same_photo"}, "same_scene": {"same_scene", "same_photo"}}
SETS = DEVELOPER_SETS
MIN_SCENE_RECALL = 0.97  # issue 11's target on the developer set


@dataclass
class Scored:
    labels: dict[str, list[tuple[str, str, str]]]  # per label file
    service: dict[frozenset, str]  # {pair: relation} as the service stored it
    cli: dict[frozenset, str]  # ... as `photocheck dedup` found it

    @property
    def every_label(self) -> list[tuple[str, str, str]]:
        return [row for rows in self.labels.values() for row in rows]


def _labels(name: str) -> list[tuple[str, str, str]]:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"no {name}")
    with path.open(encoding="utf-8", newline="") as fh:
        return [(r["a"], r["b"], r["relation"]) for r in csv.DictReader(fh, delimiter="\t")]


@pytest.fixture(scope="module")
def scored(
    decode_memo: DecodeMemo,
    tmp_path_factory: pytest.TempPathFactory,
    developer_dedup: dict[frozenset[str], Pair],
) -> Iterator[Scored]:
    labels = {name: _labels(name) for name in SETS}
    names = developer_files()
    tmp = tmp_path_factory.mktemp("service-dup")
    settings = make_settings(tmp, f"sqlite:///{tmp / 'db.sqlite3'}")
    seed_admin(settings)
    live = LiveServer(settings)
    live.start()
    try:
        with decode_memo.active():
            service = _upload_all(live, names)
    finally:
        live.stop()
        print(f"\ndecode memo: {decode_memo.misses} decodes, {decode_memo.hits} reused")
        decode_memo.clear()  # the rest of the unit decodes no developer-set photo
    cli = {k: p.relation for k, p in developer_dedup.items()}
    yield Scored(labels, service, cli)


def _households_csv(n: int) -> bytes:
    rows = ["household_id,head_name,town,village,category,site_id,lat,lon"]
    rows += [f"D{i:03d},户{i},评测镇,评测村,appraised,,," for i in range(n)]
    return ("\ufeff" + "\n".join(rows) + "\n").encode()


def _upload_all(live: LiveServer, names: list[str]) -> dict[frozenset, str]:
    with httpx.Client(base_url=live.url + "/api/v1", timeout=120) as client:
        admin = login(client, *ADMIN)
        r = client.post(
            "/households/import",
            content=_households_csv(len(names)),
            headers={**admin, "content-type": "text/csv"},
        )
        assert r.status_code == 200, r.text
        (account,) = r.json()["accounts"]
        village = activate(client, account["username"], account["password"])
        for i, name in enumerate(names):
            path: Path = DATA / name
            r = client.post(
                f"/households/D{i:03d}/photos",
                files={"file": (path.name, path.read_bytes(), "image/jpeg")},
                headers=village,
            )
            assert r.status_code == 201, f"{name}: {r.text}"
    assert live.app_state.intake.drain(timeout=3600)  # ~15 min on a loaded 2-core machine
    with live.app_state.db.session() as session:
        by_code = household_pair_relations(session)
    return {frozenset(names[int(c[1:])] for c in k): r for k, r in by_code.items()}


def _score(labels: list[tuple[str, str, str]], found: dict[frozenset, str]) -> dict[str, tuple]:
    rows = {}
    for relation in ("same_photo", "same_scene", "different"):
        labelled = [frozenset((a, b)) for a, b, r in labels if r == relation]
        if relation == "different":
            hits = sum(1 for k in labelled if k not in found)
        else:
            hits = sum(1 for k in labelled if found.get(k) in ALLOWED[relation])
        rows[relation] = (hits, len(labelled))
    return rows


@pytest.mark.parametrize("path", ["service", "cli"])
def test_developer_set_scores(scored: Scored, path: str) -> None:
    """Both paths reach the target on the whole developer set."""
    found = scored.service if path == "service" else scored.cli
    print()
    for name, rows in scored.labels.items():
        for relation, (hits, n) in _score(rows, found).items():
            said = "not paired" if relation == "different" else "found"
            print(f"{path} {name} {relation}: {hits}/{n} {said}")
    total = _score(scored.every_label, found)
    assert total["different"][0] == total["different"][1]  # no false pair
    assert total["same_photo"][0] == total["same_photo"][1]
    hits, n = total["same_scene"]
    assert hits >= MIN_SCENE_RECALL * n, f"same_scene {hits}/{n}"


def test_service_and_cli_agree(scored: Scored) -> None:
    labels = scored.every_label
    differ = [
        (a, b, r, scored.cli.get(k), scored.service.get(k))
        for a, b, r in labels
        if scored.cli.get(k := frozenset((a, b))) != scored.service.get(k)
    ]
    print(f"\nCLI and service agree on {len(labels) - len(differ)}/{len(labels)} labelled pairs")
    assert differ == [], differ
