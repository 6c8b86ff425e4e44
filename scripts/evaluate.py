#!/usr/bin/env python3
"""Evaluate photocheck on the labelled developer set.

Prints, per reason code, how many expectations of EXPECTED.tsv hold (all_of: the code
is present; none_of: it is absent; any_of rows count for each of their codes), the
verdict expectations, and per relation of DUPLICATES.tsv precision and recall.

    python scripts/evaluate.py [--data ../shared/data] [--failures] [--path cli|service|both]

The pairs are the developer set (DUPLICATES.tsv + scenes/DUPLICATES.tsv), scored
through both duplicate paths:

- ``cli``: `photocheck dedup` over the labelled files (candidates by descriptor votes,
  verified by the policy's scene matcher);
- ``service``: `photocheck serve` (embedded default: SQLite, a temporary data folder, a
  free port on 127.0.0.1) in a subprocess, every photo uploaded over HTTP to a
  household of its own, the background scene checks waited for, then the matches the
  service stored (``photo_matches``) read back from its database;
- ``both`` (the default) prints both and how often they agree.

``--skip-checks`` leaves out the EXPECTED.tsv part.

Thresholds are calibrated on these numbers, not on single files.
"""

from __future__ import annotations

import argparse
import csv
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from photocheck import ContentModel, check_photo, default_policy
from photocheck.similarity.dedup import dedup_files
from photocheck.store.repo import household_pair_relations

ROOT = Path(__file__).resolve().parent.parent
PAIR_FILES = ("DUPLICATES.tsv", "scenes/DUPLICATES.tsv")  # the developer set
ADMIN = ("eval-admin", "eval-admin-password")


def _codes(cell: str) -> set[str]:
    return {c for c in cell.split(",") if c}


def evaluate_checks(data: Path, show_failures: bool) -> bool:
    policy, model = default_policy(), ContentModel()
    rows = list(csv.DictReader((data / "EXPECTED.tsv").open(encoding="utf-8"), delimiter="\t"))
    held: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # code -> [held, total]
    failures: list[str] = []
    for row in rows:
        report = check_photo((data / row["relpath"]).read_bytes(), policy=policy, model=model)
        got = {c.value for c in report.codes}
        verdict = report.verdict.value
        if row["verdict"] in ("reject", "not_reject"):
            ok = (verdict == "reject") == (row["verdict"] == "reject")
            held["(verdict)"][0] += ok
            held["(verdict)"][1] += 1
            if not ok:
                failures.append(f"{row['relpath']}: verdict {verdict}, expected {row['verdict']}")
        for code in _codes(row["all_of"]):
            ok = code in got
            held[code][0] += ok
            held[code][1] += 1
            if not ok:
                failures.append(f"{row['relpath']}: missing {code} (got {sorted(got)})")
        for code in _codes(row["none_of"]):
            ok = code not in got
            held[code][0] += ok
            held[code][1] += 1
            if not ok:
                failures.append(f"{row['relpath']}: unexpected {code}")
        any_of = _codes(row["any_of"])
        if any_of:
            ok = bool(any_of & got)
            key = "any(" + "|".join(sorted(any_of)) + ")"
            held[key][0] += int(ok)
            held[key][1] += 1
            if not ok:
                failures.append(f"{row['relpath']}: none of {sorted(any_of)} (got {sorted(got)})")
    print(f"EXPECTED.tsv: {len(rows)} files, policy {policy.version}, model {model.version}")
    print(f"{'code':<44}{'held':>6}{'total':>7}")
    for code in sorted(held):
        n_held, total = held[code]
        print(f"{code:<44}{n_held:>6}{total:>7}{'' if n_held == total else '   <-'}")
    all_ok, all_total = sum(v[0] for v in held.values()), sum(v[1] for v in held.values())
    print(f"{'all expectations':<44}{all_ok:>6}{all_total:>7}")
    if show_failures:
        for line in failures:
            print("  FAIL", line)
    return not failures


def _cli_found(data: Path, files: list[Path]) -> dict[frozenset[str], str]:
    found: dict[frozenset[str], str] = {}
    for match in dedup_files(files, policy=default_policy()):
        a = str(Path(match["a"]).resolve().relative_to(data.resolve()))
        b = str(Path(match["b"]).resolve().relative_to(data.resolve()))
        found[frozenset((a, b))] = match["relation"]
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _login(client: httpx.Client, user: str, password: str) -> dict[str, str]:
    r = client.post("/auth/token", data={"username": user, "password": password})
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _service_found(data: Path, names: list[str]) -> dict[frozenset[str], str]:
    """Every photo uploaded over HTTP to a household of its own; the stored matches."""
    with tempfile.TemporaryDirectory(prefix="photocheck-eval-") as tmp:
        env = {**os.environ, "PHOTOCHECK_DATA_DIR": tmp, "PYTHONPATH": str(ROOT)}
        cli = [sys.executable, "-m", "api.cli"]
        subprocess.run(
            [*cli, "user", "add", ADMIN[0], "--role", "county", "--county", "评测县"],
            input=ADMIN[1], text=True, env=env, check=True, capture_output=True,
        )  # fmt: skip
        port = _free_port()
        server = subprocess.Popen(
            [*cli, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            _upload(f"http://127.0.0.1:{port}/api/v1", data, names)
            return _stored_matches(Path(tmp) / "photocheck.sqlite3", names)
        finally:
            server.terminate()
            server.wait(timeout=60)


def _upload(url: str, data: Path, names: list[str]) -> None:
    with httpx.Client(base_url=url, timeout=120) as client:
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(url.removesuffix("/api/v1") + "/health").raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        admin = _login(client, *ADMIN)
        rows = ["household_id,head_name,town,village,category,site_id,lat,lon"]
        rows += [f"E{i:03d},户{i},评测镇,评测村,appraised,,," for i in range(len(names))]
        r = client.post(
            "/households/import",
            content=("\n".join(rows) + "\n").encode(),
            headers={**admin, "content-type": "text/csv"},
        )
        r.raise_for_status()
        (account,) = r.json()["accounts"]
        first = _login(client, account["username"], account["password"])
        new = account["password"] + "-eval"
        r = client.post(
            "/auth/change-password",
            json={"old_password": account["password"], "new_password": new},
            headers=first,
        )
        r.raise_for_status()
        village = _login(client, account["username"], new)
        for i, name in enumerate(names):
            path = data / name
            r = client.post(
                f"/households/E{i:03d}/photos",
                files={"file": (path.name, path.read_bytes(), "image/jpeg")},
                headers=village,
            )
            r.raise_for_status()
        for i in range(len(names)):  # the scene checks run after the answers
            while client.get(f"/households/E{i:03d}", headers=village).json()["scene_check"]:
                time.sleep(0.5)


def _stored_matches(db: Path, names: list[str]) -> dict[frozenset[str], str]:
    engine = create_engine(f"sqlite:///{db}")
    with Session(engine) as session:
        by_code = household_pair_relations(session)
    engine.dispose()
    return {frozenset(names[int(c[1:])] for c in k): r for k, r in by_code.items()}


def _print_scores(
    title: str, labelled: dict[frozenset[str], str], found: dict[frozenset[str], str]
) -> bool:
    print(f"\n{title}")
    print(f"{'relation':<14}{'labelled':>9}{'found':>7}{'TP':>5}{'precision':>11}{'recall':>8}")
    ok_all = True
    for relation in ("same_photo", "same_scene"):
        truth = {k for k, v in labelled.items() if v == relation}
        predicted = {k for k, v in found.items() if v == relation and k in labelled}
        tp = len(truth & predicted)
        precision = tp / len(predicted) if predicted else 1.0
        recall = tp / len(truth) if truth else 1.0
        print(
            f"{relation:<14}{len(truth):>9}{len(predicted):>7}{tp:>5}{precision:>11.2f}{recall:>8.2f}"
        )
        ok_all &= tp == len(truth) == len(predicted)
    any_dup = {k for k, v in labelled.items() if v != "different"}
    paired = {k for k in found if k in labelled}
    tp = len(any_dup & paired)
    wrong = sum(1 for k in paired if labelled[k] == "different")
    print(
        f"{'any relation':<14}{len(any_dup):>9}{len(paired):>7}{tp:>5}"
        f"{(tp / len(paired) if paired else 1.0):>11.2f}{(tp / len(any_dup)):>8.2f}"
    )
    print(f"different pairs paired: {wrong}")
    return ok_all


def _failures(labelled: dict[frozenset[str], str], found: dict[frozenset[str], str]) -> None:
    for k, v in labelled.items():
        got = found.get(k, "none")
        if (v == "different") != (got == "none") or (v != "different" and got != v):
            print("  PAIR", " <-> ".join(sorted(k)), f"labelled {v}, found {got}")


def evaluate_pairs(data: Path, show_failures: bool, path: str = "both") -> bool:
    pairs = [
        row
        for name in PAIR_FILES
        for row in csv.DictReader((data / name).open(encoding="utf-8"), delimiter="\t")
    ]
    labelled = {frozenset((p["a"], p["b"])): p["relation"] for p in pairs}
    names = sorted({n for k in labelled for n in k})
    sim = default_policy().similarity
    print(
        f"\n{' + '.join(PAIR_FILES)}: {len(labelled)} labelled pairs over {len(names)} files "
        f"(scene matcher {sim.scene_matcher})"
    )
    ok, results = True, {}
    for which in ("cli", "service") if path == "both" else (path,):
        t0 = time.monotonic()
        if which == "cli":
            found = _cli_found(data, [data / n for n in names])
        else:
            found = _service_found(data, names)
        results[which] = found
        took = time.monotonic() - t0
        ok &= _print_scores(f"{which} path ({took:.0f} s wall)", labelled, found)
        if show_failures:
            _failures(labelled, found)
    if len(results) == 2:
        cli, service = results["cli"], results["service"]
        agree = sum(1 for k in labelled if cli.get(k) == service.get(k))
        print(f"\nCLI and service agree on {agree}/{len(labelled)} labelled pairs")
        for k in labelled:
            if cli.get(k) != service.get(k):
                print(
                    "  DIFFER",
                    " <-> ".join(sorted(k)),
                    f"cli {cli.get(k)}, service {service.get(k)}",
                )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--failures", action="store_true", help="list every failed expectation")
    parser.add_argument("--path", choices=("cli", "service", "both"), default="both")
    parser.add_argument("--skip-checks", action="store_true", help="only the pairs")
    args = parser.parse_args()
    checks_ok = args.skip_checks or evaluate_checks(args.data, args.failures)
    pairs_ok = evaluate_pairs(args.data, args.failures, args.path)
    return 0 if checks_ok and pairs_ok else 1


if __name__ == "__main__":
    sys.exit(main())
