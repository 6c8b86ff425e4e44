"""Benchmark: drone package building vs a plain file copy of the same bytes, and memory.

    python scripts/bench_package.py [--photos 100] [--mb 8] [--stream-gb 2]

1. Writes ``--photos`` files of ``--mb`` MiB of random bytes (JPEG-like: incompressible)
   in a temp folder, then, alternating, best of ``--repeat``:
   - copy:    shutil.copyfileobj of every file into one output file (the baseline);
   - package: the zip package of the same files written to an output file, with the
              CRC-32s computed beforehand, as the service stores them at upload;
   - package+digest: the same, computing SHA-256 and CRC-32 first (a first build).
   Prints MB/s and the ratio package / copy (the issue asks >= 0.70).
2. Streams a package of ``--stream-gb`` GiB of sparse files to /dev/null and samples the
   resident set size while it runs: prints the peak growth above the idle RSS.
Timings are noisy on a shared machine; only ratios measured in one run mean anything.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import shutil
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from photocheck.drone import (  # noqa: E402
    PackagePhoto,
    Site,
    SiteKind,
    build_package,
    canonical_name,
    file_digests,
)

SITE = Site("S1", "幸福家园", SiteKind.RELOCATION, "丹凤县", "龙驹寨街道", 33.7, 110.4)
DAY = dt.date(2021, 8, 20)


def _photos(paths: list[Path], digests: list[tuple[str, int]]) -> list[PackagePhoto]:
    return [
        PackagePhoto(
            name=canonical_name(
                county=SITE.county,
                town=SITE.town,
                site_name=SITE.name,
                kind=SITE.kind,
                day=DAY,
                seq=i,
            ),
            site=SITE,
            source=p,
            size=p.stat().st_size,
            sha256=sha,
            crc32=crc,
            added_at=dt.datetime(2021, 8, 20, 9, 0),
        )
        for i, (p, (sha, crc)) in enumerate(zip(paths, digests, strict=True), 1)
    ]


def _copy(paths: list[Path], out: Path) -> int:
    with out.open("wb") as dst:
        for p in paths:
            with p.open("rb") as src:
                shutil.copyfileobj(src, dst, 1 << 20)
        return dst.tell()


def _package(paths: list[Path], digests: list[tuple[str, int]] | None, out: Path) -> int:
    digests = digests or [file_digests(p) for p in paths]
    with out.open("wb") as dst:
        return build_package(_photos(paths, digests)).write_to(dst)


def bench_speed(n: int, mb: int, repeat: int, tmp: Path) -> None:
    src = tmp / "src"
    src.mkdir()
    paths = []
    for i in range(n):
        p = src / f"DJI_{i:04d}.JPG"
        p.write_bytes(os.urandom(mb << 20))
        paths.append(p)
    total = sum(p.stat().st_size for p in paths)
    digests = [file_digests(p) for p in paths]  # also warms the page cache for every run
    for sink in (Path(os.devnull), tmp / "out.bin"):
        _race(paths, digests, total, sink, repeat)


def _race(
    paths: list[Path], digests: list[tuple[str, int]], total: int, out: Path, repeat: int
) -> None:
    """Best time of each contender; the order rotates so none always runs after another."""
    runs = {
        "copy": lambda: _copy(paths, out),
        "package": lambda: _package(paths, digests, out),
        "package+digest": lambda: _package(paths, None, out),
    }
    best = dict.fromkeys(runs, float("inf"))
    order = list(runs)
    for _ in range(repeat):
        for label in order:
            started = time.perf_counter()
            written = runs[label]()
            best[label] = min(best[label], time.perf_counter() - started)
            assert written >= total or out == Path(os.devnull)
            if out.exists() and out != Path(os.devnull):
                out.unlink()
        order = order[1:] + order[:1]
    rate = {k: total / v / 1e6 for k, v in best.items()}
    print(f"{len(paths)} files, {total / 1e6:.0f} MB -> {out}, best of {repeat}")
    for k, v in rate.items():
        print(f"  {k:15s} {v:8.0f} MB/s   ratio to copy {v / rate['copy']:.2f}")
    print(f"  package / copy = {rate['package'] / rate['copy']:.2f} (target >= 0.70)")


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def _crc_of_zeros(size: int) -> int:
    crc, chunk = 0, bytes(1 << 22)
    full, rest = divmod(size, len(chunk))
    for _ in range(full):
        crc = zlib.crc32(chunk, crc)
    return zlib.crc32(chunk[:rest], crc)


def bench_memory(gib: float, tmp: Path) -> None:
    each = 8 << 20
    count = int(gib * (1 << 30)) // each
    folder = tmp / "sparse"
    folder.mkdir()
    paths = []
    for i in range(count):
        p = folder / f"{i:04d}.jpg"
        with p.open("wb") as fh:
            fh.truncate(each)  # sparse: reads as zeros, costs no disk
        paths.append(p)
    crc = _crc_of_zeros(each)
    layout = build_package(_photos(paths, [("0" * 64, crc)] * count))
    idle = _rss_mb()
    peak = idle
    sent = 0
    started = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        for i, chunk in enumerate(layout.iter_range()):
            sink.write(chunk)
            sent += len(chunk)
            if i % 64 == 0:
                peak = max(peak, _rss_mb())
    elapsed = time.perf_counter() - started
    peak = max(peak, _rss_mb())
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
    print(
        f"streamed {sent / 2**30:.2f} GiB ({count} members) in {elapsed:.1f} s: "
        f"RSS idle {idle:.0f} MB, peak {peak:.0f} MB, growth {peak - idle:.1f} MB "
        f"(target < 100 MB); process ru_maxrss {maxrss:.0f} MB"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--photos", type=int, default=100)
    ap.add_argument("--mb", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--stream-gb", type=float, default=2.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_package_") as tmp:
        bench_memory(args.stream_gb, Path(tmp))
        bench_speed(args.photos, args.mb, args.repeat, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
