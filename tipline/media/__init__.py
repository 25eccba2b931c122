"""Attachments from Zalo: a guarded download (:mod:`.fetch`) and metadata removal (:mod:`.clean`).

Both raise :class:`Refused` with a reason code the officer is shown (translated in triage).
"""

from tipline.media.errors import Refused

__all__ = ["Refused"]
