"""Decompression bombs of every format: decoded within the memory budget or UNREADABLE.

A few hundred KB of PNG, WebP or HEIF can declare 120 MP; a 16-bit PNG of 10950x10950
once took 17 s and 3.3 GB. The bombs are made here (never committed) and checked in a
subprocess, whose peak RSS (``VmHWM``) is the figure that counts: the content model,
the checks and the audit preview included.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pillow_heif
from PIL import Image

pillow_heif.register_heif_opener()

PEAK_LIMIT_MB = 600
SIDE = 10950  # 119.9 MP: under the 120 MP pixel limit, so only the budget stops it


def _png(width: int, height: int, bit_depth: int, colour_type: int) -> bytes:
    """An all-black PNG: every row filter 0 and every sample 0, so its image data is a
    zlib stream of zeros (``_zlib_zeros``), never held decoded."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    idat = _zlib_zeros((1 + width * channels * bit_depth // 8) * height)

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def _zlib_zeros(n: int, block: int = 1 << 22) -> bytes:
    """A zlib stream of ``n`` zero bytes: one block of zeros deflated, ended by a full
    flush (which resets the compressor, so every further block deflates to the same
    bytes), repeated; then the rest and the Adler-32 of zeros (1, n mod 65521).
    Compressing the 240-720 MB row by row took 3.7 s of CPU for the three PNGs."""

    def deflated(size: int, end: int) -> bytes:
        packer = zlib.compressobj(9, zlib.DEFLATED, -15, 9)  # raw deflate, no header
        return packer.compress(bytes(size)) + packer.flush(end)

    full, rest = divmod(n, block)
    body = deflated(block, zlib.Z_FULL_FLUSH) * full + deflated(rest, zlib.Z_FINISH)
    return b"\x78\xda" + body + struct.pack(">I", (n % 65521) << 16 | 1)


def _webp(side: int) -> bytes:
    """A small lossy WebP whose VP8 frame header says ``side`` x ``side``."""
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 120, 60)).save(out, "WEBP", quality=50)
    data = bytearray(out.getvalue())
    start = data.index(b"\x9d\x01\x2a")  # VP8 key-frame start code, then width, height
    struct.pack_into("<HH", data, start + 3, side, side)
    return bytes(data)


def _heif(side: int) -> bytes:
    """A small HEIC whose image-size boxes (ispe) say ``side`` x ``side``."""
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 120, 60)).save(out, "HEIF", quality=50)
    data = bytearray(out.getvalue())
    at = data.find(b"ispe")
    while at > 0:
        struct.pack_into(">II", data, at + 8, side, side)
        at = data.find(b"ispe", at + 1)
    return bytes(data)


_CHILD = """
import json, sys, time
from pathlib import Path
from photocheck import ContentModel, check_photo, default_policy
from photocheck.audit.previews import make_preview
policy, model = default_policy(), ContentModel()
def peak_mb():
    # VmHWM: this process's own peak RSS. ru_maxrss would also count the parent's, as
    # Linux carries it over fork + exec (a big pytest process would then be measured)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no VmHWM")
for path in sys.argv[1:]:
    data = Path(path).read_bytes()
    t = time.perf_counter()
    report = check_photo(data, policy=policy, model=model)
    preview = make_preview(data)
    print(json.dumps({
        "file": Path(path).name,
        "seconds": round(time.perf_counter() - t, 2),
        "peak_mb": peak_mb(),
        "codes": [r.code.value for r in report.reasons],
        "evidence": [r.evidence for r in report.reasons if r.code.value == "UNREADABLE"],
        "preview": preview is not None,
    }), flush=True)
"""


def test_bombs_stay_within_the_memory_budget(tmp_path: Path) -> None:
    bombs = {
        "grey16.png": _png(SIDE, SIDE, 16, 0),  # the case: decoded, bounded
        "rgb16.png": _png(SIDE, SIDE, 16, 2),  # 457 MB as Pillow RGB: over the budget
        "rgba8.png": _png(SIDE, SIDE, 8, 6),
        "big.webp": _webp(SIDE),
        "big.heic": _heif(8000),
        "grey16.pgm": b"P5 %d %d 65535\n" % (SIDE, SIDE) + bytes(1024),
    }
    paths = []
    for name, data in bombs.items():
        assert len(data) < 1024 * 1024, name  # bombs: small files that say huge
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    run = subprocess.run(
        [sys.executable, "-c", _CHILD, *paths],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results = {r["file"]: r for r in map(json.loads, run.stdout.splitlines())}
    for r in results.values():
        print(r)  # time and peak per bomb (peaks are cumulative: the process's maximum)
    assert set(results) == set(bombs)
    assert max(r["peak_mb"] for r in results.values()) <= PEAK_LIMIT_MB
    # 240 MB as 16-bit grey: within the budget, decoded and checked like any photo
    assert "UNREADABLE" not in results["grey16.png"]["codes"]
    assert results["grey16.png"]["preview"]
    for name in ("rgb16.png", "rgba8.png", "big.webp", "big.heic", "grey16.pgm"):
        r = results[name]
        assert r["codes"] == ["UNREADABLE"], (name, r)
        assert "MB allowed per photo" in r["evidence"][0]["error"], (name, r)
        assert not r["preview"], name  # the audit preview refuses it just the same
