"""A deterministic, streamable, range-addressable STORED zip.

Python's ``zipfile`` can write to an unseekable stream but cannot produce an arbitrary
byte range of an archive, which HTTP Range resume needs. Here every member's size and
CRC-32 are known before the first byte is written (the CRC is computed once, at upload,
and stored), so the whole layout is fixed in advance:

    [local header | data] * n   central directory   [zip64 end + locator]   end record

No data descriptors, no compression (JPEGs do not shrink), names in UTF-8 with general
purpose flag bit 11 so Windows Explorer shows Chinese names, ZIP64 records exactly where
a size or offset does not fit in 32 bits. ``ZipLayout.size`` is the archive length
without reading any data, ``iter_range`` yields any slice, and ``etag`` is a digest of
the layout, stable as long as names, sizes, CRCs and times are.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
import zlib
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..errors import PhotocheckError

__all__ = [
    "CHUNK_SIZE",
    "BytesSource",
    "CallableSource",
    "FileSource",
    "MemberChanged",
    "ZipLayout",
    "ZipMember",
    "file_digests",
]

CHUNK_SIZE = 1 << 20  # 1 MiB reads: large enough to run at copy speed, small to hold
_U32 = 0xFFFFFFFF
_U16 = 0xFFFF
_FLAG_UTF8 = 0x0800
_VERSION_ZIP64 = 45
_VERSION_STORED = 20
_MADE_BY_UNIX = 3 << 8
_EXT_ATTR_FILE = (0o100644 << 16) & _U32  # a regular file, rw-r--r--
_DOS_EPOCH = dt.datetime(1980, 1, 1)


class MemberChanged(PhotocheckError, OSError):
    """A member's bytes on disk no longer match the size recorded in the layout."""


class FileSource:
    """A member whose bytes are a file on disk."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def read(self, offset: int, length: int) -> Iterator[bytes]:
        with self.path.open("rb") as fh:
            fh.seek(offset)
            remaining = length
            while remaining:
                chunk = fh.read(min(CHUNK_SIZE, remaining))
                if not chunk:
                    msg = f"{self.path} is shorter than recorded ({remaining} bytes missing)"
                    raise MemberChanged(msg)
                remaining -= len(chunk)
                yield chunk


class BytesSource:
    """A small member held in memory (the manifest)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, offset: int, length: int) -> Iterator[bytes]:
        yield self.data[offset : offset + length]


class CallableSource:
    """A member produced by ``reader(offset, length) -> chunks`` (blob stores, tests)."""

    def __init__(self, reader: Callable[[int, int], Iterable[bytes]]) -> None:
        self.reader = reader

    def read(self, offset: int, length: int) -> Iterator[bytes]:
        yield from self.reader(offset, length)


Source = FileSource | BytesSource | CallableSource


@dataclass(frozen=True)
class ZipMember:
    name: str
    size: int
    crc32: int
    mtime: dt.datetime  # naive local time, as zip stores it
    source: Source = field(compare=False, repr=False)
    sha256: str | None = None  # when known, it makes the ETag content-strong

    @classmethod
    def from_bytes(cls, name: str, data: bytes, mtime: dt.datetime) -> ZipMember:
        sha = hashlib.sha256(data).hexdigest()
        return cls(name, len(data), zlib.crc32(data), mtime, BytesSource(data), sha)

    @classmethod
    def from_file(
        cls, name: str, path: str | Path, mtime: dt.datetime, *, crc32: int | None = None
    ) -> ZipMember:
        """A file member; reads the file once for its CRC unless ``crc32`` is given."""
        path = Path(path)
        size = path.stat().st_size
        sha: str | None = None
        if crc32 is None:
            sha, crc32 = file_digests(path)
        return cls(name, size, crc32, mtime, FileSource(path), sha)


def file_digests(path: str | Path) -> tuple[str, int]:
    """SHA-256 (hex) and CRC-32 of a file in one pass: both are stored at upload."""
    sha = hashlib.sha256()
    crc = 0
    with Path(path).open("rb") as fh:
        while chunk := fh.read(CHUNK_SIZE):
            sha.update(chunk)
            crc = zlib.crc32(chunk, crc)
    return sha.hexdigest(), crc


@dataclass(frozen=True)
class _Segment:
    start: int  # offset in the archive
    length: int
    header: bytes | None = None  # fixed bytes, or
    member: ZipMember | None = None  # the member's data


class ZipLayout:
    """The fixed byte layout of a STORED zip of ``members``, in the given order.

    :exception ValueError: duplicate or empty names, negative sizes, more members or a
        name longer than zip can hold.
    """

    def __init__(self, members: Iterable[ZipMember]) -> None:
        self.members = tuple(members)
        _check_members(self.members)
        self._segments: list[_Segment] = []
        central: list[bytes] = []
        pos = 0
        for m in self.members:
            local, entry = _headers(m, pos)
            self._segments.append(_Segment(pos, len(local), header=local))
            pos += len(local)
            self._segments.append(_Segment(pos, m.size, member=m))
            pos += m.size
            central.append(entry)
        cd = b"".join(central)
        tail = cd + _end_records(len(self.members), pos, len(cd))
        self._segments.append(_Segment(pos, len(tail), header=tail))
        self.size = pos + len(tail)
        self._starts = [s.start for s in self._segments]
        self.etag = _etag(self.members, self.size)

    def iter_range(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Bytes ``start`` up to ``end`` (exclusive; default the whole archive), in chunks.

        :exception ValueError: the range is outside the archive.
        :exception MemberChanged: a member file is shorter than recorded.
        """
        end = self.size if end is None else end
        if not 0 <= start <= end <= self.size:
            msg = f"range {start}-{end} outside an archive of {self.size} bytes"
            raise ValueError(msg)
        i = max(bisect_right(self._starts, start) - 1, 0)
        pos = start
        while pos < end:
            seg = self._segments[i]
            lo, hi = pos - seg.start, min(end, seg.start + seg.length) - seg.start
            if hi > lo:
                if seg.header is not None:
                    yield seg.header[lo:hi]
                else:
                    assert seg.member is not None
                    yield from seg.member.source.read(lo, hi - lo)
                pos = seg.start + hi
            i += 1

    def write_to(self, fh: BinaryIO) -> int:
        """Write the whole archive to ``fh``; returns the number of bytes written."""
        written = 0
        for chunk in self.iter_range():
            fh.write(chunk)
            written += len(chunk)
        return written


def _check_members(members: tuple[ZipMember, ...]) -> None:
    seen: set[str] = set()
    for m in members:
        if not m.name or m.name in seen:
            msg = f"zip member names must be unique and non-empty: {m.name!r}"
            raise ValueError(msg)
        if len(m.name.encode("utf-8")) > _U16 or m.size < 0 or not 0 <= m.crc32 <= _U32:
            msg = f"zip member {m.name!r} has an impossible name length, size or CRC"
            raise ValueError(msg)
        seen.add(m.name)


def _dos_time(t: dt.datetime) -> tuple[int, int]:
    """(time, date) in MS-DOS form; clamped to 1980-2107, two-second resolution."""
    t = min(max(t.replace(tzinfo=None), _DOS_EPOCH), dt.datetime(2107, 12, 31, 23, 59, 58))
    return (
        (t.hour << 11) | (t.minute << 5) | (t.second // 2),
        ((t.year - 1980) << 9) | (t.month << 5) | t.day,
    )


def _headers(m: ZipMember, offset: int) -> tuple[bytes, bytes]:
    """The local header and the central directory entry of one member."""
    name = m.name.encode("utf-8")
    dos_time, dos_date = _dos_time(m.mtime)
    big_size = m.size >= _U32
    big_offset = offset >= _U32
    version = _VERSION_ZIP64 if big_size or big_offset else _VERSION_STORED
    size32 = _U32 if big_size else m.size
    # The local zip64 extra must hold both sizes; the central one holds what overflowed.
    local_extra = struct.pack("<HHQQ", 1, 16, m.size, m.size) if big_size else b""
    local = (
        struct.pack(
            "<IHHHHHIIIHH",
            0x04034B50,
            version,
            _FLAG_UTF8,
            0,  # stored
            dos_time,
            dos_date,
            m.crc32,
            size32,
            size32,
            len(name),
            len(local_extra),
        )
        + name
        + local_extra
    )
    fields = ([m.size, m.size] if big_size else []) + ([offset] if big_offset else [])
    central_extra = (
        struct.pack(f"<HH{len(fields)}Q", 1, 8 * len(fields), *fields) if fields else b""
    )
    central = (
        struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            _MADE_BY_UNIX | version,
            version,
            _FLAG_UTF8,
            0,
            dos_time,
            dos_date,
            m.crc32,
            size32,
            size32,
            len(name),
            len(central_extra),
            0,  # comment length
            0,  # disk number
            0,  # internal attributes
            _EXT_ATTR_FILE,
            _U32 if big_offset else offset,
        )
        + name
        + central_extra
    )
    return local, central


def _end_records(count: int, cd_offset: int, cd_size: int) -> bytes:
    """End of central directory, preceded by the zip64 pair when anything overflows."""
    zip64 = count >= _U16 or cd_offset >= _U32 or cd_size >= _U32
    out = b""
    if zip64:
        eocd64_offset = cd_offset + cd_size
        out += struct.pack(
            "<IQHHIIQQQQ",
            0x06064B50,
            44,  # size of the rest of this record
            _MADE_BY_UNIX | _VERSION_ZIP64,
            _VERSION_ZIP64,
            0,
            0,
            count,
            count,
            cd_size,
            cd_offset,
        )
        out += struct.pack("<IIQI", 0x07064B50, 0, eocd64_offset, 1)
    out += struct.pack(
        "<IHHHHIIH",
        0x06054B50,
        0,
        0,
        min(count, _U16),
        min(count, _U16),
        min(cd_size, _U32),
        min(cd_offset, _U32),
        0,
    )
    return out


def _etag(members: tuple[ZipMember, ...], size: int) -> str:
    """A strong ETag from what determines every byte: names, sizes, CRCs (and SHA-256
    when known), times. Nothing is read, so a HEAD or a Range request costs nothing."""
    h = hashlib.sha256(f"stored-zip-v1:{size}".encode())
    for m in members:
        key = f"\0{m.name}\0{m.size}\0{m.crc32}\0{m.sha256}\0{m.mtime.isoformat()}"
        h.update(key.encode())
    return h.hexdigest()[:32]
