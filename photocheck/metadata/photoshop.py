"""Photoshop image resources (JPEG APP13 "Photoshop 3.0", 8BIM blocks) as edit evidence.

APP13 alone proves nothing: IPTC captioning tools and Lightroom write it too (resource
0x0404 IPTC, 0x040C thumbnail, 0x0425 digest). Photoshop itself adds resources no
captioning tool writes; VersionInfo (0x0421) even names the program and its version.
"""

from __future__ import annotations

import struct

__all__ = ["PHOTOSHOP_ONLY_RESOURCES", "photoshop_writer"]

_SIGNATURE = b"Photoshop 3.0\x00"
VERSION_INFO = 0x0421
# Resources of a Photoshop document: layer state, layer groups, grid and guides,
# document ID seed, slices, version info.
PHOTOSHOP_ONLY_RESOURCES = frozenset({0x0400, 0x0402, 0x0408, 0x0414, 0x041A, VERSION_INFO})


def _app13_payloads(data: bytes) -> list[bytes]:
    """Bodies of the APP13 Photoshop segments of a JPEG (none for other formats)."""
    out: list[bytes] = []
    if not data.startswith(b"\xff\xd8"):
        return out
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xDA, 0xD9):  # start of scan / end of image: no more metadata
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if length < 2:
            break
        body = data[pos + 4 : pos + 2 + length]
        if marker == 0xED and body.startswith(_SIGNATURE):
            out.append(body[len(_SIGNATURE) :])
        pos += 2 + length
    return out


def _resources(block: bytes) -> list[tuple[int, bytes]]:
    res: list[tuple[int, bytes]] = []
    pos = 0
    while pos + 12 <= len(block) and block[pos : pos + 4] == b"8BIM":
        (rid,) = struct.unpack(">H", block[pos + 4 : pos + 6])
        name_len = block[pos + 6]
        q = pos + 7 + name_len
        q += (q - pos) % 2  # Pascal name padded to even length
        if q + 4 > len(block):
            break
        (size,) = struct.unpack(">I", block[q : q + 4])
        res.append((rid, block[q + 4 : q + 4 + size]))
        pos = q + 4 + size + (size % 2)
    return res


def _unicode(body: bytes, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack(">I", body[pos : pos + 4])
    raw = body[pos + 4 : pos + 4 + 2 * n]
    return raw.decode("utf-16-be", "replace").rstrip("\x00"), pos + 4 + 2 * n


def photoshop_writer(data: bytes) -> str | None:
    """The program Photoshop resources name ("Adobe Photoshop 7.0"), or None.

    Never raises: a damaged block is simply not evidence.
    """
    for block in _app13_payloads(data):
        resources = _resources(block)
        for rid, body in resources:
            if rid == VERSION_INFO and len(body) >= 9:
                try:
                    writer, pos = _unicode(body, 5)
                    reader, _ = _unicode(body, pos)
                except struct.error:
                    continue
                name = reader if reader.startswith(writer) else writer
                if name:
                    return name
        ids = sorted({rid for rid, _ in resources} & PHOTOSHOP_ONLY_RESOURCES)
        if ids:
            return "Photoshop document resources " + ",".join(f"0x{i:04X}" for i in ids)
    return None
