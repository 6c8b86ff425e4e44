"""The library's one error tree.

* PhotocheckError
  x DecodeError            -- the bytes are not a photo we can read (becomes UNREADABLE)
    + UnsupportedFormat    -- a real file, but not an image format we accept
    + TooLarge             -- more pixels than the policy allows (decompression bomb guard)
  x PolicyError            -- a policy file is malformed or inconsistent
  x ModelError             -- the content model is missing or cannot run
  x BlobError              -- the blob store (local folder or S3) refused or failed
    + BlobNotFound         -- no object under that key
    + BlobIntegrityError   -- the bytes do not match their SHA-256: nothing stored
    + BlobStoreUnavailable -- the store cannot be reached or written now (also OSError)
  x SiteError              -- a drone photo of a shared site cannot be taken in
    + SiteNotFound         -- the site is gone (removed meanwhile)
    + PhotoOfOtherSite     -- the same photo is already stored for another site
  x RecheckRefused         -- a look-back re-check cannot be started, paused or confirmed now

Checks never raise for bad photos: a decode failure is turned into a finding at the
pipeline boundary, and a bad metadata field becomes a note on that field only.
"""

from __future__ import annotations

__all__ = [
    "BlobError",
    "BlobIntegrityError",
    "BlobNotFound",
    "BlobStoreUnavailable",
    "DecodeError",
    "ModelError",
    "PhotoOfOtherSite",
    "PhotocheckError",
    "PolicyError",
    "RecheckRefused",
    "SiteError",
    "SiteNotFound",
    "TooLarge",
    "UnsupportedFormat",
]


class PhotocheckError(Exception):
    """Base of every error this library raises on purpose."""


class DecodeError(PhotocheckError):
    """The bytes cannot be decoded into a complete image."""


class UnsupportedFormat(DecodeError):
    """The file is not in one of the accepted image formats."""


class TooLarge(DecodeError):
    """The image has more pixels than the policy's limit."""


class PolicyError(PhotocheckError):
    """A policy file cannot be loaded or is inconsistent."""


class ModelError(PhotocheckError):
    """The content model file is missing, corrupt or cannot run."""


class BlobError(PhotocheckError):
    """The blob store refused or failed an operation."""


class BlobNotFound(BlobError):
    """No blob is stored under the key."""


class BlobIntegrityError(BlobError):
    """The bytes received do not match their SHA-256; nothing was stored."""


class BlobStoreUnavailable(BlobError, OSError):
    """The store cannot be reached or written at the moment (S3 down, disk full).

    An ``OSError`` too, so code that retries disk errors later retries this as well.
    """


class SiteError(PhotocheckError):
    """A drone photo of a shared site cannot be taken in (``store.site_intake``)."""


class SiteNotFound(SiteError, LookupError):
    """The site (by row id) no longer exists."""

    def __init__(self, site_pk: int) -> None:
        super().__init__(f"the site was removed (id {site_pk})")
        self.site_pk = site_pk


class PhotoOfOtherSite(SiteError):
    """The same bytes are stored for another site; a photo belongs to one site."""

    def __init__(self, site_code: str, canonical_name: str) -> None:
        super().__init__(f"this photo is already stored for site {site_code!r} as {canonical_name}")
        self.site_code, self.canonical_name = site_code, canonical_name


class RecheckRefused(PhotocheckError):
    """A re-check action that the run's state (or another run) does not allow.

    ``code`` is the API's error code (``RECHECK_RUNNING``, ``RECHECK_NOT_FOUND``,
    ``RECHECK_STATE``); both languages are carried for the one HTTP mapping."""

    def __init__(self, code: str, message: str, message_zh: str) -> None:
        super().__init__(message)
        self.code, self.message, self.message_zh = code, message, message_zh
