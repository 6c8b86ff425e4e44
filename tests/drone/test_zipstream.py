"""The deterministic STORED zip: readable by zipfile and unzip, any range, ZIP64."""

from __future__ import annotations

import datetime as dt
import io
import shutil
import subprocess
import zipfile
import zlib
from pathlib import Path

import pytest

from photocheck.drone import CallableSource, MemberChanged, ZipLayout, ZipMember, file_digests

from ..conftest import DATA

DRONE = sorted((DATA / "drone").rglob("*.[jJ][pP][gG]"))
T0 = dt.datetime(2021, 8, 20, 10, 30, 14)


def _members() -> list[ZipMember]:
    out = [
        ZipMember.from_file(
            f"丹凤县_龙驹寨街道_幸福家园_移民搬迁点_航拍_20210820_{i:02d}.jpg", p, T0
        )
        for i, p in enumerate(DRONE, 1)
    ]
    out.append(ZipMember.from_bytes("清单.csv", "\ufeff文件名\r\n".encode(), T0))
    return out


def test_real_drone_photos_round_trip(tmp_path: Path) -> None:
    assert len(DRONE) == 5, "expected the five drone photos of ../shared/data/drone"
    layout = ZipLayout(_members())
    data = b"".join(layout.iter_range())
    assert len(data) == layout.size
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        infos = zf.infolist()
        assert [i.filename for i in infos] == [m.name for m in layout.members]
        for info, path in zip(infos, DRONE, strict=False):
            assert info.flag_bits & 0x800, "names must carry the UTF-8 flag"
            assert info.compress_type == zipfile.ZIP_STORED
            assert info.date_time == (2021, 8, 20, 10, 30, 14)
            assert zf.read(info) == path.read_bytes()  # byte-identical, not recompressed


@pytest.mark.skipif(shutil.which("unzip") is None, reason="unzip not installed")
def test_unzip_accepts_it(tmp_path: Path) -> None:
    layout = ZipLayout(_members())
    archive = tmp_path / "pkg.zip"
    with archive.open("wb") as fh:
        assert layout.write_to(fh) == layout.size
    proc = subprocess.run(["unzip", "-t", str(archive)], capture_output=True, check=False)
    assert proc.returncode == 0, proc.stdout.decode(errors="replace")
    assert b"No errors detected" in proc.stdout
    out = tmp_path / "x"
    subprocess.run(["unzip", "-q", str(archive), "-d", str(out)], check=True)
    assert (out / layout.members[0].name).read_bytes() == DRONE[0].read_bytes()


def test_every_range_matches_the_whole() -> None:
    layout = ZipLayout(_members())
    whole = b"".join(layout.iter_range())
    header_ends = [30 + len(m.name.encode()) for m in layout.members]
    cuts = {0, 1, 29, 30, *header_ends, layout.size - 22, layout.size - 1, layout.size}
    cuts |= set(range(0, layout.size, 1_048_573))
    for a in sorted(cuts):
        for b in (a, a + 1, a + 4097, a + 2_500_000, layout.size):
            b = min(b, layout.size)
            assert b"".join(layout.iter_range(a, b)) == whole[a:b], (a, b)
    with pytest.raises(ValueError, match="outside"):
        list(layout.iter_range(5, layout.size + 1))
    with pytest.raises(ValueError, match="outside"):
        list(layout.iter_range(10, 5))


def test_layout_and_etag_are_deterministic() -> None:
    a, b = ZipLayout(_members()), ZipLayout(_members())
    assert a.etag == b.etag and a.size == b.size
    changed = _members()
    changed[-1] = ZipMember.from_bytes("清单.csv", "\ufeff文件名 name\r\n".encode(), T0)
    assert ZipLayout(changed).etag != a.etag


def test_duplicate_names_are_refused() -> None:
    m = ZipMember.from_bytes("a.jpg", b"x", T0)
    with pytest.raises(ValueError, match="unique"):
        ZipLayout([m, m])


def test_a_file_that_shrank_fails_loudly(tmp_path: Path) -> None:
    p = tmp_path / "a.jpg"
    p.write_bytes(b"0123456789")
    layout = ZipLayout([ZipMember.from_file("a.jpg", p, T0)])
    p.write_bytes(b"01234")
    with pytest.raises(MemberChanged, match="shorter"):
        b"".join(layout.iter_range())


def test_file_digests_match_hashlib_and_zlib() -> None:
    data = DRONE[0].read_bytes()
    sha, crc = file_digests(DRONE[0])
    import hashlib

    assert sha == hashlib.sha256(data).hexdigest() and crc == zlib.crc32(data)


def _zeros(offset: int, length: int):
    chunk = bytes(1 << 20)
    while length:
        n = min(length, len(chunk))
        yield chunk[:n]
        length -= n


def _crc_of_zeros(size: int) -> int:
    crc, chunk = 0, bytes(1 << 22)
    full, rest = divmod(size, len(chunk))
    for _ in range(full):
        crc = zlib.crc32(chunk, crc)
    return zlib.crc32(chunk[:rest], crc)


@pytest.fixture(scope="module")
def zip64_layout() -> ZipLayout:
    big = (1 << 32) + 12345  # over 4 GiB: size fields and the next offset overflow
    return ZipLayout(
        [
            ZipMember.from_bytes("小.jpg", b"abc", T0),
            ZipMember("大_big.bin", big, _crc_of_zeros(big), T0, CallableSource(_zeros)),
            ZipMember.from_bytes("后.jpg", b"xyz", T0),
        ]
    )  # fmt: skip


def _write_sparse(layout: ZipLayout, path: Path) -> None:
    """The archive as a file, seeking over the zero member instead of writing 4 GiB."""
    with path.open("wb") as fh:
        for seg in layout._segments:
            if seg.member is not None and seg.member.name == "大_big.bin":
                fh.seek(seg.length, io.SEEK_CUR)
            else:
                for chunk in layout.iter_range(seg.start, seg.start + seg.length):
                    fh.write(chunk)
        fh.truncate(layout.size)


def test_zip64_when_over_4gb(zip64_layout: ZipLayout, tmp_path: Path) -> None:
    archive = tmp_path / "big.zip"
    _write_sparse(zip64_layout, archive)
    assert archive.stat().st_size == zip64_layout.size
    with zipfile.ZipFile(archive) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        assert infos["大_big.bin"].file_size == (1 << 32) + 12345
        assert infos["后.jpg"].header_offset > 0xFFFFFFFF
        assert zf.read("后.jpg") == b"xyz" and zf.read("小.jpg") == b"abc"
        with zf.open("大_big.bin") as fh:  # the data offset via the local zip64 header
            assert fh.read(10) == bytes(10)
    # The tail of the archive, as a Range request would fetch it, matches the file.
    tail_from = zip64_layout.size - 300
    with archive.open("rb") as fh:
        fh.seek(tail_from)
        assert b"".join(zip64_layout.iter_range(tail_from)) == fh.read()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("unzip") is None, reason="unzip not installed")
def test_unzip_tests_the_zip64_archive(
    zip64_layout: ZipLayout, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if "slow" not in (request.config.option.markexpr or ""):
        pytest.skip("unzip reads 4 GiB here (~30 s); run with -m slow")
    archive = tmp_path / "big.zip"
    _write_sparse(zip64_layout, archive)
    proc = subprocess.run(["unzip", "-t", str(archive)], capture_output=True, check=False)
    assert proc.returncode == 0, proc.stdout.decode(errors="replace")
