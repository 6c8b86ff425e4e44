"""XMP with a safe parser: editing trail, camera, dates, and drone tags.

defusedxml refuses DTDs and entities, so an XML bomb in a photo becomes a note instead
of a hang. Properties are read whether written as attributes or as elements, and are
keyed by the prefix the document itself declares (``drone-dji:GpsLatitude``), with
well-known namespace URIs as the fallback.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

__all__ = ["HistoryEvent", "XmpData", "find_xmp_packet", "parse_xmp"]

MAX_XMP_BYTES = 4 * 1024 * 1024  # a normal packet is a few KB; refuse to chew on more
MAX_DEPTH = 64  # elements nested deeper than this: not XMP any camera or editor writes

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
KNOWN_PREFIXES: dict[str, str] = {
    "http://ns.adobe.com/xap/1.0/": "xmp",
    "http://ns.adobe.com/xap/1.0/mm/": "xmpMM",
    "http://ns.adobe.com/xap/1.0/sType/ResourceEvent#": "stEvt",
    "http://ns.adobe.com/photoshop/1.0/": "photoshop",
    "http://ns.adobe.com/tiff/1.0/": "tiff",
    "http://ns.adobe.com/exif/1.0/": "exif",
    "http://www.dji.com/drone-dji/1.0/": "drone-dji",
    "http://pix4d.com/camera/1.0/": "Camera",
    "http://ns.sensefly.com/Camera/1.0/": "Camera",
    "http://www.parrot.com/drone-parrot/1.0/": "drone-parrot",
    RDF: "rdf",
}
_XMLNS = re.compile(rb'xmlns:([A-Za-z_][\w.\-]*)\s*=\s*["\']([^"\']+)["\']')


@dataclass(frozen=True)
class HistoryEvent:
    action: str | None
    software_agent: str | None
    changed: str | None = None


@dataclass
class XmpData:
    """Every simple property as ``prefix:Name -> [values]``, plus the History events."""

    props: dict[str, list[str]] = field(default_factory=dict)
    history: list[HistoryEvent] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def first(self, *keys: str) -> tuple[str, str] | None:
        """(key, value) of the first key present with a non-empty value."""
        for key in keys:
            for value in self.props.get(key, ()):
                if value.strip():
                    return key, value.strip()
        return None

    def get(self, key: str) -> str | None:
        hit = self.first(key)
        return hit[1] if hit else None


def find_xmp_packet(data: bytes) -> bytes | None:
    """The first ``<x:xmpmeta>`` packet in a file's bytes, when the decoder gave none."""
    start = data.find(b"<x:xmpmeta")
    if start < 0:
        return None
    end = data.find(b"</x:xmpmeta>", start)
    if end < 0:
        return data[start : start + MAX_XMP_BYTES]
    return data[start : end + len(b"</x:xmpmeta>")]


def parse_xmp(packet: bytes | None) -> XmpData:
    """Parse an XMP packet safely; never raises (problems become notes)."""
    out = XmpData()
    if not packet:
        return out
    if len(packet) > MAX_XMP_BYTES:
        out.notes.append(f"XMP: packet of {len(packet)} bytes is too large, ignored")
        return out
    packet = packet.strip(b"\x00 \r\n\t")
    try:
        root = SafeET.fromstring(packet, forbid_dtd=True, forbid_entities=True)
    except DefusedXmlException as exc:
        out.notes.append(f"XMP: refused unsafe XML ({type(exc).__name__})")
        return out
    except (ET.ParseError, ValueError) as exc:
        out.notes.append(f"XMP: not well-formed ({exc})")
        return out
    # the document's own prefixes for unknown namespaces; canonical ones for known URIs
    # (Lightroom 2 still writes "xap:" for the xmp namespace)
    prefixes = {uri.decode("utf-8", "replace"): p.decode() for p, uri in _XMLNS.findall(packet)}
    prefixes.update(KNOWN_PREFIXES)
    _walk(root, prefixes, out, owner=None)
    return out


def _key(tag: str, prefixes: dict[str, str]) -> str:
    if tag.startswith("{"):
        uri, _, local = tag[1:].partition("}")
        return f"{prefixes.get(uri, uri)}:{local}"
    return tag


def _walk(root: ET.Element, prefixes: dict[str, str], out: XmpData, owner: str | None) -> None:
    """Depth-first over the tree with an explicit stack (a deep packet is no RecursionError);
    nesting deeper than ``MAX_DEPTH`` (real packets: under 10) ignores the whole packet."""
    props: dict[str, list[str]] = {}
    history: list[HistoryEvent] = []
    stack: list[tuple[ET.Element, str | None, int]] = [(root, owner, 0)]
    while stack:
        elem, owner, depth = stack.pop()
        if depth > MAX_DEPTH:
            out.notes.append(f"XMP: nested deeper than {MAX_DEPTH} levels, ignored")
            return
        key = _key(elem.tag, prefixes)
        for name, value in elem.attrib.items():
            props.setdefault(_key(name, prefixes), []).append(value)
        children = list(elem)
        if not key.startswith("rdf:") and key != "x:xmpmeta":
            owner = key
        if not children and elem.text and elem.text.strip() and owner:
            # a leaf element, or an rdf:li of a Seq/Bag/Alt: the value belongs to its owner
            props.setdefault(owner, []).append(elem.text.strip())
        if key == "xmpMM:History":
            history.extend(_history(elem, prefixes))
            continue
        stack.extend((child, owner, depth + 1) for child in reversed(children))
    for name, values in props.items():
        out.props.setdefault(name, []).extend(values)
    out.history.extend(history)


def _history(elem: ET.Element, prefixes: dict[str, str]) -> list[HistoryEvent]:
    """xmpMM:History/rdf:Seq/rdf:li, each li with stEvt:* as attributes or elements."""
    events = []
    for li in elem.iter(f"{{{RDF}}}li"):
        fields: dict[str, str] = {}
        for node in li.iter():
            for name, value in node.attrib.items():
                fields.setdefault(_key(name, prefixes), value)
            if node is not li and not list(node) and node.text and node.text.strip():
                fields.setdefault(_key(node.tag, prefixes), node.text.strip())
        events.append(
            HistoryEvent(
                action=fields.get("stEvt:action"),
                software_agent=fields.get("stEvt:softwareAgent"),
                changed=fields.get("stEvt:changed"),
            )
        )
    return events
