"""photocheck: checks house photos of the rural housing-safety verification.

The library knows nothing about HTTP. Load a policy and the content model once, then
call ``check_photo`` for each photo.
"""

from __future__ import annotations

from .checks import PhotoContext
from .decode import DecodedPhoto, decode
from .errors import (
    DecodeError,
    ModelError,
    PhotocheckError,
    PolicyError,
    TooLarge,
    UnsupportedFormat,
)
from .fingerprints import Fingerprint, fingerprint
from .metadata import Metadata, read_metadata
from .model import ContentModel, ContentScores
from .pipeline import Report, check_file, check_photo
from .policy import Policy, default_policy, load_policy
from .reasons import ReasonCode, Severity
from .verdict import Finding, Reason, Verdict

__version__ = "0.1.0"

__all__ = [
    "ContentModel",
    "ContentScores",
    "DecodeError",
    "DecodedPhoto",
    "Finding",
    "Fingerprint",
    "Metadata",
    "ModelError",
    "PhotoContext",
    "PhotocheckError",
    "Policy",
    "PolicyError",
    "Reason",
    "ReasonCode",
    "Report",
    "Severity",
    "TooLarge",
    "UnsupportedFormat",
    "Verdict",
    "check_file",
    "check_photo",
    "decode",
    "default_policy",
    "fingerprint",
    "load_policy",
    "read_metadata",
]
