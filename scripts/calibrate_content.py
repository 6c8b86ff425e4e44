"""Print the content and tilt scores of every developer photo, grouped by folder.

Run: ``/work/venv/bin/python scripts/calibrate_content.py [DATA_DIR]`` (default
``../shared/data``). The table is what the ``[content]`` and ``[geometry]``
thresholds of ``photocheck/default_policy.toml`` were chosen from; the summary at the
end prints each labelled group's range against the thresholds.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

from photocheck.checks.content import flat_fraction, house_score
from photocheck.checks.geometry import estimate_tilt
from photocheck.decode import decode
from photocheck.errors import DecodeError
from photocheck.model import ContentModel
from photocheck.policy import default_policy

ROOT = Path(__file__).resolve().parent.parent
# Labelled groups: (name, path prefixes, what must hold)
GROUPS = {
    "buildings (no NO_HOUSE/SCREEN)": ("buildings/",),
    "screens/screenshots/signs (reject)": (
        "bad_input/screen_photos_moire/",
        "bad_input/screenshots_graphics/",
        "bad_input/signs_text_photos/",
    ),
    "named non-house photos (NO_HOUSE)": (
        "near_dup/imagededup_ukbench/ukbench00120.jpg",
        "bad_input/exposure/exposure_ok.jpg",
        "exif/edited_software/photoshop_4.jpg",
    ),
}


def main(argv: list[str]) -> int:
    data = Path(argv[1]) if len(argv) > 1 else ROOT.parent / "shared" / "data"
    policy, model = default_policy(), ContentModel().load()
    rows: dict[str, list[tuple]] = defaultdict(list)
    files = sorted(p for p in data.rglob("*") if p.is_file() and p.suffix not in (".tsv", ".md"))
    print(
        f"{'file':58s} {'house':>6s} {'build':>6s} {'street':>6s} {'screen':>6s} "
        f"{'flat':>5s} {'tilt':>6s}  top label"
    )
    for path in files:
        rel = str(path.relative_to(data))
        try:
            photo = decode(path.read_bytes(), max_pixels=policy.quality.max_pixels)
        except DecodeError as exc:
            print(f"{rel[:58]:58s} undecodable: {exc}")
            continue
        s = model.scores(photo)
        t = estimate_tilt(photo.grey)
        row = (
            rel,
            house_score(s.building, s.street),
            s.building,
            s.street,
            s.screen,
            flat_fraction(photo.grey),
            t.degrees if t.reliable else None,
            s.top[0][0],
        )
        rows[rel.rsplit("/", 1)[0]].append(row)
    for folder in sorted(rows):
        print(f"-- {folder}")
        for r in rows[folder]:
            tilt = f"{r[6]:6.1f}" if r[6] is not None else "     -"
            print(
                f"{r[0][:58]:58s} {r[1]:6.3f} {r[2]:6.3f} {r[3]:6.3f} {r[4]:6.3f} "
                f"{r[5]:5.2f} {tilt}  {r[7]}"
            )
    every = [r for rs in rows.values() for r in rs]
    c = policy.content
    print(
        f"\nthresholds: house_min_score={c.house_min_score} screen_max_score="
        f"{c.screen_max_score} graphics: screen>{c.graphics_screen_max_score} and flat>="
        f"{c.graphics_min_flat_fraction}; tilt_max_degrees={policy.geometry.tilt_max_degrees}"
    )
    for name, prefixes in GROUPS.items():
        g = [r for r in every if r[0].startswith(prefixes)]
        house = f"{min(r[1] for r in g):.3f}..{max(r[1] for r in g):.3f}"
        screen = f"{min(r[4] for r in g):.3f}..{max(r[4] for r in g):.3f}"
        flat = f"{min(r[5] for r in g):.2f}..{max(r[5] for r in g):.2f}"
        print(f"{name:38s} n={len(g):2d} house {house}  screen {screen}  flat {flat}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
