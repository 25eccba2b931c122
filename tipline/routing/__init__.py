"""Routing: which police unit should act on a tip, and who in it (issue 3).

- ``normalise``: folding, abbreviations and glued forms ("P.Tho Xuong", "Q1", "F12").
- ``places``: the index of current and pre-2025 units and aliases, built once per process.
- ``router``: text and GPS point → an official unit code, confidence, candidates (pure).
- ``geo``: point-in-polygon over the ward boundaries ``TIPLINE_WARD_BOUNDARIES`` names.
- ``service``: the decision against this install's units; the sealed routing record.
- ``classify``, ``duty``, ``escalation``: category and priority, assignment, SLA escalation.
"""

from tipline.routing.service import Candidate, Decision, oa_owner, route_tip

__all__ = ["Candidate", "Decision", "oa_owner", "route_tip"]
