"""Why an attachment was not stored: a :class:`tipline.models.Refusal`, shown to officers as a
translated sentence."""

from __future__ import annotations

from tipline.models.enums import Refusal


class Refused(Exception):
    """The attachment cannot be downloaded or cleaned safely, for ``reason``."""

    def __init__(self, reason: Refusal, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
