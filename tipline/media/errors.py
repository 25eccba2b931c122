"""Why an attachment was not stored: a short code, shown to officers as a translated sentence."""

from __future__ import annotations

HOST_NOT_ALLOWED = "host_not_allowed"
PRIVATE_ADDRESS = "private_address"
BAD_URL = "bad_url"
TOO_MANY_REDIRECTS = "too_many_redirects"
TOO_LARGE = "too_large"
TIMEOUT = "timeout"
UNAVAILABLE = "unavailable"
UNSUPPORTED_TYPE = "unsupported_type"
IMAGE_TOO_LARGE = "image_too_large"
DAMAGED = "damaged"
ENCRYPTED = "encrypted"

REASONS = (
    HOST_NOT_ALLOWED,
    PRIVATE_ADDRESS,
    BAD_URL,
    TOO_MANY_REDIRECTS,
    TOO_LARGE,
    TIMEOUT,
    UNAVAILABLE,
    UNSUPPORTED_TYPE,
    IMAGE_TOO_LARGE,
    DAMAGED,
    ENCRYPTED,
)


class Refused(Exception):
    """The attachment cannot be downloaded or cleaned safely; ``reason`` is one of REASONS."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
