"""Tipline: anonymous crime-tip intake from Zalo OAs, encrypted before storage, routed to units.

The web app is built by :func:`tipline.app.create_app`; docs/architecture.md maps the packages.
"""

import logging

# httpx logs every request's URL at INFO: an attachment's download link is tip content (it
# fetches the informant's photo while Zalo keeps it). No URL of ours reaches a log, at any level.
for _library in ("httpx", "httpcore"):
    logging.getLogger(_library).setLevel(logging.WARNING)
