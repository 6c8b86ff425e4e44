"""Photo metadata: EXIF (exifread), XMP (defusedxml), GPS, capture time, editors."""

from __future__ import annotations

from .model import CaptureTime, DroneInfo, GPSFix, Metadata
from .reader import read_metadata

__all__ = ["CaptureTime", "DroneInfo", "GPSFix", "Metadata", "read_metadata"]
