"""photocheck.metadata on the real files of ../shared/data: EXIF, GPS, times, XMP, editors."""

from __future__ import annotations

import datetime as dt
import json
import time
from types import SimpleNamespace

import pytest
from exifread.utils import Ratio

from photocheck.decode import decode
from photocheck.errors import DecodeError
from photocheck.metadata import Metadata, read_metadata
from photocheck.metadata.capture_time import BadTime, parse_datetime
from photocheck.metadata.editors import classify, software_kind
from photocheck.metadata.exif import ExifTags
from photocheck.metadata.gps import gps_from_exif, haversine_m, parse_xmp_coordinate
from photocheck.metadata.xmp import parse_xmp

from .conftest import DATA, data_file


def meta_of(relpath: str, *, via_decoder: bool = True) -> Metadata:
    """Metadata as the pipeline reads it (decoder's EXIF/XMP blocks), or from bytes only."""
    data = data_file(relpath).read_bytes()
    if not via_decoder:
        return read_metadata(data)
    try:
        photo = decode(data, max_pixels=200_000_000)
    except DecodeError:
        return read_metadata(data)
    return read_metadata(data, exif=photo.exif, xmp=photo.xmp)


ODD_FILES = sorted(
    str(p.relative_to(DATA))
    for pattern in ("exif/corrupt_exif/*", "exif/exif_samples/tests_*", "bad_input/corrupt/*")
    for p in DATA.glob(pattern)
)


@pytest.mark.parametrize("relpath", ODD_FILES)
def test_broken_metadata_never_raises(relpath: str) -> None:
    for via in (True, False):
        meta = meta_of(relpath, via_decoder=via)
        json.dumps(meta.to_json())


def test_truncated_exif_never_raises() -> None:
    data = data_file("exif/phones_gps/sony_hx5v_2_gps.jpg").read_bytes()
    for cut in range(0, 14_000, 97):
        meta = read_metadata(data[:cut])
        json.dumps(meta.to_json())
    # and a bare TIFF block cut short, as a HEIC decoder could hand it over
    block = decode(data, max_pixels=200_000_000).exif
    assert block is not None
    for cut in range(8, len(block), 53):
        read_metadata(b"", exif=block[:cut])


def test_camera_fields_and_thumbnail() -> None:
    meta = meta_of("exif/phones_gps/apple_iphone5_gps_orient3.jpg")
    assert (meta.make, meta.model, meta.software) == ("Apple", "iPhone 5", "6.0")
    assert meta.orientation == 3
    assert meta.has_exif
    assert meta.thumbnail is not None and meta.thumbnail.startswith(b"\xff\xd8")
    assert meta.to_json()["has_thumbnail"] is True


def test_no_exif_at_all() -> None:
    meta = meta_of("exif/exifr_misc/noexif.jpg")
    assert not meta.has_exif
    assert meta.gps is None and meta.gps_problem is None
    assert meta.capture_time is None and meta.capture_time_problem is None


# ---- GPS -------------------------------------------------------------------------------


@pytest.mark.parametrize("via", [True, False])
def test_heic_gps_guangzhou(via: bool) -> None:
    meta = meta_of("exif/phones_gps/iphone8_IMG_1034_gps_guangzhou.heic", via_decoder=via)
    assert meta.gps is not None
    assert meta.gps.lat == pytest.approx(23.1779, abs=1e-3)
    assert meta.gps.lon == pytest.approx(113.3943, abs=1e-3)
    assert meta.gps.timestamp_utc == dt.datetime(2018, 2, 5, 7, 11, 43, 70000, tzinfo=dt.UTC)
    assert meta.make == "Apple"


@pytest.mark.parametrize(
    "relpath",
    [
        "exif/gps_anomalies/samsung_i9000_gps_0_0.jpg",
        "exif/gps_anomalies/flir_vuepro640_gps_0_0.jpg",
    ],
)
def test_null_island_is_invalid(relpath: str) -> None:
    meta = meta_of(relpath)
    assert meta.gps is None
    assert meta.gps_problem is not None and "0,0" in meta.gps_problem


def test_southern_western_refs_and_altitude() -> None:
    meta = meta_of("exif/phones_gps/olympus_fe230_gps_altitude1875m.jpg")
    assert meta.gps is not None
    assert meta.gps.lat == pytest.approx(50.9569, abs=1e-3)
    assert meta.gps.lon == pytest.approx(-118.1073, abs=1e-3)
    assert meta.gps.altitude_m == pytest.approx(1875.3, abs=0.1)


def test_lund_has_gps_but_no_time() -> None:
    for n in (1, 15, 29):
        meta = meta_of(f"buildings/opensfm_lund/{n:02d}.jpg")
        assert meta.gps is not None and 55 < meta.gps.lat < 56 and 13 < meta.gps.lon < 14
        assert meta.capture_time is None and meta.capture_time_problem is None


def test_flir_gps_is_not_invalid() -> None:
    """Its GPS sits in FLIR's own APP1 record, which we do not read: no fix, but no
    GPS_INVALID either (the wrong longitude sign cannot be seen from the file)."""
    meta = meta_of("exif/gps_anomalies/flir_iphone_gps_lon_sign_missing.jpg")
    assert meta.gps_problem is None


def _tags(**values: object) -> ExifTags:
    return ExifTags(tags={f"GPS GPS{k}": SimpleNamespace(values=v) for k, v in values.items()})


@pytest.mark.parametrize(
    ("tags", "reason"),
    [
        (_tags(Latitude=[Ratio(23, 0), 1, 0], Longitude=[113, 0, 0]), "zero denominator"),
        (_tags(Latitude=[float("nan"), 0, 0], Longitude=[113, 0, 0]), "not a finite"),
        (_tags(Latitude=[95, 0, 0], LatitudeRef=["N"], Longitude=[113, 0, 0]), "outside -90..90"),
        (_tags(Latitude=[23, 75, 0], Longitude=[113, 0, 0]), "out of range"),
        (_tags(Latitude=[23, 0, 0], LatitudeRef=["Q"], Longitude=[113, 0, 0]), "expected N or S"),
        (_tags(Latitude=[23, 0, 0]), "GPSLongitude is missing"),
        (_tags(Latitude=[], Longitude=[113, 0, 0]), "expected 1 to 3"),
    ],
)
def test_malformed_gps_has_a_specific_reason(tags: ExifTags, reason: str) -> None:
    result = gps_from_exif(tags)
    assert result.fix is None
    assert result.problem is not None and reason in result.problem


def test_below_sea_level_altitude_is_negative() -> None:
    tags = _tags(
        Latitude=[40, 22, Ratio(97513, 2500)],
        LatitudeRef=["N"],
        Longitude=[74, 29, 0],
        LongitudeRef=["W"],
        Altitude=[Ratio(17, 2)],
        AltitudeRef=[1],
    )
    fix = gps_from_exif(tags).fix
    assert fix is not None and fix.altitude_m == -8.5 and fix.lon < 0


def test_xmp_coordinates_and_haversine() -> None:
    assert parse_xmp_coordinate("50,57.415N") == pytest.approx(50.956917, abs=1e-6)
    assert parse_xmp_coordinate("118,6.4365W") == pytest.approx(-118.107275, abs=1e-6)
    assert parse_xmp_coordinate("+47.3541841") == pytest.approx(47.3541841)
    # one degree of latitude is about 111.2 km
    assert haversine_m(23.0, 113.0, 24.0, 113.0) == pytest.approx(111_195, rel=1e-3)


# ---- capture time ----------------------------------------------------------------------


def test_capture_time_zeros_blank_and_old() -> None:
    zeros = meta_of("exif/timestamp_anomalies/olympus_c860l_date_zeros.jpg")
    assert zeros.capture_time is None and "all zeros" in (zeros.capture_time_problem or "")
    blank = meta_of("exif/timestamp_anomalies/fujifilm_dx5_date_blank.jpg")
    assert blank.capture_time is None and "blank" in (blank.capture_time_problem or "")
    old = meta_of("exif/timestamp_anomalies/fujifilm_ds7_1_year1996.jpg")
    assert old.capture_time is not None
    assert old.capture_time.local == dt.datetime(1996, 11, 10, 20, 59, 21)
    assert old.capture_time.source == "DateTimeOriginal"


def test_capture_time_offset_and_subseconds() -> None:
    meta = meta_of("exif/exifr_misc/heic_iphone7_gps.heic")
    ct = meta.capture_time
    assert ct is not None and ct.offset == "+02:00" and ct.subsec == "130"
    assert ct.local == dt.datetime(
        2019, 10, 20, 18, 34, 30, 130000, tzinfo=dt.timezone(dt.timedelta(hours=2))
    )


def test_naive_capture_time_stays_naive() -> None:
    ct = meta_of("exif/phones_gps/iphone8_IMG_1034_gps_guangzhou.heic").capture_time
    assert ct is not None and ct.local.tzinfo is None and ct.offset is None


def test_datetime_written_by_an_editor_is_not_a_capture_time() -> None:
    meta = meta_of("exif/exif_samples/xmp_no_exif.jpg")
    assert meta.capture_time is None
    assert any("save time" in n for n in meta.notes)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2018:06:26 17:46:33.847", dt.datetime(2018, 6, 26, 17, 46, 33, 847000)),
        ("2015-06-29T18:19:12+01:00", dt.datetime(2015, 6, 29, 17, 19, 12, tzinfo=dt.UTC)),
        ("2020:02:30 10:00:00", None),
        ("2020:01:01", None),
        ("garbage", None),
        ("    :  :     :  :  ", None),
    ],
)
def test_parse_datetime(text: str, expected: dt.datetime | None) -> None:
    if expected is None:
        with pytest.raises(BadTime):
            parse_datetime(text)
    else:
        assert parse_datetime(text) == expected


# ---- XMP and drones --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "relative"),
    [("DJI_0042.JPG", 134.0), ("DJI_0045.JPG", 134.1), ("DJI_0046.JPG", 128.3)],
)
def test_dji_mini2_drone_tags(name: str, relative: float) -> None:
    meta = meta_of(f"drone/openmvg_palm_desert_dji_mini2/{name}")
    drone = meta.drone
    assert drone is not None and drone.vendor == "DJI"
    assert drone.relative_altitude_m == relative and 121 <= relative <= 135
    assert drone.absolute_altitude_m is not None and 1030 < drone.absolute_altitude_m < 1050
    assert drone.flight_yaw is not None and drone.gimbal_pitch is not None
    # no drone-dji position here: EXIF GPS is the fallback
    assert drone.position_source == "exif" and meta.gps is not None and drone.lat == meta.gps.lat


def test_dji_thermal_below_sea_level() -> None:
    meta = meta_of("drone/exifr_dji_small/dji_flir_thermal.jpg")
    assert meta.gps is not None and meta.gps.altitude_m == -8.5  # GPSAltitudeRef = 1
    assert meta.drone is not None
    assert meta.drone.absolute_altitude_m == -8.56 and meta.drone.relative_altitude_m == 62.5
    assert meta.drone.gimbal_pitch == -89.9


def test_mavic2_drone_position_from_xmp() -> None:
    meta = meta_of("drone/exifr_dji_small/hasselblad_L1D-20c_mavic2pro_tiny.jpg")
    assert meta.drone is not None and meta.drone.relative_altitude_m == 125.3
    assert meta.drone.position_source == "xmp"
    assert meta.drone.lat == pytest.approx(47.3541841) and meta.drone.lon == pytest.approx(
        10.1913155
    )
    assert meta.model == "L1D-20c"  # EXIF wins over XMP's "Test_Pro"


ELEMENT_STYLE_XMP = b"""<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/"
  xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"
  xmlns:stEvt="http://ns.adobe.com/xap/1.0/sType/ResourceEvent#">
 <drone-dji:GpsLatitude>+23.1234</drone-dji:GpsLatitude>
 <drone-dji:GpsLongtitude>+113.5</drone-dji:GpsLongtitude>
 <drone-dji:RelativeAltitude>+80.2</drone-dji:RelativeAltitude>
 <drone-dji:GimbalYawDegree>-12.5</drone-dji:GimbalYawDegree>
 <xmp:CreatorTool>Meitu</xmp:CreatorTool>
 <xmpMM:History><rdf:Seq><rdf:li rdf:parseType="Resource">
   <stEvt:action>saved</stEvt:action><stEvt:softwareAgent>Snapseed 2.0</stEvt:softwareAgent>
 </rdf:li></rdf:Seq></xmpMM:History>
</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>"""


def test_xmp_elements_vendor_spelling_and_history() -> None:
    meta = read_metadata(b"", xmp=ELEMENT_STYLE_XMP)
    assert meta.drone is not None and meta.drone.position_source == "xmp"
    assert (meta.drone.lat, meta.drone.lon) == (23.1234, 113.5)
    assert meta.drone.relative_altitude_m == 80.2 and meta.drone.gimbal_yaw == -12.5
    assert meta.gps is not None and meta.gps.source == "xmp"  # no EXIF GPS: the drone's
    assert any("Snapseed" in e for e in meta.editors)
    assert any("Meitu" in e for e in meta.editors)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<x:xmpmeta xmlns:x="adobe:ns:meta/">&lol4;</x:xmpmeta>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>
<x:xmpmeta xmlns:x="adobe:ns:meta/">&e;</x:xmpmeta>"""


@pytest.mark.parametrize("packet", [BILLION_LAUGHS, EXTERNAL_ENTITY, b"<x:xmpmeta><unclosed>"])
def test_hostile_or_broken_xmp_is_a_note(packet: bytes) -> None:
    started = time.perf_counter()
    meta = read_metadata(b"", xmp=packet)
    assert time.perf_counter() - started < 5  # generous: only guards against a hang
    assert any(n.startswith("XMP:") for n in meta.notes)
    assert parse_xmp(packet).props == {}


def test_bomb_inside_a_jpeg_is_found_and_refused() -> None:
    data = data_file("exif/exifr_misc/noexif.jpg").read_bytes()
    meta = read_metadata(data[:2] + BILLION_LAUGHS + data[2:])
    # the packet scan starts at <x:xmpmeta, so the entity is undefined there: still a note
    assert any(n.startswith("XMP:") for n in meta.notes)


# ---- editors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Adobe Photoshop 7.0",
        "Adobe Photoshop Lightroom 6.1 (Windows)",
        "GIMP 2.4.5",
        "Meitu 美图秀秀",
        "美图秀秀",
        "醒图",
        "美颜相机",
        "PaintTool SAI",
        "Noise Ninja 2",
        "Snapseed",
        "PicsArt",
        "Pixelmator Pro 2.0",
        "Affinity Photo 1.10",
        "Capture One 21 Windows",
        "ACD Systems Digital Imaging",
        "paint.net 4.2.13",
        "Picasa",
    ],
)
def test_editors(text: str) -> None:
    assert classify(text) is not None


@pytest.mark.parametrize(
    "text",
    [
        "Ver.1.00",
        "Firmware Version 1.02",
        "Canon Digital Camera",
        "V1.0",
        "4.1",
        "12.4",
        "iOS 16.1",
        "Android 13",
        "HDR+ 1.0.199571065z",
        "Nikon Transfer 1.1 W",
        "QuickTime 7.7.1",
        "FC-S3   Ver 1.00 ",
        "fw 05.15 prm 07.53 ",
        "OnePlus3-user 6.0.1 MMB29M 26 dev-keys",
        "E5700v1.1",
        "v01.43.0042",
    ],
)
def test_not_editors(text: str) -> None:
    assert classify(text) is None
    assert not software_kind(text).startswith("editor")


def test_editor_evidence_names_field_and_string() -> None:
    meta = meta_of("exif/edited_software/canon_1ds_after_noise_ninja.jpg")
    assert meta.editors == ("Software='Noise Ninja 2' (Noise Ninja)",)
    ps = meta_of("buildings/camera_corpus/sony_cybershot6_house_trees.jpg")
    assert any("8BIM VersionInfo" in e and "Adobe Photoshop 6.0" in e for e in ps.editors)


def test_lightroom_metadata_only_write_is_not_an_edit() -> None:
    meta = meta_of("exif/phones_gps/olympus_fe230_gps_altitude1875m.jpg")
    assert meta.creator_tool == "Adobe Photoshop Lightroom"
    assert meta.editors == ()
    exported = meta_of("exif/edited_software/canon_1dmk3_via_lightroom.jpg")
    assert exported.editors


def test_deep_xmp_is_ignored_with_a_note_not_a_recursion_error() -> None:
    deep = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">' + b"<a>" * 1200 + b"x" + b"</a>" * 1200
    out = parse_xmp(deep + b"</x:xmpmeta>")
    assert out.props == {} and out.history == []
    assert out.notes == ["XMP: nested deeper than 64 levels, ignored"]
    shallow = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">' + b"<a>" * 60 + b"x" + b"</a>" * 60
    assert parse_xmp(shallow + b"</x:xmpmeta>").props == {"a": ["x"]}
