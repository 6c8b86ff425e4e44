"""The service's duplicate path scored on DUPLICATES.tsv, and compared with the CLI's.

Every photo of the labelled pairs is uploaded over real HTTP to a household of its own
(so every pair spans two households), the scene checks after the answers are waited
for, and the stored matches are read back. Each labelled pair must come out as the
label says (same_photo; same_scene or same_photo; different: nothing), and as
`photocheck dedup` says for the same files: one engine, one answer.

One server for the module; the uploads are the expensive part (~46 photos).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from photocheck.policy import default_policy
from photocheck.similarity.dedup import dedup_entries, load_entries
from photocheck.store.models import Household, Photo, PhotoMatch

from ..conftest import DATA, load_duplicate_pairs
from .conftest import ADMIN, LiveServer, activate, login, make_settings, seed_admin

LABELS = load_duplicate_pairs()
NAMES = sorted({p for a, b, _ in LABELS for p in (a, b)})
pytestmark = pytest.mark.skipif(not LABELS, reason="no DUPLICATES.tsv")


def _households_csv() -> bytes:
    rows = ["household_id,head_name,town,village,category,site_id,lat,lon"]
    rows += [f"D{i:03d},户{i},评测镇,评测村,appraised,,," for i in range(len(NAMES))]
    return ("\ufeff" + "\n".join(rows) + "\n").encode()


@pytest.fixture(scope="module")
def service_pairs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[frozenset, str]]:
    """{frozenset((name_a, name_b)): relation} as the service stored them."""
    tmp = tmp_path_factory.mktemp("service-dup")
    settings = make_settings(tmp, f"sqlite:///{tmp / 'db.sqlite3'}")
    seed_admin(settings)
    live = LiveServer(settings)
    live.start()
    try:
        yield _upload_all(live)
    finally:
        live.stop()


def _upload_all(live: LiveServer) -> dict[frozenset, str]:
    with httpx.Client(base_url=live.url + "/api/v1", timeout=120) as client:
        admin = login(client, *ADMIN)
        r = client.post(
            "/households/import",
            content=_households_csv(),
            headers={**admin, "content-type": "text/csv"},
        )
        assert r.status_code == 200, r.text
        (account,) = r.json()["accounts"]
        village = activate(client, account["username"], account["password"])
        for i, name in enumerate(NAMES):
            path = DATA / name
            r = client.post(
                f"/households/D{i:03d}/photos",
                files={"file": (path.name, path.read_bytes(), "image/jpeg")},
                headers=village,
            )
            assert r.status_code == 201, f"{name}: {r.text}"
    assert live.app_state.intake.drain(timeout=600)
    with live.app_state.db.session() as session:
        name_of = {
            pid: NAMES[int(code[1:])]
            for pid, code in session.execute(
                select(Photo.id, Household.household_code).join(
                    Household, Household.id == Photo.household_id
                )
            )
        }
        rows = session.execute(
            select(PhotoMatch.photo_id, PhotoMatch.other_photo_id, PhotoMatch.relation)
        ).all()
    out: dict[frozenset, str] = {}
    for a, b, relation in rows:
        key = frozenset((name_of[a], name_of[b]))
        if out.get(key) != "same_photo":  # the stronger relation wins
            out[key] = relation
    return out


@pytest.fixture(scope="module")
def cli_pairs() -> dict[frozenset, str]:
    files = [DATA / n for n in NAMES]
    entries = load_entries(files, policy=default_policy(), names=NAMES)
    return {
        frozenset((p.a, p.b)): p.relation for p in dedup_entries(entries, policy=default_policy())
    }


ALLOWED = {"same_photo": {"same_photo"}, "same_scene": {"same_scene", "same_photo"}}


def test_service_scores_on_duplicates_tsv(service_pairs: dict[frozenset, str]) -> None:
    rows = {}
    for relation in ("same_photo", "same_scene", "different"):
        labelled = [frozenset((a, b)) for a, b, r in LABELS if r == relation]
        if relation == "different":
            hits = sum(1 for k in labelled if k not in service_pairs)
        else:
            hits = sum(1 for k in labelled if service_pairs.get(k) in ALLOWED[relation])
        rows[relation] = (hits, len(labelled))
    print()
    for relation, (hits, n) in rows.items():
        said = "not paired" if relation == "different" else "found"
        print(f"service path, {relation}: {hits}/{n} {said}")
    assert all(hits == n for hits, n in rows.values()), rows


def test_service_and_cli_agree(
    service_pairs: dict[frozenset, str], cli_pairs: dict[frozenset, str]
) -> None:
    differ = [
        (a, b, r, cli_pairs.get(frozenset((a, b))), service_pairs.get(frozenset((a, b))))
        for a, b, r in LABELS
        if cli_pairs.get(frozenset((a, b))) != service_pairs.get(frozenset((a, b)))
    ]
    print(f"\nCLI and service agree on {len(LABELS) - len(differ)}/{len(LABELS)} labelled pairs")
    assert differ == [], differ
