"""Routing: which police unit should act on a tip.

This first router sends a tip to the unit that owns the receiving OA. Place names and GPS
points come next (issue 3); the decision type already carries what they will need.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from tipline.models import OfficialAccount, Tip, Unit


@dataclass(frozen=True)
class Candidate:
    unit_code: str
    score: float
    reason: str


@dataclass(frozen=True)
class Decision:
    unit: Unit | None
    confidence: float
    auto: bool
    reason: str
    candidates: list[Candidate] = field(default_factory=list)


def oa_owner(session: Session, oa_id: str | None) -> Unit | None:
    if oa_id is None:
        return None
    return session.scalars(
        select(Unit).join(OfficialAccount).where(OfficialAccount.oa_id == oa_id)
    ).one_or_none()


def route_tip(session: Session, tip: Tip) -> Decision:
    unit = oa_owner(session, tip.oa_id)
    if unit is None:
        return Decision(None, 0.0, False, "oa_not_attached")
    return Decision(unit, 1.0, True, "oa_owner", [Candidate(unit.code, 1.0, "oa_owner")])
