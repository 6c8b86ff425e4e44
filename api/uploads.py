"""Streaming multipart reader for photo uploads: the ``file`` part goes straight to a
temp file in the blob store (hashed on the way), small fields stay in memory, and
reading stops storing at the size limit.

Starlette's ``request.form()`` would spool the whole body before the route sees it;
this reads the socket chunk by chunk, so an oversized upload costs no disk and the
413 is decided while streaming. Past the limit the rest of the body is drained
(discarded, up to a hard cap) so that the client can read the 413 instead of a reset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from photocheck.store import BlobStore, PendingBlob, SizeLimitExceeded
from photocheck.store.blobs import BlobWriter

from .errors import ApiError
from .input_guard import check_text

__all__ = ["ParsedUpload", "looks_like_image", "read_upload"]

MAX_FIELD_BYTES = 64 * 1024  # the capture JSON and other small fields
MAX_PARTS = 8
DRAIN_CAP = 64 * 1024 * 1024  # beyond the limit, read at most this much before giving up


@dataclass
class ParsedUpload:
    blob: PendingBlob
    filename: str | None
    fields: dict[str, str] = field(default_factory=dict)


def too_large(limit: int) -> ApiError:
    mb = limit / (1024 * 1024)
    return ApiError(
        413,
        "PAYLOAD_TOO_LARGE",
        f"the photo is larger than the {mb:g} MB limit",
        message_zh=f"照片超过 {mb:g} MB 的大小限制",
    )


class _Collector:
    """Multipart callbacks: route each part to the blob writer or a small field."""

    def __init__(self, blobs: BlobStore, limit: int) -> None:
        self.blobs, self.limit = blobs, limit
        self.writer: BlobWriter | None = None
        self.filename: str | None = None
        self.fields: dict[str, str] = {}
        self.parts = 0
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._is_file = False
        self._buffer = bytearray()

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": lambda d, s, e: self._add("_header_field", d[s:e]),
            "on_header_value": lambda d, s, e: self._add("_header_value", d[s:e]),
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
        }

    def _add(self, attr: str, data: bytes) -> None:
        setattr(self, attr, getattr(self, attr) + data)

    def part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise ApiError(422, "INVALID_REQUEST", "too many form parts", message_zh="表单字段太多")
        self._headers, self._name, self._is_file = {}, None, False
        self._buffer = bytearray()

    def header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = self._header_value = b""

    def headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name")
        self._name = name.decode("utf-8", "replace") if name is not None else None
        if self._name is not None:
            check_text("form field name", self._name)
        if self._name == "file":
            if self.writer is not None:
                raise ApiError(
                    422,
                    "INVALID_REQUEST",
                    "send one `file` part only",
                    message_zh="只能上传一个 file 文件",
                )
            self._is_file = True
            raw = options.get(b"filename")
            self.filename = raw.decode("utf-8", "replace") if raw is not None else None
            if self.filename is not None:
                check_text("file.filename", self.filename)
            self.writer = self.blobs.open_writer(self.limit)

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            assert self.writer is not None
            self.writer.write(data[start:end])  # raises SizeLimitExceeded
        else:
            self._buffer += data[start:end]
            if len(self._buffer) > MAX_FIELD_BYTES:
                raise ApiError(
                    413,
                    "PAYLOAD_TOO_LARGE",
                    f"form field {self._name!r} is too large",
                    message_zh=f"表单字段 {self._name} 太大",
                )

    def part_end(self) -> None:
        if not self._is_file and self._name:
            value = self._buffer.decode("utf-8", "replace")
            check_text(f"form.{self._name}", value, free_text=True)  # JSON: checked parsed
            self.fields[self._name] = value

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()


async def read_upload(request: Request, blobs: BlobStore, limit: int) -> ParsedUpload:
    """Stream a ``multipart/form-data`` body; the ``file`` part lands in ``blobs.tmp``.

    :exception ApiError: 415 not multipart, 413 over the limit, 422 malformed or no file.
    """
    ctype, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise ApiError(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "send the photo as multipart/form-data (field `file`)",
            message_zh="请以 multipart/form-data 表单上传照片（字段 file）",
        )
    collector = _Collector(blobs, limit)
    parser = MultipartParser(boundary, collector.callbacks())  # type: ignore[arg-type]
    stream = request.stream()
    try:
        async for chunk in stream:
            parser.write(chunk)
        parser.finalize()
    except SizeLimitExceeded:
        collector.abort()
        await _drain(stream, limit)
        raise too_large(limit) from None
    except MultipartParseError as exc:
        collector.abort()
        raise ApiError(
            422,
            "INVALID_REQUEST",
            f"malformed multipart body: {exc}",
            message_zh="上传表单格式错误",
        ) from None
    except ClientDisconnect:
        collector.abort()
        raise
    except ApiError:
        collector.abort()
        await _drain(stream, limit)
        raise
    if collector.writer is None:
        raise ApiError(
            422, "INVALID_REQUEST", "no `file` part in the form", message_zh="表单中没有 file 文件"
        )
    return ParsedUpload(collector.writer.finish(), collector.filename, collector.fields)


async def _drain(stream: object, limit: int) -> None:
    """Read and discard the rest of the body (bounded), so the client sees our answer."""
    read = 0
    try:
        async for chunk in stream:  # type: ignore[attr-defined]
            read += len(chunk)
            if read > max(DRAIN_CAP, limit):
                break
    except ClientDisconnect:
        pass


_MAGIC: tuple[tuple[int, bytes], ...] = (
    (0, b"\xff\xd8\xff"),  # JPEG
    (0, b"\x89PNG\r\n\x1a\n"),
    (0, b"P5"),  # PGM
    (0, b"P6"),  # PPM
    (0, b"GIF8"),  # recognised as an image, refused later as a format
    (0, b"BM"),
    (0, b"II*\x00"),  # TIFF
    (0, b"MM\x00*"),
)


def looks_like_image(head: bytes) -> bool:
    """A cheap sniff of the first bytes: is this an image file at all?

    Images in formats we do not accept still pass here; the checks answer them with
    UNREADABLE. Only non-images (text, PDF, zip, empty) are refused with 415.
    """
    if any(head[offset:].startswith(magic) for offset, magic in _MAGIC):
        return True
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    return head[4:8] == b"ftyp" and head[8:12] in {
        b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"hevx",
    }  # fmt: skip
